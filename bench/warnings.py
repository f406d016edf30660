#!/usr/bin/env python
"""Warning-evaluation benchmark: one evaluation of a fleet after a poll.

Seeds N mailboxes (default 100,000) over three plans on PostgreSQL with measured usage, lets a
first evaluation settle their levels, then moves 5 % of them across a threshold (as a poll
would) and times the evaluation that finds and claims those crossings among all N, creates
the warning rows and queues their emails on Redis. Last line:
``warnings mailboxes_per_s=N (target >= 20000)``.

    .venv/bin/python bench/warnings.py [--mailboxes N]
"""

from __future__ import annotations

import argparse
import random
import time

from _harness import setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    args = parser.parse_args()

    setup_django()
    from django.db.models import F

    from accounts.models import Customer
    from mailboxes.models import GIB, MIB, Domain, Mailbox, MailServer, Plan, QuotaWarning
    from mailboxes.quota_warnings import evaluate
    from provider.celery import app

    rng = random.Random(7)
    server = MailServer.objects.create(name="bench")
    plans = [
        Plan.objects.create(name=f"plan{i}", default_quota_bytes=GIB, max_quota_bytes=10 * GIB)
        for i in range(3)
    ]
    customer = Customer.objects.create(name="bench", contact_email="bench@example.org")
    domain = Domain.objects.create(name="bench.example", customer=customer, mail_server=server)
    quota = 1000 * MIB
    started = time.perf_counter()
    Mailbox.objects.bulk_create(
        (
            Mailbox(
                domain=domain,
                local_part=f"u{i}",
                address=f"u{i}@bench.example",
                protocol="imap",
                plan=plans[i % 3],
                mail_server=server,
                quota_bytes=quota,
                password_hash="{ARGON2ID}x",
                storage_path=f"bench.example/u{i}",
                used_bytes=int(quota * rng.uniform(0, 0.78)),
                usage_state="ok",
            )
            for i in range(args.mailboxes)
        ),
        batch_size=5000,
    )
    print(f"seeded {args.mailboxes} mailboxes in {time.perf_counter() - started:.1f} s")
    evaluate()  # settle: nothing is above a threshold yet

    crossing = rng.sample(range(args.mailboxes), args.mailboxes // 20)
    ids = list(
        Mailbox.objects.filter(local_part__in=[f"u{i}" for i in crossing]).values_list(
            "pk", flat=True
        )
    )
    Mailbox.objects.filter(pk__in=ids).update(used_bytes=F("quota_bytes") * 91 / 100)

    started = time.perf_counter()
    warning_ids = evaluate()
    seconds = time.perf_counter() - started
    assert len(warning_ids) == len(ids), (len(warning_ids), len(ids))
    assert QuotaWarning.objects.filter(threshold=90).count() == len(ids)

    started = time.perf_counter()
    assert evaluate() == []
    quiet = time.perf_counter() - started
    app.control.purge()  # the queued emails are not part of this benchmark

    print(f"evaluation with {len(ids)} crossings: {seconds:.2f} s; without changes: {quiet:.2f} s")
    print(f"warnings mailboxes_per_s={args.mailboxes / seconds:.0f} (target >= 20000)")


if __name__ == "__main__":
    main()
