"""The events hosters can subscribe to, and ``emit``, which the domain services call inside
their transaction: one delivery row per active endpoint subscribed to the event, each sent by
a task once the transaction commits (and by the sweeper if that task is lost).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from provider.celery import enqueue_after_commit

from .models import WebhookDelivery, WebhookEndpoint

MAILBOX_CREATED = "mailbox.created"
MAILBOX_SUSPENDED = "mailbox.suspended"
QUOTA_THRESHOLD_CROSSED = "quota.threshold_crossed"
QUOTA_FULL = "quota.full"
BACKUP_COMPLETED = "backup.completed"
BACKUP_FAILED = "backup.failed"
RESTORE_COMPLETED = "restore.completed"
# Sent by the "Send test event" button only; nobody subscribes to it.
PING = "ping"

EVENTS = {
    MAILBOX_CREATED: _("A mailbox was created"),
    MAILBOX_SUSPENDED: _("A mailbox was suspended"),
    QUOTA_THRESHOLD_CROSSED: _("A mailbox crossed a warning threshold of its quota"),
    QUOTA_FULL: _("A mailbox is full"),
    BACKUP_COMPLETED: _("A backup completed"),
    BACKUP_FAILED: _("A backup failed"),
    RESTORE_COMPLETED: _("A restore completed"),
}


def payload(
    event: str, data: dict[str, Any], *, event_id: uuid.UUID, at: datetime
) -> dict[str, Any]:
    return {"id": str(event_id), "type": event, "created_at": at.isoformat(), "data": data}


def new_delivery(
    endpoint: WebhookEndpoint, event: str, body: dict[str, Any], event_id: uuid.UUID
) -> WebhookDelivery:
    """An unsaved delivery, due now and counted as queued (its task is sent after commit)."""
    now = timezone.now()
    return WebhookDelivery(
        endpoint=endpoint,
        event=event,
        event_id=event_id,
        payload=body,
        next_attempt_at=now,
        queued_at=now,
    )


def subscribers(event: str) -> list[WebhookEndpoint]:
    # Few rows; filtered here because SQLite has no JSON "contains".
    return [e for e in WebhookEndpoint.objects.filter(active=True) if event in e.events]


def emit(event: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Record ``event`` for every subscribed endpoint; call it inside the change's transaction,
    so the event exists exactly when the change does."""
    return emit_many(event, [data])


def emit_many(event: str, items: Iterable[dict[str, Any]]) -> list[WebhookDelivery]:
    """``emit`` for many events of one type at once (a quota evaluation, an import)."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    endpoints = subscribers(event)
    if not endpoints:
        return []
    now = timezone.now()
    rows: list[WebhookDelivery] = []
    for data in items:
        event_id = uuid.uuid4()
        body = payload(event, data, event_id=event_id, at=now)
        rows.extend(new_delivery(endpoint, event, body, event_id) for endpoint in endpoints)
    created = WebhookDelivery.objects.bulk_create(rows, batch_size=2000)
    for delivery in created:
        enqueue_after_commit("webhooks.deliver", delivery.pk)
    return created
