"""``/healthz``: whether this web process can reach what it needs, for load balancers and
monitoring. No login (probes have none), no details beyond a state word: not a host, not an
error message.

Each mail server is checked with a TLS handshake on its IMAPS port, its certificate verified
as the workers verify it ("untrusted certificate" when that fails), not by its last poll: polls
run every 15 minutes from the workers, and a probe must tell the state now. The connections
are made side by side, each with a short timeout, so a dead server costs about one timeout
however many there are.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from mailboxes.models import MailServer
from mailserver.errors import MailServerError, UntrustedCertificate
from mailserver.tls import check_certificate

logger = logging.getLogger(__name__)

TIMEOUT = 2.0  # seconds, for Redis and for each mail server
OK = "ok"
UNREACHABLE = "unreachable"
UNTRUSTED = "untrusted certificate"  # reachable, but the workers would refuse to talk to it


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        logger.warning("health: the database is unreachable", exc_info=True)
        return UNREACHABLE
    return OK


def _redis() -> str:
    # The broker (tasks) and the cache (login throttling) may be two Redis databases or servers.
    urls = {settings.CELERY_BROKER_URL, settings.CACHES["default"]["LOCATION"]}
    for url in sorted(urls):
        try:
            client = redis.Redis.from_url(
                url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT
            )
            try:
                client.ping()
            finally:
                client.close()
        except Exception:
            logger.warning("health: Redis is unreachable", exc_info=True)
            return UNREACHABLE
    return OK


def _reachable(address: tuple[str, int]) -> str:
    try:
        check_certificate(*address, timeout=TIMEOUT)
    except UntrustedCertificate:
        return UNTRUSTED
    except MailServerError:
        return UNREACHABLE
    return OK


def _mail_servers() -> dict[str, str]:
    servers = list(
        MailServer.objects.order_by("name").values_list("name", "hostname", "imaps_port")
    )
    if not servers:
        return {}
    with ThreadPoolExecutor(max_workers=min(len(servers), 16)) as pool:
        states = pool.map(_reachable, [(host, port) for _, host, port in servers])
        result = dict(zip([name for name, _, _ in servers], states, strict=True))
    for name, state in result.items():
        if state != OK:
            logger.warning("health: mail server %s: %s", name, state)
    return result


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    database = _database()
    mail_servers = _mail_servers() if database == OK else {}
    body = {"database": database, "redis": _redis(), "mail_servers": mail_servers}
    healthy = database == OK and body["redis"] == OK and all(s == OK for s in mail_servers.values())
    return JsonResponse(body, status=200 if healthy else 503)
