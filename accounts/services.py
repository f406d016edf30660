"""State changes for customers and their logins; each is atomic and audited."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from provider.celery import enqueue_after_commit

from . import audit, roles
from .audit import Actor
from .models import Customer, StaffRole, SupportAccessGrant, User

# How long a customer may let support look into its backups: an hour, a day, a week.
SUPPORT_ACCESS_HOURS = (1, 24, 7 * 24)


def customer_errors(*, name: str, contact_email: str, language: str) -> dict[str, list[str]]:
    """What is wrong with a new customer's (stripped) fields, by field: the one rule for
    ``customer_create`` and the CSV import."""
    errors: dict[str, list[str]] = {}
    name_field = Customer._meta.get_field("name")
    email_field = Customer._meta.get_field("contact_email")
    if not name:
        errors["name"] = [_("Enter the customer's name.")]
    elif name_field.max_length and len(name) > name_field.max_length:
        errors["name"] = [
            _("A customer's name has at most %(max)d characters.") % {"max": name_field.max_length}
        ]
    try:
        validate_email(contact_email)
        if email_field.max_length and len(contact_email) > email_field.max_length:
            raise ValidationError("too long")
    except ValidationError:
        errors["contact_email"] = [_("Enter a valid contact email address.")]
    if language not in dict(settings.LANGUAGES):
        errors["language"] = [
            _("Unknown language “%(code)s”; choose one of: %(choices)s.")
            % {"code": language, "choices": ", ".join(dict(settings.LANGUAGES))}
        ]
    return errors


@transaction.atomic
def customer_create(
    *, name: str, contact_email: str, language: str = "en", actor: Actor, ip: str | None = None
) -> Customer:
    roles.authorize(actor, "customer.create")
    name = name.strip()
    contact_email = contact_email.strip()
    errors = customer_errors(name=name, contact_email=contact_email, language=language)
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
    roles.authorize(actor, "user.create")
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
            audit.record("user.create", user, actor=actor, ip=ip, customer=customer, email=email)
            enqueue_after_commit("accounts.send_user_invite", user.pk)
    except IntegrityError as exc:  # created concurrently under the same name
        raise taken from exc
    return user


@transaction.atomic
def staff_set_role(*, user: User, role: str, actor: Actor, ip: str | None = None) -> User:
    """Make a staff user support, admin or auditor (``accounts.roles``)."""
    roles.authorize(actor, "staff.role")
    if not user.is_staff:
        raise ValidationError({"user": _("%(name)s is not staff.") % {"name": user.get_username()}})
    if role not in StaffRole.values:
        raise ValidationError(
            {
                "role": _("Unknown role “%(role)s”; choose one of: %(choices)s.")
                % {"role": role, "choices": ", ".join(StaffRole.values)}
            }
        )
    old = user.staff_role
    if old != role:
        User.objects.filter(pk=user.pk).update(staff_role=role)
        user.staff_role = role
        audit.record("staff.role", user, actor=actor, ip=ip, old=old, new=role)
    return user


# --- Support access to backups --------------------------------------------------------------


@transaction.atomic
def support_access_grant(
    *, customer: Customer, hours: int, actor: Actor, ip: str | None = None
) -> SupportAccessGrant:
    """Let support list and download the customer's backups for ``hours`` from now
    (``accounts.roles.BY_GRANT``). A grant already in force is not stacked on but moved to the
    new end, earlier or later: the customer's latest choice is what holds."""
    roles.authorize(actor, "support_access.grant", customer_id=customer.pk)
    if hours not in SUPPORT_ACCESS_HOURS:
        raise ValidationError(
            {
                "hours": _("Choose one of: %(choices)s hours.")
                % {"choices": ", ".join(map(str, SUPPORT_ACCESS_HOURS))}
            }
        )
    Customer.objects.select_for_update().filter(pk=customer.pk).first()  # one grant at a time
    now = timezone.now()
    until = now + timedelta(hours=hours)
    granted_by = actor if isinstance(actor, User) else None
    grant = SupportAccessGrant.objects.filter(customer=customer).active(now).first()
    replaced = grant is not None
    if grant is None:
        grant = SupportAccessGrant.objects.create(
            customer=customer, granted_by=granted_by, expires_at=until
        )
    else:
        grant.expires_at = until
        grant.granted_by = granted_by
        grant.save(update_fields=["expires_at", "granted_by"])
    audit.record(
        "support_access.grant",
        customer,
        actor=actor,
        ip=ip,
        customer=customer,
        grant=grant.pk,
        hours=hours,
        until=until.isoformat(),
        replaced=replaced,
    )
    return grant


@transaction.atomic
def support_access_revoke(
    *, customer: Customer, actor: Actor, ip: str | None = None
) -> SupportAccessGrant | None:
    """End the customer's grant now; None when none was in force (nothing to record)."""
    roles.authorize(actor, "support_access.revoke", customer_id=customer.pk)
    Customer.objects.select_for_update().filter(pk=customer.pk).first()
    now = timezone.now()
    grant = SupportAccessGrant.objects.filter(customer=customer).active(now).first()
    if grant is None:
        return None
    grant.revoked_at = now
    grant.revoked_by = actor if isinstance(actor, User) else None
    grant.save(update_fields=["revoked_at", "revoked_by"])
    audit.record(
        "support_access.revoke",
        customer,
        actor=actor,
        ip=ip,
        customer=customer,
        grant=grant.pk,
        until=grant.expires_at.isoformat(),
    )
    return grant


@transaction.atomic
def customer_user_set_active(
    *, user: User, active: bool, actor: Actor, ip: str | None = None
) -> User:
    """Disable a customer's login, or enable it again.

    A disabled login's sessions end with it: on their next request Django's backend no
    longer accepts the user (``ModelBackend.get_user`` refuses inactive users), and the
    sessions stored for it are deleted here as well, so none lingers in the session table.
    """
    roles.authorize(actor, "user.active")
    if user.customer_id is None:
        raise ValidationError(
            {"user": _("%(name)s is not a customer's login.") % {"name": user.get_username()}}
        )
    if user.is_active != active:
        User.objects.filter(pk=user.pk).update(is_active=active)
        user.is_active = active
        audit.record(
            "user.enable" if active else "user.disable",
            user,
            actor=actor,
            ip=ip,
            customer=user.customer,
            email=user.email,
        )
        if not active:
            transaction.on_commit(lambda: end_sessions(user.pk))
    return user


def end_sessions(user_id: int) -> int:
    """Delete the stored sessions of one user; returns how many there were."""
    from django.contrib.sessions.models import Session

    ended = 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user_id):
            session.delete()
            ended += 1
    return ended
