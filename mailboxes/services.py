"""Provisioning: every state change of domains and mailboxes.

Each function is atomic, validates with a message a hoster can act on, and writes the audit
log in the same transaction. Dovecot reads the committed rows on the next login, so nothing
has to be pushed to the mail server; work on the server's disk is queued after commit.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import slug_re, validate_email
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit, roles
from accounts.audit import Actor
from accounts.models import Customer
from mailserver.dovecot import DovecotInstance
from provider.celery import enqueue_after_commit
from webhooks import events

from .event_data import mailbox_data
from .idn import domain_to_ascii
from .models import Domain, Mailbox, MailServer, Plan, Protocol, StoragePurge
from .passwords import hash_password, validate_mailbox_password
from .placement import place_mailbox
from .selectors import customer_mailboxes
from .usage import request_refresh

# Deliberately narrower than RFC 5322: these local parts work in every client, are safe as
# directory names, and leave out ``*``, Dovecot's master-login separator.
LOCAL_PART_RE = re.compile(r"^[a-z0-9_+-]+(\.[a-z0-9_+-]+)*$")


def _clean_local_part(local_part: str) -> str:
    cleaned = local_part.strip().lower()
    if not cleaned or len(cleaned) > 64 or not LOCAL_PART_RE.match(cleaned):
        raise ValidationError(
            {
                "local_part": _(
                    "“%(value)s” is not a valid mailbox name: use 1–64 letters, digits and "
                    ". _ + - (not at the start or end, no two dots in a row)."
                )
                % {"value": local_part}
            }
        )
    return cleaned


def _check_quota(quota_bytes: int, plan: Plan) -> None:
    if quota_bytes <= 0:
        raise ValidationError({"quota_bytes": _("The quota must be greater than zero.")})
    if quota_bytes > plan.max_quota_bytes:
        raise ValidationError(
            {
                "quota_bytes": _("The plan “%(plan)s” allows at most %(max)s per mailbox.")
                % {"plan": plan.name, "max": filesizeformat(plan.max_quota_bytes)}
            }
        )


def protocol_for(plan: Plan, requested: str | None, current: str | None = None) -> str:
    """The protocol a mailbox gets on ``plan``: the one asked for, checked; else the current
    one if the plan has it; else the plan's first. The one rule for staff, CLI and portal."""
    protocol = requested or (current if current and plan.allows(current) else plan.protocols[0])
    _check_protocol(protocol, plan)
    return protocol


def _check_protocol(protocol: str, plan: Plan) -> None:
    if protocol not in Protocol.values:
        raise ValidationError({"protocol": _("Choose IMAP or POP3.")})
    if not plan.allows(protocol):
        raise ValidationError(
            {
                "protocol": _("The plan “%(plan)s” does not include %(protocol)s.")
                % {"plan": plan.name, "protocol": Protocol(protocol).label}
            }
        )


def storage_path_for(domain_name: str, local_part: str) -> str:
    """Where a new mailbox's mail goes, relative to the server's mail root: unique per
    mailbox, so an address deleted and created again never sees its former owner's mail."""
    return f"{domain_name}/{local_part}.{secrets.token_hex(4)}"


def _check_password(password: str, address: str) -> None:
    try:
        validate_mailbox_password(password, address)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc


@transaction.atomic
def domain_create(
    *,
    customer: Customer,
    name: str,
    mail_server: MailServer | None = None,
    actor: Actor,
    ip: str | None = None,
) -> Domain:
    roles.authorize(actor, "domain.create")
    try:
        ascii_name = domain_to_ascii(name)
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages}) from exc
    if Domain.objects.filter(name=ascii_name).exists():
        raise ValidationError({"name": _("The domain “%(name)s” already exists.") % {"name": name}})
    # Where mail programs are sent for addresses it has no mailbox for yet, and its DNS
    # records' default: placed like a mailbox without quota.
    server = place_mailbox(quota_bytes=0, requested=mail_server)
    domain = Domain.objects.create(name=ascii_name, customer=customer, mail_server=server)
    audit.record("domain.create", domain, actor=actor, ip=ip, customer=customer)
    return domain


def mailbox_create(
    *,
    domain: Domain,
    local_part: str,
    password: str,
    plan: Plan,
    protocol: str | None = None,
    quota_bytes: int | None = None,
    mail_server: MailServer | None = None,
    actor: Actor,
    ip: str | None = None,
) -> Mailbox:
    """A new mailbox, on ``mail_server`` if staff chose one, else where ``placement`` puts it."""
    roles.authorize(actor, "mailbox.create")
    protocol = protocol or plan.protocols[0]
    quota_bytes = plan.default_quota_bytes if quota_bytes is None else quota_bytes
    errors: dict[str, list[str]] = {}
    # Every problem at once, so a form is fixed in one go rather than one error per submit.
    try:
        local_part = _clean_local_part(local_part)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    address = f"{local_part.strip().lower()}@{domain.name}"
    checks = (
        lambda: protocol_for(plan, protocol),
        lambda: _check_quota(quota_bytes, plan),
        lambda: _check_password(password, address),
    )
    for check in checks:
        try:
            check()
        except ValidationError as exc:
            errors.update(exc.message_dict)
    duplicate = ValidationError(
        {
            "local_part": _("The mailbox %(address)s already exists.")
            % {"address": f"{local_part.strip().lower()}@{domain.display_name}"}
        }
    )
    if "local_part" not in errors and Mailbox.objects.filter(address=address).exists():
        errors.update(duplicate.message_dict)
    try:
        server = place_mailbox(quota_bytes=quota_bytes, requested=mail_server)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    password_hash = hash_password(password)  # slow on purpose: keep it outside the transaction
    try:
        with transaction.atomic():
            check_storage_allowance(domain, quota_bytes)
            mailbox = Mailbox.objects.create(
                domain=domain,
                local_part=local_part,
                address=address,
                protocol=protocol,
                plan=plan,
                mail_server=server,
                quota_bytes=quota_bytes,
                password_hash=password_hash,
                password_changed_at=timezone.now(),
                storage_path=storage_path_for(domain.name, local_part),
            )
            audit.record(
                "mailbox.create",
                mailbox,
                actor=actor,
                ip=ip,
                customer=domain.customer,
                protocol=protocol,
                quota_bytes=quota_bytes,
                plan=plan.name,
                server=server.name,
            )
            events.emit(events.MAILBOX_CREATED, {"mailbox": mailbox_data(mailbox)})
    except IntegrityError as exc:  # a concurrent create of the same address won the race
        raise duplicate from exc
    return mailbox


# --- Storage allowances (quota pools) ---------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    """How much of an allowance the quotas of the mailboxes take."""

    allocated_bytes: int
    allowance_bytes: int | None

    @property
    def left_bytes(self) -> int | None:
        if self.allowance_bytes is None:
            return None
        return max(0, self.allowance_bytes - self.allocated_bytes)

    def fits(self, more_bytes: int) -> bool:
        """Whether ``more_bytes`` of quota may still be given out."""
        return (
            self.allowance_bytes is None
            or self.allocated_bytes + more_bytes <= self.allowance_bytes
        )


def allocation(owner: Customer | Domain, *, excluding: Mailbox | None = None) -> Allocation:
    """The sum of the quotas of a customer's or a domain's mailboxes (suspended ones too: they
    keep their mail; ``excluding`` one whose quota is about to change), against its allowance."""
    mailboxes = customer_mailboxes(owner) if isinstance(owner, Customer) else owner.mailboxes.all()
    if excluding is not None:
        mailboxes = mailboxes.exclude(pk=excluding.pk)
    allocated = mailboxes.aggregate(total=Sum("quota_bytes"))["total"] or 0
    allowance = (
        type(owner).objects.values_list("storage_allowance_bytes", flat=True).get(pk=owner.pk)
    )
    return Allocation(allocated, allowance)


def check_storage_allowance(
    domain: Domain, quota_bytes: int, *, replacing: Mailbox | None = None
) -> None:
    """Refuse a quota that would take the domain or its customer past its storage allowance.

    The one rule for pages, CLI, import and API. Locks the customer's row for the rest of the
    transaction, so two mailboxes created at once cannot both fit into the last gigabyte.
    """
    customer = Customer.objects.select_for_update().get(pk=domain.customer_id)
    for owner, name in (
        (domain, _("the domain %(name)s") % {"name": domain.display_name}),
        (customer, _("the customer %(name)s") % {"name": customer.name}),
    ):
        have = allocation(owner, excluding=replacing)
        if have.fits(quota_bytes):
            continue
        raise ValidationError(
            {
                "quota_bytes": _(
                    "The storage allowance of %(owner)s is %(allowance)s and %(left)s of it "
                    "is left; this quota needs %(quota)s."
                )
                % {
                    "owner": name,
                    "allowance": filesizeformat(have.allowance_bytes or 0),
                    "left": filesizeformat(have.left_bytes or 0),
                    "quota": filesizeformat(quota_bytes),
                }
            }
        )


@transaction.atomic
def storage_allowance_set(
    *,
    owner: Customer | Domain,
    allowance_bytes: int | None,
    actor: Actor,
    ip: str | None = None,
) -> Customer | Domain:
    """Give a customer or a domain a storage allowance (None: no limit), never below what its
    mailboxes' quotas already take."""
    roles.authorize(actor, "storage.allowance")
    owner = type(owner).objects.select_for_update().get(pk=owner.pk)
    if allowance_bytes is not None:
        allocated = allocation(owner).allocated_bytes
        if allowance_bytes < allocated:
            raise ValidationError(
                {
                    "allowance_bytes": _(
                        "%(allocated)s is already given to its mailboxes' quotas: lower those "
                        "first, or allow at least that much."
                    )
                    % {"allocated": filesizeformat(allocated)}
                }
            )
    old = owner.storage_allowance_bytes
    if old != allowance_bytes:
        owner.storage_allowance_bytes = allowance_bytes
        owner.save(update_fields=["storage_allowance_bytes"])
        customer = owner if isinstance(owner, Customer) else owner.customer
        audit.record(
            "storage.allowance",
            owner,
            actor=actor,
            ip=ip,
            customer=customer,
            old=old,
            new=allowance_bytes,
        )
    return owner


def mailbox_set_password(
    *, mailbox: Mailbox, password: str, actor: Actor, ip: str | None = None
) -> Mailbox:
    roles.authorize(actor, "mailbox.password", customer_id=mailbox.domain.customer_id)
    _check_password(password, mailbox.address)
    password_hash = hash_password(password)
    with transaction.atomic():
        mailbox.password_hash = password_hash
        mailbox.password_changed_at = timezone.now()
        # Whoever changed it, the customer's contact address hears of it (password_notices).
        mailbox.password_notice_due = True
        mailbox.save(
            update_fields=[
                "password_hash",
                "password_changed_at",
                "password_notice_due",
                "updated_at",
            ]
        )
        audit.record("mailbox.password", mailbox, actor=actor, ip=ip, customer=mailbox.customer)
        enqueue_after_commit("mailboxes.send_password_notice", mailbox.pk)
    return mailbox


@transaction.atomic
def mailbox_set_quota(
    *, mailbox: Mailbox, quota_bytes: int, actor: Actor, ip: str | None = None
) -> Mailbox:
    roles.authorize(actor, "mailbox.quota")
    _check_quota(quota_bytes, mailbox.plan)
    old = mailbox.quota_bytes
    if quota_bytes > old:  # less is always allowed, even in a pool over its allowance
        check_storage_allowance(mailbox.domain, quota_bytes, replacing=mailbox)
    mailbox.quota_bytes = quota_bytes
    mailbox.save(update_fields=["quota_bytes", "updated_at"])
    audit.record(
        "mailbox.quota",
        mailbox,
        actor=actor,
        ip=ip,
        customer=mailbox.customer,
        old=old,
        new=quota_bytes,
    )
    _reevaluate_warnings(mailbox)
    return mailbox


@transaction.atomic
def mailbox_change_plan(
    *,
    mailbox: Mailbox,
    plan: Plan,
    protocol: str | None = None,
    actor: Actor,
    ip: str | None = None,
) -> Mailbox:
    """Move a mailbox to another plan and/or protocol; the quota is capped at the new plan's."""
    roles.authorize(actor, "mailbox.plan", customer_id=mailbox.domain.customer_id)
    protocol = protocol_for(plan, protocol, current=mailbox.protocol)
    old = {"plan": mailbox.plan.name, "protocol": mailbox.protocol, "quota": mailbox.quota_bytes}
    mailbox.plan = plan
    mailbox.protocol = protocol
    mailbox.quota_bytes = min(mailbox.quota_bytes, plan.max_quota_bytes)
    mailbox.save(update_fields=["plan", "protocol", "quota_bytes", "updated_at"])
    audit.record(
        "mailbox.plan",
        mailbox,
        actor=actor,
        ip=ip,
        customer=mailbox.customer,
        old=old,
        new={"plan": plan.name, "protocol": protocol, "quota": mailbox.quota_bytes},
    )
    _reevaluate_warnings(mailbox)
    return mailbox


def _reevaluate_warnings(mailbox: Mailbox) -> None:
    """A lower quota or another plan can cross a threshold without any new mail.

    If the broker is down, the next poll of the server evaluates it instead."""

    enqueue_after_commit("mailboxes.evaluate_warnings", mailbox_ids=[mailbox.pk])


def _set_status(
    mailbox: Mailbox, status: str, action: str, actor: Actor, ip: str | None
) -> Mailbox:
    if mailbox.status == status:
        raise ValidationError(
            _("The mailbox %(address)s is already %(status)s.")
            % {"address": mailbox.display_address, "status": Mailbox.Status(status).label}
        )
    mailbox.status = status
    mailbox.save(update_fields=["status", "updated_at"])
    audit.record(action, mailbox, actor=actor, ip=ip, customer=mailbox.customer)
    return mailbox


@transaction.atomic
def mailbox_suspend(*, mailbox: Mailbox, actor: Actor, ip: str | None = None) -> Mailbox:
    """Refuse logins at once; mail keeps arriving so the customer loses nothing."""
    roles.authorize(actor, "mailbox.suspend")
    _set_status(mailbox, Mailbox.Status.SUSPENDED, "mailbox.suspend", actor, ip)
    events.emit(events.MAILBOX_SUSPENDED, {"mailbox": mailbox_data(mailbox)})
    return mailbox


@transaction.atomic
def mailbox_reactivate(*, mailbox: Mailbox, actor: Actor, ip: str | None = None) -> Mailbox:
    roles.authorize(actor, "mailbox.reactivate")
    return _set_status(mailbox, Mailbox.Status.ACTIVE, "mailbox.reactivate", actor, ip)


@transaction.atomic
def mailbox_delete(*, mailbox: Mailbox, actor: Actor, ip: str | None = None) -> None:
    """Remove the mailbox: logins and deliveries stop at commit; a worker purges its mail."""
    roles.authorize(actor, "mailbox.delete")

    audit.record("mailbox.delete", mailbox, actor=actor, ip=ip, customer=mailbox.customer)
    purge = StoragePurge.objects.create(
        server_id=mailbox.mail_server_id,
        storage_path=mailbox.storage_path,
        address=mailbox.address,
    )
    mailbox.delete()
    enqueue_after_commit("mailboxes.purge_storage", purge.pk)


@transaction.atomic
def plan_create(
    *,
    name: str,
    allows_imap: bool,
    allows_pop3: bool,
    default_quota_bytes: int,
    max_quota_bytes: int,
    monthly_price: Decimal = Decimal("0.00"),
    currency: str = "EUR",
    backup_enabled: bool = True,
    self_service: bool = False,
    actor: Actor,
    ip: str | None = None,
) -> Plan:
    roles.authorize(actor, "plan.create")
    name = name.strip()
    currency = currency.strip().upper()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [_("Enter the plan's name.")]
    elif Plan.objects.filter(name=name).exists():
        errors["name"] = [_("The plan “%(name)s” already exists.") % {"name": name}]
    if not (allows_imap or allows_pop3):
        errors["allows_imap"] = [_("A plan must allow IMAP, POP3 or both.")]
    if default_quota_bytes <= 0 or max_quota_bytes <= 0:
        errors["default_quota_bytes"] = [_("Quotas must be greater than zero.")]
    elif default_quota_bytes > max_quota_bytes:
        errors["default_quota_bytes"] = [
            _("The default quota (%(default)s) is larger than the largest allowed (%(max)s).")
            % {
                "default": filesizeformat(default_quota_bytes),
                "max": filesizeformat(max_quota_bytes),
            }
        ]
    if not monthly_price.is_finite() or monthly_price < 0:
        errors["monthly_price"] = [_("The price must be zero or more.")]
    if not re.fullmatch(r"[A-Z]{3}", currency):
        errors["currency"] = [_("Give the currency as a three-letter code such as EUR.")]
    if errors:
        raise ValidationError(errors)
    plan = Plan(
        name=name,
        allows_imap=allows_imap,
        allows_pop3=allows_pop3,
        default_quota_bytes=default_quota_bytes,
        max_quota_bytes=max_quota_bytes,
        monthly_price=monthly_price,
        currency=currency,
        backup_enabled=backup_enabled,
        self_service=self_service,
    )
    plan.full_clean()  # the column limits: name length, price digits
    plan.save()
    audit.record(
        "plan.create",
        plan,
        actor=actor,
        ip=ip,
        protocols=plan.protocols,
        default_quota_bytes=default_quota_bytes,
        max_quota_bytes=max_quota_bytes,
        monthly_price=str(monthly_price),
        currency=currency,
        backup_enabled=backup_enabled,
        self_service=self_service,
    )
    return plan


@transaction.atomic
def plan_set_self_service(
    *, plan: Plan, offered: bool, actor: Actor, ip: str | None = None
) -> Plan:
    """Offer a plan to customers in the portal, or stop offering it. Mailboxes already on it
    keep it; customers just cannot ask for it any more."""
    roles.authorize(actor, "plan.self_service")
    if plan.self_service != offered:
        Plan.objects.filter(pk=plan.pk).update(self_service=offered)
        plan.self_service = offered
        audit.record("plan.self_service", plan, actor=actor, ip=ip, offered=offered)
    return plan


# Only the variable's name is stored; the password itself stays in the environment.
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAIL_SERVER_FIELDS = (
    "hostname",
    "imap_port",
    "pop3_port",
    "imaps_port",
    "pop3s_port",
    "lmtp_port",
    "master_user",
    "master_password_env",
    "active",
    "capacity_bytes",
)


def _mail_server_errors(server: MailServer) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not server.name or len(server.name) > 64 or not slug_re.match(server.name):
        errors["name"] = [
            _("“%(name)s” is not a valid server name: use letters, digits, - and _.")
            % {"name": server.name}
        ]
    if not server.hostname.strip() or any(c.isspace() for c in server.hostname):
        errors["hostname"] = [_("Enter the server's host name or IP address.")]
    if server.capacity_bytes is not None and server.capacity_bytes < 0:
        errors["capacity_bytes"] = [_("The capacity cannot be negative.")]
    for field, label in (
        ("imap_port", "IMAP"),
        ("pop3_port", "POP3"),
        ("imaps_port", "IMAPS"),
        ("pop3s_port", "POP3S"),
        ("lmtp_port", "LMTP"),
    ):
        if not 1 <= getattr(server, field) <= 65535:
            errors[field] = [
                _("The %(protocol)s port must be between 1 and 65535.") % {"protocol": label}
            ]
    if not server.master_user.strip():
        errors["master_user"] = [_("Enter the master user's name.")]
    if not _ENV_NAME_RE.match(server.master_password_env):
        errors["master_password_env"] = [
            _("“%(name)s” is not an environment variable name.")
            % {"name": server.master_password_env}
        ]
    return errors


@transaction.atomic
def mail_server_save(
    *,
    name: str,
    hostname: str | None = None,
    imap_port: int | None = None,
    pop3_port: int | None = None,
    imaps_port: int | None = None,
    pop3s_port: int | None = None,
    lmtp_port: int | None = None,
    master_user: str | None = None,
    master_password_env: str | None = None,
    active: bool | None = None,
    capacity_bytes: int | None = None,
    actor: Actor,
    ip: str | None = None,
) -> MailServer:
    """Create the server ``name``, or change the given fields of it (None keeps a field;
    a capacity of 0 removes it).

    One function for both, so provisioning scripts can be run again and converge.
    """
    roles.authorize(actor, "mailserver.save")
    server = MailServer.objects.select_for_update().filter(name=name).first()
    created = server is None
    if server is None:
        server = MailServer(name=name)
    wanted = {
        "hostname": hostname,
        "imap_port": imap_port,
        "pop3_port": pop3_port,
        "imaps_port": imaps_port,
        "pop3s_port": pop3s_port,
        "lmtp_port": lmtp_port,
        "master_user": master_user,
        "master_password_env": master_password_env,
        "active": active,
        "capacity_bytes": capacity_bytes,
    }
    old = {field: getattr(server, field) for field in _MAIL_SERVER_FIELDS}
    for field, value in wanted.items():
        if value is not None:
            setattr(server, field, value)
    if server.capacity_bytes == 0:
        server.capacity_bytes = None
    new = {field: getattr(server, field) for field in _MAIL_SERVER_FIELDS}
    errors = _mail_server_errors(server)
    if errors:
        raise ValidationError(errors)
    if created:
        server.save()
        audit.record("mailserver.create", server, actor=actor, ip=ip, **new)
    elif new != old:
        server.save()
        audit.record(
            "mailserver.update",
            server,
            actor=actor,
            ip=ip,
            old={f: v for f, v in old.items() if new[f] != v},
            new={f: v for f, v in new.items() if old[f] != v},
        )
    return server


def mail_server_register_local(instance: DovecotInstance) -> MailServer:
    """The MailServer row of the Dovecot this machine runs, with its current ports.

    Not audited: it is the set-up of `make run`, the tests and the benchmarks, which rewrite
    the ports on every start, not a staff decision.
    """
    server, _created = MailServer.objects.update_or_create(
        name=instance.server, defaults=instance.server_fields()
    )
    return server


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
    roles.authorize(actor, "customer.notifications", customer_id=customer.pk)
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
        if customer_mailboxes(customer).filter(address=login).exists():
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
    roles.authorize(actor, "mailbox.refresh", customer_id=mailbox.domain.customer_id)
    with transaction.atomic():
        claimed = request_refresh(mailbox)
        if claimed:
            audit.record("mailbox.refresh", mailbox, actor=actor, ip=ip, customer=mailbox.customer)
    return claimed
