"""State changes for customers, their logins and requests; each is atomic and audited."""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from . import audit
from .audit import Actor
from .models import Customer, PlanChangeRequest, User

if TYPE_CHECKING:  # mailboxes imports accounts; at run time these are imported where used
    from mailboxes.models import Mailbox, Plan


@transaction.atomic
def customer_create(
    *, name: str, contact_email: str, language: str = "en", actor: Actor, ip: str | None = None
) -> Customer:
    name = name.strip()
    contact_email = contact_email.strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [_("Enter the customer's name.")]
    try:
        validate_email(contact_email)
    except ValidationError:
        errors["contact_email"] = [_("Enter a valid contact email address.")]
    if language not in dict(settings.LANGUAGES):
        errors["language"] = [
            _("Unknown language “%(code)s”; choose one of: %(choices)s.")
            % {"code": language, "choices": ", ".join(dict(settings.LANGUAGES))}
        ]
    if errors:
        raise ValidationError(errors)
    customer = Customer.objects.create(name=name, contact_email=contact_email, language=language)
    audit.record("customer.create", customer, actor=actor, ip=ip, customer=customer)
    return customer


# --- Customer users -------------------------------------------------------------------------


def _normalise_email(email: str) -> str:
    """Lower-case the whole address: logins are typed by people, and case must not matter."""
    return email.strip().lower()


def customer_user_create(
    *, customer: Customer, email: str, actor: Actor, ip: str | None = None
) -> User:
    """Give a customer a login; the person sets the password through an emailed link.

    The user name is the address itself, so the login form needs no second identifier, and
    the password is unusable until then: nobody, staff included, ever knows it.
    """
    email = _normalise_email(email)
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ValidationError({"email": _("Enter a valid email address.")}) from exc
    taken = ValidationError(
        {"email": _("There is already a login for %(email)s.") % {"email": email}}
    )
    if User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email)).exists():
        raise taken
    try:
        with transaction.atomic():
            user = User(username=email, email=email, customer=customer)
            user.set_unusable_password()
            try:
                user.full_clean(exclude=["password"])
            except ValidationError as exc:  # e.g. longer than a user name may be
                raise ValidationError({"email": exc.messages}) from exc
            user.save()
            audit.record(
                "user.create", user, actor=actor, ip=ip, customer=customer, email=email
            )
            transaction.on_commit(lambda: _enqueue_invite(user.pk))
    except IntegrityError as exc:  # created concurrently under the same name
        raise taken from exc
    return user


def _enqueue_invite(user_id: int) -> None:
    from .tasks import send_user_invite

    send_user_invite.delay(user_id)


# --- Notification settings ------------------------------------------------------------------

NOTIFICATION_FIELDS = (
    "contact_email",
    "language",
    "only_full_warnings",
    "copy_warnings_to_mailbox",
)


@transaction.atomic
def customer_update_notifications(
    *,
    customer: Customer,
    contact_email: str,
    language: str,
    only_full_warnings: bool,
    copy_warnings_to_mailbox: bool,
    actor: Actor,
    ip: str | None = None,
) -> Customer:
    """Where and how the customer hears about its mailboxes; audited with what changed."""
    from mailboxes.idn import domain_to_ascii
    from mailboxes.models import Mailbox

    contact_email = contact_email.strip()
    errors: dict[str, list[str]] = {}
    try:
        validate_email(contact_email)
    except ValidationError:
        errors["contact_email"] = [_("Enter a valid contact email address.")]
    else:
        local, _at, domain = contact_email.rpartition("@")
        try:
            login = f"{local.lower()}@{domain_to_ascii(domain)}"
        except ValidationError:
            login = contact_email.lower()
        # A warning that a mailbox is full cannot be delivered into that full mailbox.
        if Mailbox.objects.filter(domain__customer=customer, address=login).exists():
            errors["contact_email"] = [
                _(
                    "%(email)s is one of your own mailboxes here: warnings that it is full "
                    "could not reach you. Give an address at another provider."
                )
                % {"email": contact_email}
            ]
    if language not in dict(settings.LANGUAGES):
        errors["language"] = [
            _("Unknown language “%(code)s”; choose one of: %(choices)s.")
            % {"code": language, "choices": ", ".join(dict(settings.LANGUAGES))}
        ]
    if errors:
        raise ValidationError(errors)
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    old = {field: getattr(customer, field) for field in NOTIFICATION_FIELDS}
    customer.contact_email = contact_email
    customer.language = language
    customer.only_full_warnings = bool(only_full_warnings)
    customer.copy_warnings_to_mailbox = bool(copy_warnings_to_mailbox)
    new = {field: getattr(customer, field) for field in NOTIFICATION_FIELDS}
    if new != old:
        customer.save(update_fields=list(NOTIFICATION_FIELDS))
        audit.record(
            "customer.notifications",
            customer,
            actor=actor,
            ip=ip,
            customer=customer,
            old={f: v for f, v in old.items() if new[f] != v},
            new={f: v for f, v in new.items() if old[f] != v},
        )
    return customer


# --- Usage refresh --------------------------------------------------------------------------


def mailbox_request_refresh(*, mailbox: Mailbox, actor: Actor, ip: str | None = None) -> bool:
    """Ask for a measurement now; False while the last request is younger than the limit.

    A measurement logs in to the mailbox with the master user, so it is recorded like every
    other access (the customer sees staff's in their activity log). Rate-limited requests
    change nothing and are not recorded.
    """
    from mailboxes.usage import request_refresh

    with transaction.atomic():
        claimed = request_refresh(mailbox)
        if claimed:
            audit.record("mailbox.refresh", mailbox, actor=actor, ip=ip, customer=mailbox.customer)
    return claimed


# --- Plan change requests -------------------------------------------------------------------


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
    from mailboxes.models import Protocol
    from mailboxes.services import mailbox_change_plan

    protocol = protocol or (
        mailbox.protocol if plan.allows(mailbox.protocol) else plan.protocols[0]
    )
    note = note.strip()
    if protocol not in Protocol.values:
        raise ValidationError({"protocol": _("Choose IMAP or POP3.")})
    if not plan.allows(protocol):
        raise ValidationError(
            {
                "protocol": _("The plan “%(plan)s” does not include %(protocol)s.")
                % {"plan": plan.name, "protocol": Protocol(protocol).label}
            }
        )
    if plan.pk == mailbox.plan_id and protocol == mailbox.protocol:
        raise ValidationError(
            {"plan": _("This mailbox already has this plan and protocol.")}
        )
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
    from mailboxes.models import Mailbox
    from mailboxes.services import mailbox_change_plan

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
    plan_request = _decide(plan_request, PlanChangeRequest.Status.CANCELLED, actor)
    audit.record(
        "plan_request.cancel", plan_request, actor=actor, ip=ip, customer=plan_request.customer
    )
    return plan_request
