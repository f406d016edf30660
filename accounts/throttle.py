"""Failed-login throttling in the shared cache (Redis), so every web process counts alike."""
from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def _keys(ip: str | None, username: str) -> tuple[str, str]:
    return f"login-fail:{ip}:{username.strip().lower()}", f"login-fail-ip:{ip}"


def is_blocked(ip: str | None, username: str) -> bool:
    account_key, ip_key = _keys(ip, username)
    try:
        counts = cache.get_many([account_key, ip_key])
    except RedisError as exc:  # no cache: let people log in rather than lock everyone out
        log.warning("login throttling unavailable: %s", exc)
        return False
    return (
        counts.get(account_key, 0) >= settings.LOGIN_FAILURES_PER_ACCOUNT
        or counts.get(ip_key, 0) >= settings.LOGIN_FAILURES_PER_IP
    )


def record_failure(ip: str | None, username: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW
    try:
        for key in _keys(ip, username):
            # add() starts the window once; incr() keeps its expiry.
            if not cache.add(key, 1, timeout=window):
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.add(key, 1, timeout=window)
    except RedisError as exc:
        log.warning("login throttling unavailable: %s", exc)


def window_minutes() -> int:
    return max(1, settings.LOGIN_FAILURE_WINDOW // 60)
