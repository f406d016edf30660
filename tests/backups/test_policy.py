"""The plan's policy: who is backed up, when a backup is due, which snapshots are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backups import policy
from mailboxes.services import mailbox_suspend
from tests.factories import make_domain, make_mailbox, make_plan

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_imap_mailboxes_are_backed_up_and_pop3_ones_only_if_the_plan_says_so():
    domain = make_domain()
    imap = make_mailbox("imap", domain=domain, plan=make_plan(protocol="imap"))
    pop3 = make_mailbox("pop", domain=domain, protocol="pop3", plan=make_plan(protocol="pop3"))
    pop3_included = make_mailbox(
        "popb",
        domain=domain,
        protocol="pop3",
        plan=make_plan(protocol="pop3", backup_enabled=True, backup_include_pop3=True),
    )
    make_mailbox("off", domain=domain, plan=make_plan(backup_enabled=False))
    suspended = make_mailbox("gone", domain=domain)
    mailbox_suspend(mailbox=suspended, actor="test")

    assert set(policy.backed_up_mailboxes()) == {imap, pop3_included}
    assert policy.covers(imap.plan, "imap")
    assert not policy.covers(pop3.plan, "pop3")
    assert policy.covers(pop3_included.plan, "pop3")


@pytest.mark.django_db
def test_a_backup_is_due_after_the_plans_interval():
    plan = make_plan(backup_interval_hours=24)
    assert policy.is_due(None, plan, NOW)
    assert not policy.is_due(NOW - timedelta(hours=20), plan, NOW)
    assert policy.is_due(NOW - timedelta(hours=24), plan, NOW)
    # The beat runs every 15 minutes: a backup a few minutes short of the interval is due.
    assert policy.is_due(NOW - timedelta(hours=23, minutes=55), plan, NOW)


def keep(times: list[datetime], **counts: int) -> list[datetime]:
    return policy.snapshots_to_keep(times, lambda t: t, **counts)


def test_grandfather_father_son_keeps_the_newest_of_each_day_week_and_month(settings):
    settings.TIME_ZONE = "UTC"
    # Two backups a day for 120 days, newest first.
    times = [NOW - timedelta(hours=12 * i) for i in range(240)]

    kept = keep(times, daily=7, weekly=4, monthly=6)

    noon = [
        datetime(2025, m, d, 12, 0, tzinfo=UTC)
        for m, d in [
            (3, 15),
            (3, 14),
            (3, 13),
            (3, 12),
            (3, 11),
            (3, 10),
            (3, 9),  # the last seven days
            (3, 2),
            (2, 23),  # the two weeks before (the newer two weeks are among the days)
            (2, 28),  # and the last day of each older month, as far back as they go
        ]
    ]
    month_ends = [
        datetime(y, m, d, 12, 0, tzinfo=UTC)
        for y, m, d in [
            (2025, 1, 31),
            (2024, 12, 31),
            (2024, 11, 30),
        ]
    ]
    assert kept == sorted(noon + month_ends, reverse=True)


def test_retention_counts_only_days_that_have_snapshots(settings):
    settings.TIME_ZONE = "UTC"
    # A mailbox backed up once a week: seven daily snapshots reach back seven weeks.
    times = [NOW - timedelta(days=7 * i) for i in range(20)]

    kept = keep(times, daily=7, weekly=0, monthly=0)

    assert kept == times[:7]


def test_nothing_to_keep_but_the_newest_when_the_plan_keeps_nothing():
    times = [NOW - timedelta(days=i) for i in range(5)]
    assert keep(times, daily=0, weekly=0, monthly=0) == [NOW]
    assert keep([], daily=7, weekly=4, monthly=6) == []
