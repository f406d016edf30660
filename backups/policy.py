"""The plan's backup policy: who is backed up, how often, and which snapshots are kept."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime, timedelta
from typing import TypeVar

from django.db.models import Q, QuerySet
from django.utils import timezone

from mailboxes.models import Mailbox, Plan, Protocol

# run_due runs every 15 minutes: without a tolerance, a backup finished at 02:07 would be
# due at 02:07 the next day, picked up at 02:15, and drift a quarter hour a day.
DUE_TOLERANCE = timedelta(minutes=10)

T = TypeVar("T")


def covers(plan: Plan, protocol: str) -> bool:
    """Server-side backups are an IMAP feature; POP3 boxes only if the plan says so."""
    return plan.backup_enabled and (protocol == Protocol.IMAP or plan.backup_include_pop3)


def backed_up_mailboxes() -> QuerySet[Mailbox]:
    """Active mailboxes whose plan backs them up (suspended ones refuse even the master login)."""
    return Mailbox.objects.filter(status=Mailbox.Status.ACTIVE, plan__backup_enabled=True).filter(
        Q(protocol=Protocol.IMAP) | Q(plan__backup_include_pop3=True)
    )


def is_due(last_backup_at: datetime | None, plan: Plan, now: datetime | None = None) -> bool:
    if last_backup_at is None:
        return True
    now = now or timezone.now()
    return last_backup_at + timedelta(hours=plan.backup_interval_hours) <= now + DUE_TOLERANCE


def snapshots_to_keep(
    snapshots: Iterable[T],
    taken_at: Callable[[T], datetime],
    *,
    daily: int,
    weekly: int,
    monthly: int,
) -> list[T]:
    """Grandfather-father-son: the newest snapshot of each of the last ``daily`` days,
    ``weekly`` ISO weeks and ``monthly`` months that have one, and always the newest of all.

    Days, weeks and months are counted in the configured time zone, among those that have
    snapshots (as restic and borg do), so a mailbox that was not backed up for a while does
    not lose its older snapshots all at once.
    """
    newest_first = sorted(snapshots, key=taken_at, reverse=True)
    keep: list[T] = newest_first[:1]

    def pick(count: int, bucket: Callable[[datetime], Hashable]) -> None:
        seen: set[Hashable] = set()
        for snapshot in newest_first:
            if len(seen) >= count:
                break
            key = bucket(timezone.localtime(taken_at(snapshot)))
            if key not in seen:
                seen.add(key)
                if snapshot not in keep:
                    keep.append(snapshot)

    pick(daily, lambda t: t.date())
    pick(weekly, lambda t: t.isocalendar()[:2])
    pick(monthly, lambda t: (t.year, t.month))
    return sorted(keep, key=taken_at, reverse=True)
