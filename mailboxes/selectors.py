"""Reads for the staff and customer pages: one place for the joins and counts templates need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import (
    BigIntegerField,
    Count,
    DateTimeField,
    Exists,
    F,
    FloatField,
    Func,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Cast, Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import AuditEntry, Customer, User
from provider.celery import BACKUP, POLL, server_queue

from .charts import RANGES, build_usage_chart
from .forecast import forecast_days_until_full
from .models import (
    Domain,
    FolderUsage,
    Mailbox,
    MailboxLogin,
    MailServer,
    Plan,
    PlanChangeRequest,
    Protocol,
    QuotaWarning,
)

# Any queryset of mailboxes, annotated or not: the filters keep its type.
_Mailboxes = TypeVar("_Mailboxes", bound=QuerySet[Any])


def _count(queryset: QuerySet[Any], by: str) -> Coalesce:
    """How many rows of ``queryset`` point at the outer row, as a correlated subquery.

    Two ``Count`` annotations over two relations join them with each other: 2,000 domains
    times 20,000 mailboxes of one server were forty million rows and 19 s. One subquery per
    relation counts each table alone, through its foreign-key index.
    """
    counted = (
        queryset.filter(**{by: OuterRef("pk")})
        .order_by()
        .values(by)
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted), 0)


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.annotate(
        domain_count=_count(Domain.objects.all(), "customer"),
        mailbox_count=_count(Mailbox.objects.all(), "domain__customer"),
    ).order_by("name", "pk")


def server_list() -> QuerySet[MailServer]:
    """The servers with their domain counts; their mailboxes are counted by the overview."""
    return MailServer.objects.annotate(
        domain_count=_count(Domain.objects.all(), "mail_server"),
    ).order_by("name")


def customer_domains(customer: Customer) -> QuerySet[Domain]:
    return customer.domains.select_related("mail_server").annotate(
        mailbox_count=Count("mailboxes"),
        allocated_bytes=Coalesce(Sum("mailboxes__quota_bytes"), 0),
    )


def customer_mailboxes(customer: Customer | int, *, active_only: bool = False) -> QuerySet[Mailbox]:
    """A customer's mailboxes, suspended ones included unless ``active_only``: the one
    definition that the staff pages, the portal, backups and the services share."""
    mailboxes = Mailbox.objects.filter(domain__customer=customer)
    if active_only:
        mailboxes = mailboxes.filter(status=Mailbox.Status.ACTIVE)
    return mailboxes.select_related("domain__customer", "plan").order_by(
        "domain__name", "local_part"
    )


def mailbox_queryset() -> QuerySet[Mailbox]:
    """Mailboxes with what their detail page shows, for ``get_object_or_404``."""
    return with_last_login(
        Mailbox.objects.select_related("domain__customer", "plan", "mail_server")
    )


def mailbox_audit_trail(mailbox: Mailbox) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(target_type="mailbox", target_id=mailbox.pk)


# --- Usage: shared by the staff and the customer pages --------------------------------------


@dataclass(frozen=True)
class UsageSummary:
    """Used against quota as the pages show it: words and a level, never a colour alone."""

    used_bytes: int | None
    quota_bytes: int
    percent: int | None  # rounded down, so "100 %" only when really full
    level: str  # "unknown", or by the plan's thresholds (``Plan.usage_level``)

    @property
    def bar_width(self) -> int:
        return min(100, self.percent or 0)

    @property
    def measured(self) -> bool:
        return self.used_bytes is not None


def usage_summary(mailbox: Mailbox) -> UsageSummary:
    used, quota = mailbox.used_bytes, mailbox.quota_bytes
    if used is None or quota <= 0:
        return UsageSummary(used, quota, None, "unknown")
    percent = used * 100 // quota
    return UsageSummary(used, quota, percent, mailbox.plan.usage_level(percent))


def mailbox_folders(mailbox: Mailbox) -> QuerySet[FolderUsage]:
    """The latest per-folder sizes, largest first: where the space went."""
    return mailbox.folders.order_by("-size_bytes", "name")


def mailbox_warnings(mailbox: Mailbox, limit: int = 20) -> list[QuotaWarning]:
    return list(mailbox.warnings.order_by("-created_at", "-id")[:limit])


def usage_history(mailbox: Mailbox, days: int, now: datetime) -> list[tuple[datetime, int]]:
    return list(
        mailbox.samples.filter(taken_at__gte=now - timedelta(days=days), taken_at__lte=now)
        .order_by("taken_at")
        .values_list("taken_at", "used_bytes")
    )


def refresh_pending(mailbox: Mailbox, now: datetime) -> bool:
    """A refresh was asked for recently and its measurement has not landed yet.

    The usage block then reloads itself once in a while; after a few minutes it gives up,
    since a failed measurement leaves the old figures (marked stale) rather than new ones.
    """
    asked = mailbox.refresh_requested_at
    if asked is None or now - asked > timedelta(minutes=2):
        return False
    return mailbox.usage_checked_at is None or mailbox.usage_checked_at < asked


def mailbox_usage_details(mailbox: Mailbox, *, days: int, now: datetime | None = None) -> dict:
    """Everything the usage block needs, for the staff and the customer mailbox pages."""
    now = now or timezone.now()
    return {
        "usage": usage_summary(mailbox),
        "folders": mailbox_folders(mailbox),
        "chart": build_usage_chart(
            usage_history(mailbox, days, now),
            quota_bytes=mailbox.quota_bytes,
            days=days,
            now=now,
        ),
        "chart_ranges": RANGES,
        "forecast_days": forecast_days_until_full(mailbox, now),
        "warnings": mailbox_warnings(mailbox),
        "refresh_pending": refresh_pending(mailbox, now),
    }


# --- Last logins: written by Dovecot into dovecot_last_login (models.MailboxLogin) ----------

LOGIN_PROTOCOLS = [p.value for p in Protocol]


class UnixTime(Func):
    """A datetime as whole seconds since 1970, the unit Dovecot writes."""

    output_field = BigIntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = "FLOOR(EXTRACT(EPOCH FROM %(expressions)s))::bigint"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django keeps SQLite datetimes as UTC text, which strftime reads. "%%%%" is one "%"
        # once the template is filled in and once more when the query is run.
        template = "CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)"
        return self.as_sql(compiler, connection, template=template, **extra)


class FromUnixTime(Func):
    """Seconds since 1970 (NULL stays NULL) as a datetime, for the pages and for ordering."""

    output_field = DateTimeField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="to_timestamp(%(expressions)s)", **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = "datetime(%(expressions)s, 'unixepoch')"
        return self.as_sql(compiler, connection, template=template, **extra)


def own_logins(protocols: list[str]) -> QuerySet[MailboxLogin]:
    """The outer mailbox's logins over ``protocols``, made since it was created: an address
    deleted and created again must not inherit its predecessor's logins."""
    return MailboxLogin.objects.filter(
        username=OuterRef("address"),
        protocol__in=protocols,
        last_login__gte=UnixTime(OuterRef("created_at")),
    )


def _last_login(protocols: list[str]) -> FromUnixTime:
    latest = own_logins(protocols).order_by().values("username").annotate(at=Max("last_login"))
    return FromUnixTime(Subquery(latest.values("at")))


LAST_LOGIN_MIGRATION = ("mailboxes", "0009_last_login")


def _tracking_started() -> Subquery:
    """When the table Dovecot writes logins to was made (that migration's applied time)."""
    app, name = LAST_LOGIN_MIGRATION
    applied = MigrationRecorder.Migration.objects.filter(app=app, name=name).values("applied")
    return Subquery(applied[:1], output_field=DateTimeField())


def with_last_login(mailboxes: QuerySet[Mailbox]) -> QuerySet[Mailbox]:
    """Annotates when each mailbox last logged in, as aware datetimes or None:
    ``last_imap_login``, ``last_pop3_login`` and ``last_login`` (the later of the two), and
    ``logins_recorded_since``: its creation, or when Postamt began recording logins if that
    was later. None means "never" only when that is the mailbox's creation; otherwise it
    means "none since then".

    For lists: each is a correlated lookup by primary key per row, so they can be shown,
    sorted (``order_by(F("last_login").desc(nulls_last=True))``) and filtered on. To find
    mailboxes unused since a date, ``not_logged_in_since`` is cheaper than filtering these.
    """
    return mailboxes.annotate(
        last_imap_login=_last_login([Protocol.IMAP]),
        last_pop3_login=_last_login([Protocol.POP3]),
        last_login=_last_login(LOGIN_PROTOCOLS),
        logins_recorded_since=Greatest(
            F("created_at"), Coalesce(_tracking_started(), F("created_at"))
        ),
    )


def not_logged_in_since(mailboxes: _Mailboxes, since: datetime) -> _Mailboxes:
    """The mailboxes with no IMAP or POP3 login at or after ``since``."""
    recent = MailboxLogin.objects.filter(
        username=OuterRef("address"),
        protocol__in=LOGIN_PROTOCOLS,
        last_login__gte=int(since.timestamp()),
    )
    return mailboxes.exclude(Exists(recent))


def last_login_tracked_since() -> datetime | None:
    """When Postamt's database began recording logins (the migration that made the table):
    no login recorded means "none since then", not "never", for older mailboxes."""
    app, name = LAST_LOGIN_MIGRATION
    return (
        MigrationRecorder.Migration.objects.filter(app=app, name=name)
        .values_list("applied", flat=True)
        .first()
    )


def unused_mailboxes(*, days: int, now: datetime | None = None) -> QuerySet[Mailbox]:
    """Mailboxes without an IMAP or POP3 login for ``days`` days, most full first.

    Mailboxes younger than that are left out: they cannot have been unused for so long.
    Suspended ones stay in: mail still arrives, so they fill up just the same.
    """
    since = (now or timezone.now()) - timedelta(days=days)
    mailboxes = Mailbox.objects.filter(created_at__lte=since).select_related(
        "domain__customer", "plan", "mail_server"
    )
    fullness = Cast(F("used_bytes"), FloatField()) / F("quota_bytes")
    return with_last_login(not_logged_in_since(mailboxes, since)).order_by(
        fullness.desc(nulls_last=True), F("used_bytes").desc(nulls_last=True), "address"
    )


# --- Staff dashboard ------------------------------------------------------------------------


def drifting_mailboxes() -> QuerySet[Mailbox]:
    """Mailboxes Postamt has but their mail server does not know (or refuses to measure)."""
    return Mailbox.objects.filter(usage_state=Mailbox.UsageState.DRIFT).select_related(
        "domain__customer", "mail_server"
    )


def servers_with_unknown_users() -> list[MailServer]:
    return [server for server in MailServer.objects.all() if server.unknown_users]


def pending_plan_requests() -> QuerySet[PlanChangeRequest]:
    return PlanChangeRequest.objects.filter(status=PlanChangeRequest.Status.PENDING).select_related(
        "customer", "mailbox__domain", "mailbox__plan", "plan"
    )


def plan_request_queryset() -> QuerySet[PlanChangeRequest]:
    return PlanChangeRequest.objects.select_related(
        "customer", "mailbox__domain__customer", "mailbox__plan", "plan"
    )


def customer_users(customer: Customer) -> QuerySet[User]:
    """The people who log into the portal; the users API keys act through are not."""
    return customer.users.filter(api_key__isnull=True).order_by("email")


def customer_plan_requests(customer: Customer) -> QuerySet[PlanChangeRequest]:
    return customer.plan_change_requests.select_related("mailbox__domain", "plan")


# --- Customer portal ------------------------------------------------------------------------
# Every query starts from the customer: an id from the URL can only ever find its own rows.


def portal_plan_requests(customer: Customer) -> QuerySet[PlanChangeRequest]:
    return PlanChangeRequest.objects.filter(customer=customer).select_related(
        "mailbox__domain", "plan"
    )


def portal_activity(customer: Customer) -> QuerySet[AuditEntry]:
    """What anyone did to this customer and its mailboxes: staff, its own users, the CLI."""
    return AuditEntry.objects.filter(customer=customer)


def portal_mailbox_activity(customer: Customer, mailbox: Mailbox) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(customer=customer, target_type="mailbox", target_id=mailbox.pk)


def plans_for_customers() -> QuerySet[Plan]:
    """The plans the portal offers: those marked for self-service."""
    return Plan.objects.filter(self_service=True).order_by("monthly_price", "name")


def plans_offered_to(mailbox: Mailbox) -> QuerySet[Plan]:
    """What a customer may ask for, for one mailbox: the plans offered in the portal, and the
    mailbox's own plan (to change only the protocol) even when that one is not offered."""
    return Plan.objects.filter(Q(self_service=True) | Q(pk=mailbox.plan_id)).order_by(
        "monthly_price", "name"
    )


def worker_queues(*, kind: str | None = None, server: str | None = None) -> list[str]:
    """The queues a worker consumes: with neither argument every queue (one worker for all,
    as ``make run`` starts); ``kind`` (poll or backup) narrows to that kind's shared queue
    and every server's; ``server`` to that server's queues only. LookupError for an unknown
    server."""
    kinds = [kind] if kind else [POLL, BACKUP]
    if server is not None:
        if not MailServer.objects.filter(name=server).exists():
            raise LookupError(_("There is no mail server “%(name)s”.") % {"name": server})
        return [server_queue(each, server) for each in kinds]
    names = list(MailServer.objects.order_by("name").values_list("name", flat=True))
    shared = list(kinds)
    if kind is None:  # restores apart: the restore queue's workers hold the backup identity
        shared = [settings.CELERY_TASK_DEFAULT_QUEUE, *kinds, "webhooks"]
        if settings.BACKUP_RESTORE_QUEUE not in shared:
            shared.append(settings.BACKUP_RESTORE_QUEUE)
    return shared + [server_queue(each, name) for name in names for each in kinds]
