"""Reads of people, customers and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import AuditEntry, SupportAccessGrant


@dataclass(frozen=True)
class AuditFilter:
    """What the audit log is narrowed to; every field optional."""

    actor: str = ""
    customer: str = ""
    mailbox: str = ""
    action: str = ""
    since: date | None = None
    until: date | None = None


def audit_entries(wanted: AuditFilter | None = None) -> QuerySet[AuditEntry]:
    """The audit log, newest first, narrowed by ``wanted``.

    Actor and mailbox match parts of the recorded names (a login, ``anna@``); the customer by
    id or part of its name; the days are whole days in the current time zone.
    """
    wanted = wanted or AuditFilter()
    entries = AuditEntry.objects.select_related("customer").order_by("-created_at", "-id")
    if wanted.actor:
        entries = entries.filter(actor_name__icontains=wanted.actor)
    if wanted.customer:
        by_name = Q(customer__name__icontains=wanted.customer)
        entries = entries.filter(
            by_name | Q(customer_id=int(wanted.customer)) if wanted.customer.isdigit() else by_name
        )
    if wanted.mailbox:
        entries = entries.filter(target_type="mailbox", target_repr__icontains=wanted.mailbox)
    if wanted.action:
        entries = entries.filter(action=wanted.action)
    zone = timezone.get_current_timezone()
    if wanted.since:
        entries = entries.filter(created_at__gte=datetime.combine(wanted.since, time.min, zone))
    if wanted.until:
        entries = entries.filter(created_at__lte=datetime.combine(wanted.until, time.max, zone))
    return entries


def latest_support_grant(customer_id: int | None) -> SupportAccessGrant | None:
    """The customer's most recent permission for support, in force or not."""
    if customer_id is None:
        return None
    return SupportAccessGrant.objects.filter(customer=customer_id).first()


def active_support_grant(customer_id: int | None) -> SupportAccessGrant | None:
    """The customer's permission for support in force now, if any (``accounts.roles``)."""
    if customer_id is None:
        return None
    return SupportAccessGrant.objects.filter(customer=customer_id).active().first()
