"""History thinning and the "full in about N days" forecast."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mailboxes.forecast import forecast_days_until_full
from mailboxes.models import MIB, UsageSample
from mailboxes.usage import current_slot, thin_history
from tests.factories import make_mailbox, make_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailbox():
    make_server()
    return make_mailbox(quota_bytes=100 * MIB)


def add_samples(mailbox, start, count, step, used=lambda i: 1000):
    UsageSample.objects.bulk_create(
        UsageSample(mailbox=mailbox, taken_at=start + i * step, used_bytes=used(i))
        for i in range(count)
    )


def test_thinning_keeps_recent_samples_hourly_then_daily(mailbox):
    now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    add_samples(mailbox, now - timedelta(days=2), 8, timedelta(minutes=15))  # recent: all kept
    add_samples(mailbox, now - timedelta(days=20), 8, timedelta(minutes=15))  # 2 whole hours
    midnight = (now - timedelta(days=200)).replace(hour=0)
    add_samples(mailbox, midnight, 96, timedelta(minutes=15))  # 1 whole day

    deleted = thin_history(now)

    assert deleted == (8 - 2) + (96 - 1)
    ages = [now - s.taken_at for s in UsageSample.objects.filter(mailbox=mailbox)]
    assert sum(age > timedelta(days=90) for age in ages) == 1
    assert sum(timedelta(days=7) < age <= timedelta(days=90) for age in ages) == 2
    assert sum(age <= timedelta(days=7) for age in ages) == 8
    assert thin_history(now) == 0  # a second pass finds nothing more to thin


def test_thinning_goes_mailbox_by_mailbox_and_keeps_each_ones_samples(mailbox, monkeypatch):
    monkeypatch.setattr("mailboxes.usage.THIN_MAILBOXES_PER_STATEMENT", 1)
    other = make_mailbox("bert", domain=mailbox.domain, plan=mailbox.plan)
    now = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    hour = (now - timedelta(days=20)).replace(minute=0)
    for box in (mailbox, other):
        add_samples(box, hour, 4, timedelta(minutes=15))  # one hour each

    assert thin_history(now) == 2 * (4 - 1)
    assert sorted(UsageSample.objects.values_list("mailbox_id", "taken_at")) == sorted(
        [(mailbox.pk, hour), (other.pk, hour)]
    )


def test_forecast_extrapolates_the_recent_growth(mailbox):
    now = timezone.now()
    # 1 MiB a day for ten days, ending at 40 MiB of 100 MiB: 60 days left.
    add_samples(mailbox, now - timedelta(days=10), 11, timedelta(days=1), lambda i: (30 + i) * MIB)
    mailbox.used_bytes = 40 * MIB
    assert forecast_days_until_full(mailbox, now) == 60


def test_no_forecast_without_growth_or_history(mailbox):
    now = timezone.now()
    mailbox.used_bytes = 10 * MIB
    assert forecast_days_until_full(mailbox, now) is None
    add_samples(mailbox, now - timedelta(days=5), 6, timedelta(days=1), lambda i: (10 - i) * MIB)
    assert forecast_days_until_full(mailbox, now) is None  # shrinking


def test_slot_is_the_start_of_the_interval(settings):
    settings.POSTAMT_POLL_INTERVAL = 900
    now = timezone.now().replace(hour=10, minute=29, second=59)
    assert current_slot(now) == now.replace(minute=15, second=0, microsecond=0)
