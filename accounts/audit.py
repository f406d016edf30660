"""The audit log: every service that changes state calls ``record`` inside its transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models
from django.utils import timezone

from provider.db import copy_rows

from .models import AuditEntry, Customer, User

# Who acted: a logged-in user, a label such as "cli:root" or "worker", or nobody known.
Actor = User | str | None


def actor_label(actor: Actor) -> str:
    if isinstance(actor, User):
        return actor.get_username()
    return actor or "system"


def record(
    action: str,
    target: models.Model,
    *,
    actor: Actor,
    ip: str | None = None,
    customer: Customer | None = None,
    **details: Any,
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor if isinstance(actor, User) else None,
        actor_name=actor_label(actor),
        action=action,
        target_type=target._meta.model_name or "",
        target_id=target.pk,
        target_repr=str(target)[:300],
        customer=customer,
        ip_address=ip,
        details=details,
    )


def record_bulk(
    action: str,
    target_type: type[models.Model],
    targets: Iterable[tuple[int, str, int | None, dict[str, Any]]],
    *,
    actor: Actor,
    ip: str | None = None,
) -> None:
    """One entry per ``(target id, target text, customer id, details)``, as ``record`` writes
    them, in one bulk insert: for changes of thousands of rows at once (a CSV import)."""
    now = timezone.now()
    actor_id = actor.pk if isinstance(actor, User) else None
    name = actor_label(actor)
    model_name = target_type._meta.model_name or ""
    copy_rows(
        AuditEntry,
        (
            "actor",
            "actor_name",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "customer",
            "ip_address",
            "details",
            "created_at",
        ),
        (
            (actor_id, name, action, model_name, pk, text[:300], customer_id, ip, details, now)
            for pk, text, customer_id, details in targets
        ),
    )
