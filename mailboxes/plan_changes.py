"""Customers' requests for another plan or protocol, and staff's answers; atomic and audited."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit, roles
from accounts.audit import Actor
from accounts.models import User

from . import selectors
from .models import Mailbox, Plan, PlanChangeRequest
from .services import mailbox_change_plan, protocol_for


def self_service_allowed(mailbox: Mailbox, plan: Plan) -> bool:
    """May this change apply without staff? Per ``POSTAMT_SELF_SERVICE_PLAN_CHANGES``.

    Never when the new plan's largest quota is below the mailbox's current quota: the quota
    would be cut, and mail already stored could leave the mailbox over its limit.
    """
    allowed = getattr(settings, "POSTAMT_SELF_SERVICE_PLAN_CHANGES", False)
    if allowed is True:
        ok = True
    elif not allowed:
        ok = False
    else:
        ok = plan.name in set(allowed)
    return ok and plan.max_quota_bytes >= mailbox.quota_bytes


def plan_change_request(
    *,
    mailbox: Mailbox,
    plan: Plan,
    protocol: str | None = None,
    note: str = "",
    actor: Actor,
    ip: str | None = None,
) -> PlanChangeRequest:
    """Record a customer's wish for another plan or protocol; apply it at once if allowed."""
    roles.authorize(actor, "plan_request.create", customer_id=mailbox.domain.customer_id)
    protocol = protocol_for(plan, protocol, current=mailbox.protocol)
    note = note.strip()
    if plan.pk == mailbox.plan_id and protocol == mailbox.protocol:
        raise ValidationError({"plan": _("This mailbox already has this plan and protocol.")})
    if not selectors.plans_offered_to(mailbox).filter(pk=plan.pk).exists():
        raise ValidationError({"plan": _("This plan is not offered here; please ask us about it.")})
    if len(note) > 1000:
        raise ValidationError({"note": _("Keep the message under 1000 characters.")})
    pending = ValidationError(
        _(
            "There is already a request for this mailbox waiting for approval; withdraw it "
            "first to ask for something else."
        )
    )
    self_service = self_service_allowed(mailbox, plan)
    try:
        with transaction.atomic():
            plan_request = PlanChangeRequest.objects.create(
                customer=mailbox.customer,
                mailbox=mailbox,
                from_plan_name=mailbox.plan.name,
                from_protocol=mailbox.protocol,
                plan=plan,
                protocol=protocol,
                note=note,
                requested_by=actor if isinstance(actor, User) else None,
                requested_by_name=audit.actor_label(actor),
            )
            audit.record(
                "plan_request.create",
                plan_request,
                actor=actor,
                ip=ip,
                customer=mailbox.customer,
                mailbox=mailbox.address,
                plan=plan.name,
                protocol=protocol,
            )
            if self_service:
                mailbox_change_plan(
                    mailbox=mailbox, plan=plan, protocol=protocol, actor=actor, ip=ip
                )
                plan_request.status = PlanChangeRequest.Status.APPLIED
                plan_request.decided_by_name = audit.actor_label(actor)
                plan_request.decided_at = timezone.now()
                plan_request.save(update_fields=["status", "decided_by_name", "decided_at"])
    except IntegrityError as exc:  # the one-pending-per-mailbox constraint
        raise pending from exc
    return plan_request


def _decide(
    plan_request: PlanChangeRequest, status: str, actor: Actor, reason: str = ""
) -> PlanChangeRequest:
    """Move a pending request on, exactly once: the conditional UPDATE must win."""
    now = timezone.now()
    won = PlanChangeRequest.objects.filter(
        pk=plan_request.pk, status=PlanChangeRequest.Status.PENDING
    ).update(
        status=status,
        decided_by_name=audit.actor_label(actor),
        decided_at=now,
        decision_note=reason.strip()[:1000],
    )
    if not won:
        plan_request.refresh_from_db()
        raise ValidationError(
            _("This request was already dealt with: it is now “%(status)s”.")
            % {"status": plan_request.get_status_display()}
        )
    plan_request.refresh_from_db()
    return plan_request


@transaction.atomic
def plan_change_approve(
    *, plan_request: PlanChangeRequest, actor: Actor, ip: str | None = None
) -> PlanChangeRequest:
    """Staff say yes: the mailbox changes plan in the same transaction, or nothing happens."""
    roles.authorize(actor, "plan_request.approve")
    plan_request = _decide(plan_request, PlanChangeRequest.Status.APPROVED, actor)
    mailbox = Mailbox.objects.select_related("domain__customer", "plan").get(
        pk=plan_request.mailbox_id
    )
    mailbox_change_plan(
        mailbox=mailbox,
        plan=plan_request.plan,
        protocol=plan_request.protocol,
        actor=actor,
        ip=ip,
    )
    audit.record(
        "plan_request.approve", plan_request, actor=actor, ip=ip, customer=plan_request.customer
    )
    return plan_request


@transaction.atomic
def plan_change_decline(
    *, plan_request: PlanChangeRequest, reason: str = "", actor: Actor, ip: str | None = None
) -> PlanChangeRequest:
    roles.authorize(actor, "plan_request.decline")
    plan_request = _decide(plan_request, PlanChangeRequest.Status.DECLINED, actor, reason)
    audit.record(
        "plan_request.decline",
        plan_request,
        actor=actor,
        ip=ip,
        customer=plan_request.customer,
        reason=plan_request.decision_note,
    )
    return plan_request


@transaction.atomic
def plan_change_cancel(
    *, plan_request: PlanChangeRequest, actor: Actor, ip: str | None = None
) -> PlanChangeRequest:
    """The customer withdraws a request that is still waiting."""
    roles.authorize(actor, "plan_request.cancel", customer_id=plan_request.customer_id)
    plan_request = _decide(plan_request, PlanChangeRequest.Status.CANCELLED, actor)
    audit.record(
        "plan_request.cancel", plan_request, actor=actor, ip=ip, customer=plan_request.customer
    )
    return plan_request
