"""Forecasts from usage history: how fast a mailbox or a server grows, and when it is full."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from .models import Mailbox

FORECAST_DAYS = 14
# Beyond this a forecast says "not within a year": a line through two weeks says nothing
# about the year after.
FORECAST_HORIZON_DAYS = 365


def growth_per_day(samples: list[tuple[datetime, int]]) -> float | None:
    """Bytes per day of a least-squares line through ``(time, bytes)`` samples, oldest first:
    robust to a single spike; None with fewer than two samples a day apart."""
    if len(samples) < 2 or (samples[-1][0] - samples[0][0]) < timedelta(days=1):
        return None
    t0 = samples[0][0]
    xs = [(t - t0).total_seconds() / 86400 for t, _ in samples]
    ys = [float(b) for _, b in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var_x = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var_x


def days_until_full(used: int, limit: int, growth: float | None) -> int | None:
    """Days until ``used`` reaches ``limit`` at ``growth`` bytes a day; None when it is not
    growing or would take longer than ``FORECAST_HORIZON_DAYS``."""
    if growth is None or growth <= 0:
        return None
    days = max(0, int((limit - used) / growth))
    return days if days <= FORECAST_HORIZON_DAYS else None


def forecast_days_until_full(mailbox: Mailbox, now: datetime | None = None) -> int | None:
    """Days until the quota is reached at the rate of the last two weeks, or None."""
    now = now or timezone.now()
    samples = list(
        mailbox.samples.filter(taken_at__gte=now - timedelta(days=FORECAST_DAYS)).values_list(
            "taken_at", "used_bytes"
        )
    )
    if mailbox.used_bytes is None:
        return None
    return days_until_full(mailbox.used_bytes, mailbox.quota_bytes, growth_per_day(samples))
