"""Throttles in the shared cache (Redis), so every web process counts alike: failed logins,
password-reset emails (each one lands in somebody's inbox), and customers' backup restores and
downloads (each costs a worker or a whole snapshot's decryption).

Counting is one atomic step in Redis (INCR, then EXPIRE NX starts the window), so parallel
requests cannot slip past a limit between a read and a write. Failed logins count three ways:
per account and address (a few), per address (more: one office, many people), and per account
from anywhere (many: rotating addresses must not reset the count, yet a stranger should not
lock the owner out with five wrong guesses). Without Redis nothing can be counted, so logins
and reset emails are refused until it is back (``Unavailable``), rather than let anyone guess
at full speed.
"""

from __future__ import annotations

import logging
from functools import cache

import redis
from django.conf import settings
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class Unavailable(Exception):
    """The counters cannot be read or written: refuse, and say it is temporary."""


PREFIX = "postamt:throttle:"


@cache
def _client() -> redis.Redis:
    """The cache's Redis, asked directly: Django's cache API has no atomic count-and-expire.
    Short timeouts, so a Redis that is gone costs a refused login, not a hanging one."""
    return redis.Redis.from_url(
        settings.CACHES["default"]["LOCATION"], socket_connect_timeout=1, socket_timeout=1
    )


def _reached(limits: dict[str, int]) -> bool:
    """Whether any counter has reached its limit."""
    try:
        counts = _client().mget([PREFIX + key for key in limits])
    except RedisError as exc:
        log.error("throttle counters unavailable: %s", exc)
        raise Unavailable from exc
    return any(
        int(count or 0) >= limit for count, limit in zip(counts, limits.values(), strict=True)
    )


def _count(keys: list[str], window: int) -> None:
    try:
        pipe = _client().pipeline()
        for key in keys:
            full = PREFIX + key
            pipe.incr(full)
            pipe.expire(full, window, nx=True)
        pipe.execute()
    except RedisError as exc:
        log.error("throttle counters unavailable: %s", exc)
        raise Unavailable from exc


def _login_limits(ip: str | None, username: str) -> dict[str, int]:
    account = username.strip().lower()
    return {
        f"login-fail:{ip}:{account}": settings.LOGIN_FAILURES_PER_ACCOUNT,
        f"login-fail-ip:{ip}": settings.LOGIN_FAILURES_PER_IP,
        f"login-fail-account:{account}": settings.LOGIN_FAILURES_PER_ACCOUNT_ANYWHERE,
    }


def is_blocked(ip: str | None, username: str) -> bool:
    return _reached(_login_limits(ip, username))


def record_failure(ip: str | None, username: str) -> None:
    _count(list(_login_limits(ip, username)), settings.LOGIN_FAILURE_WINDOW)


def window_minutes() -> int:
    return max(1, settings.LOGIN_FAILURE_WINDOW // 60)


def _reset_keys(ip: str | None, email: str) -> tuple[str, str]:
    # Per address whether or not it has an account: a refusal then tells nothing about it.
    return f"reset:{email.strip().lower()}", f"reset-ip:{ip}"


def reset_allowed(ip: str | None, email: str) -> bool:
    """Whether another reset email may go out: a few per address and some more per client
    address per window, so the form cannot be used to flood somebody's inbox."""
    address_key, ip_key = _reset_keys(ip, email)
    return not _reached(
        {
            address_key: settings.PASSWORD_RESETS_PER_ADDRESS,
            ip_key: settings.PASSWORD_RESETS_PER_IP,
        }
    )


def record_reset(ip: str | None, email: str) -> None:
    _count(list(_reset_keys(ip, email)), settings.PASSWORD_RESET_WINDOW)


def reset_window_minutes() -> int:
    return max(1, settings.PASSWORD_RESET_WINDOW // 60)


def _counted_within(key: str, limit: int, window: int) -> bool:
    """Count one more and say whether the count is still within ``limit``: one atomic step,
    so parallel requests cannot both take the last one."""
    full = PREFIX + key
    try:
        pipe = _client().pipeline()
        pipe.incr(full)
        pipe.expire(full, window, nx=True)
        count, _expiry = pipe.execute()
    except RedisError as exc:
        log.error("throttle counters unavailable: %s", exc)
        raise Unavailable from exc
    return int(count) <= limit


def discovery_allowed(ip: str | None) -> bool:
    """Counts one request to the mail-client discovery endpoints (autoconfig, autodiscover,
    profile links) and says whether it is within the limit per client address.

    Counted before answering, refused or not: someone walking a list of addresses to see
    what the answers say is slowed down as much as one who keeps asking after a refusal."""
    return _counted_within(
        f"discovery-ip:{ip}", settings.AUTOCONFIG_REQUESTS_PER_IP, settings.AUTOCONFIG_WINDOW
    )


def backup_use_allowed(customer_id: int, what: str) -> bool:
    """Counts one restore or download (``what``) of a customer's backups and says whether it
    is within the customer's fair use (``BACKUP_RESTORES_PER_CUSTOMER``,
    ``BACKUP_DOWNLOADS_PER_CUSTOMER`` per ``BACKUP_FAIR_USE_WINDOW``): each decrypts a whole
    snapshot or keeps a restore worker busy."""
    limit = (
        settings.BACKUP_RESTORES_PER_CUSTOMER
        if what == "restore"
        else settings.BACKUP_DOWNLOADS_PER_CUSTOMER
    )
    return _counted_within(f"backup-{what}:{customer_id}", limit, settings.BACKUP_FAIR_USE_WINDOW)


def backup_window_minutes() -> int:
    return max(1, settings.BACKUP_FAIR_USE_WINDOW // 60)
