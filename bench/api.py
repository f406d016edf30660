#!/usr/bin/env python
"""REST API benchmark: listing 100,000 mailboxes through /api/v1/mailboxes/.

Seeds the same hoster as bench/dashboard.py (100,000 mailboxes on PostgreSQL, in bulk), then
times R rounds (default 20) of each request through Django's test client with the real
middleware, authenticated with an admin API key, as the server sees it:

- list: the first page (50 mailboxes)
- filter: a usage band and a protocol, and a search
- late cursor: the page after the 99,950th mailbox, by the cursor the API hands out

Queries are counted for each at 25 and at 200 rows per page; they must not differ. The last
line is ``api p95_ms=X queries=N (targets p95_ms<100, queries constant)``.

    .venv/bin/python bench/api.py [--mailboxes N] [--repeat R]

Its database is its own (``postamt_bench_api``, dropped and created again).
"""

from __future__ import annotations

import argparse
import os
import time
from statistics import median
from urllib.parse import unquote

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postamt_bench_api")

from _harness import setup_django  # noqa: E402
from dashboard import p95, seed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    setup_django()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework.pagination import Cursor

    from accounts.api_keys import api_key_create
    from api.pagination import IdCursorPagination
    from mailboxes.models import Mailbox

    seconds = seed(args.mailboxes)
    print(f"seeded {args.mailboxes} mailboxes in {seconds:.1f} s")
    print("cores: {}, load average: {:.1f} {:.1f} {:.1f}".format(os.cpu_count(), *os.getloadavg()))

    token = api_key_create(name="bench", role="admin", actor="bench").token
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    url = "/api/v1/mailboxes/"
    # The cursor the API hands out for "after this id": the 50 before the last page.
    late_id = Mailbox.objects.order_by("id").values_list("id", flat=True)[args.mailboxes - 51]
    paginator = IdCursorPagination()
    paginator.base_url = url
    late = paginator.encode_cursor(Cursor(offset=0, reverse=False, position=str(late_id)))
    late_cursor = unquote(late.split("cursor=")[1])

    requests = {
        "list": {},
        "filter": {"band": "full", "protocol": "imap"},
        "search": {"q": "hans.weber7"},
        "late cursor": {"cursor": late_cursor},
    }

    def get(params: dict, page_size: int = 50):  # type: ignore[no-untyped-def]
        # secure: over HTTPS, as production serves it (DEBUG off redirects plain HTTP)
        response = client.get(url, {**params, "page_size": page_size}, secure=True)
        assert response.status_code == 200, (params, response.status_code, response.content[:300])
        return response

    for params in requests.values():
        for _ in range(3):  # warm up
            get(params)
    wall: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(args.repeat):
        for name, params in requests.items():
            started = time.perf_counter()
            get(params)
            wall[name].append((time.perf_counter() - started) * 1000)

    worst, most = 0.0, 0
    for name, params in requests.items():
        counts = set()
        for page_size in (25, 200):
            with CaptureQueriesContext(connection) as captured:
                get(params, page_size)
            counts.add(len(captured))
        assert len(counts) == 1, f"{name}: queries vary with the page size: {counts}"
        queries = counts.pop()
        print(
            f"{name:12} p95 {p95(wall[name]):6.1f} ms  median {median(wall[name]):6.1f} ms"
            f"  queries {queries}"
        )
        worst, most = max(worst, p95(wall[name])), max(most, queries)
    print("load average now: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(f"api p95_ms={worst:.1f} queries={most} (targets p95_ms<100, queries constant)")


if __name__ == "__main__":
    main()
