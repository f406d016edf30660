"""The audit log: every service that changes state calls ``record`` inside its transaction."""

from __future__ import annotations

from typing import Any

from django.db import models

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
