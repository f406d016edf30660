"""Throttles in the shared cache (Redis), so every web process counts alike: failed logins,
and password-reset emails (each one lands in somebody's inbox)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def _reached(limits: dict[str, int]) -> bool:
    """Whether any counter has reached its limit; without a cache, nobody is held back
    rather than everybody."""
    try:
        counts = cache.get_many(list(limits))
    except RedisError as exc:
        log.warning("throttling unavailable: %s", exc)
        return False
    return any(counts.get(key, 0) >= limit for key, limit in limits.items())


def _count(keys: list[str], window: int) -> None:
    try:
        for key in keys:
            # add() starts the window once; incr() keeps its expiry.
            if not cache.add(key, 1, timeout=window):
                try:
                    cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.add(key, 1, timeout=window)
    except RedisError as exc:
        log.warning("throttling unavailable: %s", exc)


def _login_keys(ip: str | None, username: str) -> tuple[str, str]:
    return f"login-fail:{ip}:{username.strip().lower()}", f"login-fail-ip:{ip}"


def is_blocked(ip: str | None, username: str) -> bool:
    account_key, ip_key = _login_keys(ip, username)
    return _reached(
        {
            account_key: settings.LOGIN_FAILURES_PER_ACCOUNT,
            ip_key: settings.LOGIN_FAILURES_PER_IP,
        }
    )


def record_failure(ip: str | None, username: str) -> None:
    _count(list(_login_keys(ip, username)), settings.LOGIN_FAILURE_WINDOW)


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
