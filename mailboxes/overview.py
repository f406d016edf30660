"""The staff overview's figures: what the hoster has sold, where it lives, and what fills up.

A handful of queries whatever the number of mailboxes: one grouped count of all mailboxes
(by server, protocol, status and plan, with the almost full and full ones), the fullest ten
through the usage index, each server's totals history from ``ServerUsageSample`` (one row
per poll, not the mailboxes' histories) and the newest warnings through their index.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Sum
from django.utils import timezone

from .forecast import FORECAST_DAYS, days_until_full, growth_per_day
from .models import (
    Health,
    Mailbox,
    MailServer,
    Plan,
    Protocol,
    QuotaWarning,
    ServerUsageSample,
    usage_order,
)
from .search import band_condition

FULLEST_SHOWN = 10
WARNINGS_SHOWN = 10
# A server whose last good poll is older than this many poll intervals shows stale figures.
STALE_AFTER_INTERVALS = 2


def _percent(part: int, whole: int | None) -> int | None:
    return int(part * 100 // whole) if whole else None


@dataclass
class Storage:
    """Allocated (the sum of quotas) and used bytes, against a capacity when one is known."""

    mailboxes: int = 0
    allocated: int = 0
    used: int = 0
    capacity: int | None = None

    @property
    def used_percent(self) -> int | None:
        return _percent(self.used, self.capacity)

    @property
    def allocated_percent(self) -> int | None:
        """Over 100 when more is sold than the disks hold (overcommitted)."""
        return _percent(self.allocated, self.capacity)

    @property
    def bar_width(self) -> int:
        return min(100, self.used_percent or 0)


@dataclass
class ServerStorage(Storage):
    server: MailServer | None = None
    growth_per_day: float | None = None  # bytes a day over the last two weeks
    days_until_full: int | None = None  # at that rate, until the capacity is reached
    stale: bool = False  # no successful poll lately: its figures are old

    @property
    def failing(self) -> bool:
        return self.server is not None and self.server.health not in (Health.OK, Health.UNKNOWN)


@dataclass
class PlanCount:
    plan: Plan
    mailboxes: int = 0
    allocated: int = 0
    used: int = 0


@dataclass
class Overview:
    total: Storage
    servers: list[ServerStorage]
    by_protocol: dict[str, int]
    by_status: dict[str, int]
    by_plan: list[PlanCount]
    almost_full: int
    full: int
    fullest: list[Mailbox]
    recent_warnings: list[QuotaWarning]
    growth_per_day: float | None = None
    attention_servers: list[ServerStorage] = field(default_factory=list)


def _server_growth(now: datetime) -> dict[int, float | None]:
    """Bytes a day per server, from its totals after each poll of the last two weeks."""
    history: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    rows = ServerUsageSample.objects.filter(taken_at__gte=now - timedelta(days=FORECAST_DAYS))
    for server_id, taken_at, used in rows.order_by("server_id", "taken_at").values_list(
        "server_id", "taken_at", "used_bytes"
    ):
        history[server_id].append((taken_at, used))
    return {server_id: growth_per_day(samples) for server_id, samples in history.items()}


def staff_overview(now: datetime | None = None) -> Overview:
    now = now or timezone.now()
    plans = {plan.pk: plan for plan in Plan.objects.all()}
    servers = {server.pk: server for server in MailServer.objects.order_by("name")}
    by_server = {
        pk: ServerStorage(server=s, capacity=s.capacity_bytes) for pk, s in servers.items()
    }
    by_plan = {pk: PlanCount(plan=plan) for pk, plan in plans.items()}
    by_protocol = dict.fromkeys(Protocol.values, 0)
    by_status = dict.fromkeys(Mailbox.Status.values, 0)
    # One pass over the mailboxes, the usage bands counted in it too (a band is a range of
    # the usage expression per plan).
    groups = (
        Mailbox.objects.order_by()
        .alias(usage=usage_order())
        .values("mail_server_id", "protocol", "status", "plan_id")
        .annotate(
            n=Count("*"),
            allocated=Sum("quota_bytes"),
            used=Sum("used_bytes"),
            almost_full=Count("pk", filter=band_condition("danger", plans.values())),
            full=Count("pk", filter=band_condition("full", plans.values())),
        )
    )
    almost_full = full = 0
    for group in groups:
        almost_full += group["almost_full"]
        full += group["full"]
        allocated, used = group["allocated"] or 0, group["used"] or 0
        for storage in (by_server[group["mail_server_id"]], by_plan[group["plan_id"]]):
            storage.mailboxes += group["n"]
            storage.allocated += allocated
            storage.used += used
        by_protocol[group["protocol"]] += group["n"]
        by_status[group["status"]] += group["n"]

    growth = _server_growth(now)
    stale_before = now - timedelta(seconds=STALE_AFTER_INTERVALS * settings.POSTAMT_POLL_INTERVAL)
    for pk, storage in by_server.items():
        server = servers[pk]
        storage.growth_per_day = growth.get(pk)
        if storage.capacity:
            storage.days_until_full = days_until_full(
                storage.used, storage.capacity, storage.growth_per_day
            )
        storage.stale = storage.mailboxes > 0 and (
            server.last_poll_ok_at is None or server.last_poll_ok_at < stale_before
        )

    server_list = list(by_server.values())
    capacities = [s.capacity for s in server_list]
    total = Storage(
        mailboxes=sum(s.mailboxes for s in server_list),
        allocated=sum(s.allocated for s in server_list),
        used=sum(s.used for s in server_list),
        # A total capacity only when every server has one: a partial sum would mislead.
        capacity=sum(c for c in capacities if c) if capacities and all(capacities) else None,
    )
    known_growth = [s.growth_per_day for s in server_list if s.growth_per_day is not None]
    return Overview(
        total=total,
        servers=server_list,
        by_protocol=by_protocol,
        by_status=by_status,
        by_plan=[count for count in by_plan.values() if count.mailboxes],
        almost_full=almost_full,
        full=full,
        fullest=list(
            Mailbox.objects.select_related("domain__customer", "plan")
            .filter(used_bytes__isnull=False)
            .order_by(usage_order().desc(), F("id").desc())[:FULLEST_SHOWN]
        ),
        recent_warnings=list(
            QuotaWarning.objects.select_related("mailbox__domain__customer").order_by(
                "-created_at", "-id"
            )[:WARNINGS_SHOWN]
        ),
        growth_per_day=sum(known_growth) if known_growth else None,
        attention_servers=[s for s in server_list if s.stale or s.failing],
    )
