"""Plans, mail servers, domains and mailboxes.

The ``dovecot_users`` view (see dovecot_view.py) is the contract with Dovecot: it reads
passwords, protocols and quota limits from there on every login and delivery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from accounts.models import Customer
from provider.secrets import secret

from .idn import domain_to_unicode

MIB = 1024 * 1024
GIB = 1024 * MIB


FULL_PERCENT = 100


def default_thresholds() -> list[int]:
    return [80, 90, 95, FULL_PERCENT]


class Protocol(models.TextChoices):
    IMAP = "imap", "IMAP"
    POP3 = "pop3", "POP3"


class Plan(models.Model):
    """What a customer buys. Per the seed, POP3 is the cheap tier and IMAP the backed-up one."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    allows_imap = models.BooleanField(_("IMAP allowed"), default=True)
    allows_pop3 = models.BooleanField(_("POP3 allowed"), default=True)
    default_quota_bytes = models.BigIntegerField(
        _("default quota (bytes)"), validators=[MinValueValidator(1)]
    )
    max_quota_bytes = models.BigIntegerField(
        _("largest quota allowed (bytes)"), validators=[MinValueValidator(1)]
    )
    backup_enabled = models.BooleanField(
        _("backed up"), default=True, help_text=_("Server-side backups of IMAP mailboxes.")
    )
    backup_include_pop3 = models.BooleanField(_("also back up POP3 mailboxes"), default=False)
    backup_interval_hours = models.PositiveIntegerField(
        _("backup interval (hours)"), default=24, validators=[MinValueValidator(1)]
    )
    keep_daily = models.PositiveSmallIntegerField(_("daily snapshots kept"), default=7)
    keep_weekly = models.PositiveSmallIntegerField(_("weekly snapshots kept"), default=4)
    keep_monthly = models.PositiveSmallIntegerField(_("monthly snapshots kept"), default=6)
    warning_thresholds = models.JSONField(_("warning thresholds (%)"), default=default_thresholds)
    monthly_price = models.DecimalField(
        _("monthly price"), max_digits=8, decimal_places=2, default=Decimal("0.00")
    )
    currency = models.CharField(_("currency"), max_length=3, default="EUR")
    # Whether customers see the plan in the portal and may ask for it: plans for a few
    # customers, old plans and the hoster's own are not offered unless marked.
    self_service = models.BooleanField(
        _("offered in the portal"),
        default=False,
        help_text=_("Customers may choose this plan for their mailboxes in the portal."),
    )

    class Meta:
        ordering = ["monthly_price", "name"]
        verbose_name = _("plan")
        verbose_name_plural = _("plans")

    def __str__(self) -> str:
        return self.name

    def allows(self, protocol: str) -> bool:
        return {Protocol.IMAP: self.allows_imap, Protocol.POP3: self.allows_pop3}[
            Protocol(protocol)
        ]

    @property
    def protocols(self) -> list[str]:
        return [p.value for p in Protocol if self.allows(p)]

    @property
    def thresholds(self) -> list[int]:
        """The warning thresholds in percent, sorted, each within 1–100."""
        return sorted({int(t) for t in self.warning_thresholds if 0 < int(t) <= FULL_PERCENT})

    def usage_level(self, percent: int) -> str:
        """How a mailbox ``percent`` full looks on every page: "full" at 100 %, "danger" from
        the highest warning threshold below that, "warn" from the lowest, else "ok".

        The thresholds that send the warning emails colour the bars, so a bar is never "ok"
        while its customer is being warned.
        """
        if percent >= FULL_PERCENT:
            return "full"
        below_full = [t for t in self.thresholds if t < FULL_PERCENT]
        if below_full and percent >= below_full[-1] and len(below_full) > 1:
            return "danger"
        if below_full and percent >= below_full[0]:
            return "warn"
        return "ok"


def _secret_from_env(name: str, settings_name: str) -> str:
    """A secret by variable name; the settings' value only for the default name, so a typo
    in a per-server variable shows up as a failed login, not as another server's secret."""
    return secret(name, getattr(settings, name, "") if name == settings_name else "")


class Health(models.TextChoices):
    UNKNOWN = "unknown", _("not polled yet")
    OK = "ok", _("ok")
    FAILING = "failing", _("unreachable")
    AUTH_FAILED = "auth_failed", _("master login refused")


class MailServer(models.Model):
    """A Dovecot server. Its master password lives in the environment, never in this table."""

    name = models.SlugField(
        _("name"),
        max_length=64,
        unique=True,
        help_text=_("The name its Dovecot configuration filters on."),
    )
    hostname = models.CharField(_("host"), max_length=255, default="127.0.0.1")
    # STARTTLS on these two, implicit TLS on the next two: workers use IMAPS.
    imap_port = models.PositiveIntegerField(_("IMAP port"), default=143)
    pop3_port = models.PositiveIntegerField(_("POP3 port"), default=110)
    imaps_port = models.PositiveIntegerField(_("IMAPS port"), default=993)
    pop3s_port = models.PositiveIntegerField(_("POP3S port"), default=995)
    lmtp_port = models.PositiveIntegerField(_("LMTP port"), default=24)
    master_user = models.CharField(_("master user"), max_length=100, default="postamt")
    master_password_env = models.CharField(
        _("master password variable"),
        max_length=100,
        default="POSTAMT_MASTER_PASSWORD",
        help_text=_("Name of the environment variable that holds the master password."),
    )
    doveadm_port = models.PositiveIntegerField(
        _("doveadm HTTP API port"),
        null=True,
        blank=True,
        help_text=_("Optional: lets polls compare Postamt's mailboxes with Dovecot's users."),
    )
    doveadm_api_key_env = models.CharField(
        _("doveadm API key variable"),
        max_length=100,
        default="POSTAMT_DOVEADM_API_KEY",
        help_text=_("Name of the environment variable that holds the doveadm API key."),
    )
    active = models.BooleanField(_("accepts new mailboxes"), default=True)
    # Postamt cannot see a remote server's disks: the hoster says how much mail it may hold,
    # and the overview forecasts when the measured usage reaches it.
    capacity_bytes = models.BigIntegerField(
        _("capacity (bytes)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("How much mail its storage may hold; the overview forecasts when it is full."),
    )
    poll_concurrency = models.PositiveSmallIntegerField(
        _("parallel usage checks"),
        default=8,
        validators=[MinValueValidator(1)],
        help_text=_("How many mailboxes a poll measures at once on this server."),
    )
    health = models.CharField(
        _("health"), max_length=12, choices=Health.choices, default=Health.UNKNOWN
    )
    health_message = models.TextField(_("health details"), blank=True)
    last_poll_at = models.DateTimeField(_("last poll"), null=True, blank=True)
    last_poll_ok_at = models.DateTimeField(_("last successful poll"), null=True, blank=True)
    # Logins Dovecot lists (userdb iteration) that Postamt does not have for this server.
    unknown_users = models.JSONField(_("users unknown to Postamt"), default=list, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("mail server")
        verbose_name_plural = _("mail servers")

    def __str__(self) -> str:
        return self.name

    def master_password(self) -> str:
        """The master password, read from the environment when needed (``*_FILE`` works too)."""
        return _secret_from_env(self.master_password_env, "POSTAMT_MASTER_PASSWORD")

    def doveadm_api_key(self) -> str:
        return _secret_from_env(self.doveadm_api_key_env, "POSTAMT_DOVEADM_API_KEY")


class Domain(models.Model):
    """A mail domain, stored as lower-case punycode (what Dovecot and SMTP see)."""

    name = models.CharField(_("domain"), max_length=253, unique=True)
    customer = models.ForeignKey(
        Customer, verbose_name=_("customer"), on_delete=models.PROTECT, related_name="domains"
    )
    mail_server = models.ForeignKey(
        MailServer, verbose_name=_("mail server"), on_delete=models.PROTECT, related_name="domains"
    )
    storage_allowance_bytes = models.BigIntegerField(
        _("storage allowance (bytes)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("What the quotas of all its mailboxes may add up to; empty: no limit."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("domain")
        verbose_name_plural = _("domains")

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return domain_to_unicode(self.name)


# The usage sort and the usage-band filter read ``used / quota`` in steps of 0.01 %: the
# percent the bars show (``used * 100 // quota``) is this value // 100, so a band's range in
# percent is a range here too. -1 when never measured, so the column has no NULLs to order.
USAGE_STEPS_PER_PERCENT = 100
UNMEASURED_USAGE = -1


def usage_order() -> Coalesce:
    """``used_bytes * 10000 // quota_bytes``, -1 when never measured, as SQL.

    An expression index holds exactly this (``mailbox_usage_order``), so sorting by usage and
    filtering by band read an index, and every write of usage or quota (polls, refreshes,
    quota and plan changes, bulk updates) keeps it current without code of its own.
    Both operands are integers, so the division rounds down on PostgreSQL and SQLite alike.
    """
    return Coalesce(
        models.F("used_bytes") * (100 * USAGE_STEPS_PER_PERCENT) / models.F("quota_bytes"),
        models.Value(UNMEASURED_USAGE),
        output_field=models.BigIntegerField(),
    )


# Never logged in sorts as the earliest login: the order's key has no NULLs, so its keyset
# pages are plain row comparisons, as with ``usage_order``.
NEVER_LOGGED_IN = datetime(1970, 1, 1, tzinfo=UTC)


def login_order() -> Coalesce:
    """``last_login_at``, the epoch when never, as SQL; the index ``mailbox_login_order``."""
    return Coalesce(
        models.F("last_login_at"),
        models.Value(NEVER_LOGGED_IN),
        output_field=models.DateTimeField(),
    )


class Mailbox(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        SUSPENDED = "suspended", _("suspended")

    domain = models.ForeignKey(
        Domain, verbose_name=_("domain"), on_delete=models.PROTECT, related_name="mailboxes"
    )
    local_part = models.CharField(_("local part"), max_length=64)
    # Denormalised ``local_part@domain`` in lower case: the login name Dovecot looks up.
    address = models.CharField(_("address"), max_length=320, unique=True, editable=False)
    protocol = models.CharField(_("protocol"), max_length=4, choices=Protocol.choices)
    plan = models.ForeignKey(
        Plan, verbose_name=_("plan"), on_delete=models.PROTECT, related_name="mailboxes"
    )
    mail_server = models.ForeignKey(
        MailServer,
        verbose_name=_("mail server"),
        on_delete=models.PROTECT,
        related_name="mailboxes",
    )
    quota_bytes = models.BigIntegerField(_("quota (bytes)"), validators=[MinValueValidator(1)])
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    # A Dovecot scheme-prefixed hash such as ``{ARGON2ID}$argon2id$...``; never a clear password.
    password_hash = models.CharField(_("password hash"), max_length=255, editable=False)
    password_changed_at = models.DateTimeField(_("password changed"), null=True, editable=False)
    # A changed password still to be announced to the customer's contact address: the task
    # claims it (conditional UPDATE), a sweeper sends what a broker outage lost.
    # The database default too: the CSV import writes mailboxes with COPY.
    password_notice_due = models.BooleanField(default=False, db_default=False, editable=False)
    # Relative to the server's mail root and unique per mailbox, so an address that is deleted
    # and created again never sees the old owner's mail.
    storage_path = models.CharField(_("storage path"), max_length=400, editable=False)

    class UsageState(models.TextChoices):
        UNKNOWN = "unknown", _("not measured yet")
        OK = "ok", _("current")
        STALE = "stale", _("stale")
        DRIFT = "drift", _("unknown to the mail server")

    # Measured by workers from the mail server, kept apart from the limit above (None: never).
    used_bytes = models.BigIntegerField(_("used (bytes)"), null=True, editable=False)
    message_count = models.BigIntegerField(_("messages"), null=True, editable=False)
    usage_checked_at = models.DateTimeField(_("usage checked"), null=True, editable=False)
    # A failed check keeps the last figures and says why they are old: nothing is invented.
    usage_state = models.CharField(
        _("usage state"),
        max_length=8,
        choices=UsageState.choices,
        default=UsageState.UNKNOWN,
        editable=False,
    )
    usage_error = models.CharField(_("usage problem"), max_length=500, blank=True, editable=False)
    refresh_requested_at = models.DateTimeField(null=True, editable=False)
    # The highest warning threshold (percent) already announced; re-armed with hysteresis.
    warning_level = models.PositiveSmallIntegerField(default=0, editable=False)
    warning_sent_at = models.DateTimeField(null=True, editable=False)
    # Set by the evaluator that claimed the last transition, so it knows which rows it won.
    warning_claim = models.UUIDField(null=True, editable=False)
    # The later of its IMAP and POP3 logins, copied from Dovecot's records (MailboxLogin) by
    # every poll (logins.copy_last_logins), so the list can sort by it through an index.
    last_login_at = models.DateTimeField(_("last login"), null=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["address"]
        verbose_name = _("mailbox")
        verbose_name_plural = _("mailboxes")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quota_bytes__gt=0), name="mailbox_quota_positive"
            ),
            models.UniqueConstraint(fields=["domain", "local_part"], name="mailbox_unique_local"),
        ]
        indexes = [
            # The staff list sorted by usage, and its keyset pages: (usage, id) is unique.
            models.Index(usage_order(), models.F("id"), name="mailbox_usage_order"),
            models.Index(login_order(), models.F("id"), name="mailbox_login_order"),
            # The overview's drift: few rows, found without reading the others.
            models.Index(
                fields=["usage_state"],
                condition=models.Q(usage_state="drift"),
                name="mailbox_drift",
            ),
        ]

    def __str__(self) -> str:
        return self.display_address

    @property
    def display_address(self) -> str:
        return f"{self.local_part}@{self.domain.display_name}"

    @property
    def customer(self) -> Customer:
        return self.domain.customer

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class MailboxLogin(models.Model):
    """When a mailbox last logged in over one protocol: written by Dovecot, read by Postamt.

    Dovecot's ``last_login`` plugin writes here through its SQL dict (``dict-sql``) on every
    IMAP or POP3 login, with ``INSERT ... ON CONFLICT (username, protocol) DO UPDATE``: so
    the natural key is the primary key, and the table has no other column Dovecot would have
    to fill. It is the one table Dovecot writes to; everything else it only reads (the
    ``dovecot_users`` view). Its name is part of the Dovecot templates, like the view's.

    Rows are keyed by login name, not by mailbox: a deleted mailbox leaves its rows, and one
    created again at the same address must not inherit them, so readers only count logins
    made since the mailbox was created (``selectors.with_last_login``).
    """

    pk = models.CompositePrimaryKey("username", "protocol")
    username = models.CharField(_("login name"), max_length=320)
    protocol = models.CharField(_("protocol"), max_length=8)
    # Unix time in seconds, as Dovecot writes it (its dict has no timestamp type).
    last_login = models.BigIntegerField(_("last login (Unix time)"))

    class Meta:
        db_table = "dovecot_last_login"
        verbose_name = _("last login")
        verbose_name_plural = _("last logins")

    def __str__(self) -> str:
        return f"{self.username} {self.protocol} @ {self.last_login}"

    @property
    def last_login_at(self) -> datetime:
        return datetime.fromtimestamp(self.last_login, tz=UTC)


class PollRun(models.Model):
    """One poll of one server for one interval slot; its row makes redelivery harmless."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="poll_runs")
    slot = models.DateTimeField(_("interval start"))
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    mailboxes_total = models.PositiveIntegerField(default=0)
    mailboxes_done = models.PositiveIntegerField(default=0)
    mailboxes_failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-slot"]
        constraints = [
            models.UniqueConstraint(fields=["server", "slot"], name="pollrun_one_per_slot")
        ]

    def __str__(self) -> str:
        return f"{self.server} @ {self.slot:%Y-%m-%d %H:%M}"


class UsageSample(models.Model):
    """A point of a mailbox's usage history; thinned as it ages (see usage.thin_history)."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="samples")
    # NULL for "refresh now" measurements, which belong to no poll run.
    run = models.ForeignKey(PollRun, null=True, on_delete=models.SET_NULL, related_name="+")
    taken_at = models.DateTimeField(_("time"))
    used_bytes = models.BigIntegerField(_("used (bytes)"))
    message_count = models.BigIntegerField(_("messages"), null=True)

    class Meta:
        ordering = ["taken_at"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "run"], name="sample_one_per_run")
        ]
        indexes = [models.Index(fields=["mailbox", "taken_at"])]

    def __str__(self) -> str:
        return f"{self.mailbox_id} @ {self.taken_at:%Y-%m-%d %H:%M}: {self.used_bytes}"


class ServerUsageSample(models.Model):
    """A server's totals after a poll: the history its growth and "full in N days" come from.

    One row per finished poll, written from its mailboxes' latest figures, so the overview
    reads a few hundred rows per server instead of summing 100,000 mailboxes' histories.
    """

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="usage_samples")
    taken_at = models.DateTimeField(_("time"))
    used_bytes = models.BigIntegerField(_("used (bytes)"))
    allocated_bytes = models.BigIntegerField(_("allocated (bytes)"))
    mailbox_count = models.PositiveIntegerField(_("mailboxes"))

    class Meta:
        ordering = ["taken_at"]
        indexes = [models.Index(fields=["server", "taken_at"])]

    def __str__(self) -> str:
        return f"{self.server_id} @ {self.taken_at:%Y-%m-%d %H:%M}: {self.used_bytes}"


class FolderUsage(models.Model):
    """The latest size of one folder of a mailbox, replaced by every successful check."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="folders")
    name = models.CharField(_("folder"), max_length=500)
    message_count = models.BigIntegerField(_("messages"))
    size_bytes = models.BigIntegerField(_("size (bytes)"))
    measured_at = models.DateTimeField(_("measured"))

    class Meta:
        ordering = ["-size_bytes", "name"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "name"], name="folder_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.size_bytes}"


class QuotaWarning(models.Model):
    """One warning email, claimed before it is sent so that it goes out exactly once."""

    class Kind(models.TextChoices):
        WARNING = "warning", _("threshold crossed")
        REMINDER = "reminder", _("daily reminder")

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting to be sent")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")

    mailbox = models.ForeignKey(
        Mailbox, verbose_name=_("mailbox"), on_delete=models.CASCADE, related_name="warnings"
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    threshold = models.PositiveSmallIntegerField(_("threshold (%)"))
    used_bytes = models.BigIntegerField(_("used (bytes)"))
    quota_bytes = models.BigIntegerField(_("quota (bytes)"))
    days_until_full = models.PositiveIntegerField(_("days until full"), null=True)
    recipient = models.EmailField(_("sent to"))
    language = models.CharField(_("language"), max_length=8)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # A sender leases the row before talking SMTP, so a duplicate task waits instead of resending.
    lease_until = models.DateTimeField(null=True)
    error = models.TextField(blank=True)
    copied_to_mailbox = models.BooleanField(default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent"), null=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The overview's recent warnings, newest first, without reading them all.
        indexes = [
            models.Index(
                models.F("created_at").desc(), models.F("id").desc(), name="warning_recent"
            )
        ]
        verbose_name = _("quota warning")
        verbose_name_plural = _("quota warnings")

    def __str__(self) -> str:
        return f"{self.mailbox} {self.threshold}% {self.kind}"

    @property
    def percent(self) -> int:
        return int(self.used_bytes * 100 // self.quota_bytes) if self.quota_bytes else 0


class StoragePurge(models.Model):
    """The mail of a deleted mailbox, waiting for a worker to remove it from its server."""

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="+")
    storage_path = models.CharField(max_length=400)
    address = models.CharField(max_length=320)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.address} ({self.storage_path})"


class PlanChangeRequest(models.Model):
    """A customer's wish to move a mailbox to another plan or protocol.

    Staff approve (which calls ``mailbox_change_plan``) or decline it; where self-service is
    allowed the request is applied at once and kept as the record of who asked.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("waiting for approval")
        APPROVED = "approved", _("approved")
        APPLIED = "applied", _("applied at once")
        DECLINED = "declined", _("declined")
        CANCELLED = "cancelled", _("withdrawn")

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="plan_change_requests",
    )
    mailbox = models.ForeignKey(
        "Mailbox",
        verbose_name=_("mailbox"),
        on_delete=models.CASCADE,
        related_name="plan_change_requests",
    )
    # Kept as names too: the plans and protocol at the time of asking, as the customer saw them.
    from_plan_name = models.CharField(_("current plan"), max_length=100)
    from_protocol = models.CharField(_("current protocol"), max_length=4)
    plan = models.ForeignKey(
        Plan,
        verbose_name=_("requested plan"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    protocol = models.CharField(_("requested protocol"), max_length=4)
    note = models.TextField(_("message"), blank=True, max_length=1000)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    requested_by_name = models.CharField(_("requested by"), max_length=150)
    decided_by_name = models.CharField(_("decided by"), max_length=150, blank=True)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decision_note = models.TextField(_("reason"), blank=True, max_length=1000)
    created_at = models.DateTimeField(_("requested"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("plan change request")
        verbose_name_plural = _("plan change requests")
        constraints = [
            # One open request per mailbox: a second one would race the first's approval.
            models.UniqueConstraint(
                fields=["mailbox"],
                condition=models.Q(status="pending"),
                name="planrequest_one_pending_per_mailbox",
            )
        ]

    def __str__(self) -> str:
        return f"{self.mailbox} → {self.plan} ({self.protocol.upper()})"

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING


class ImportJob(models.Model):
    """One CSV import (``mailboxes.imports``): checked first, then run in the request or by a
    worker. The row is the job's state, claimed with a conditional UPDATE so that a task
    delivered twice imports once.

    The uploaded file waits here between the check and the run (workers and the web need not
    share a disk), and the passwords generated for it wait until they are downloaded once;
    both are emptied as soon as they are no longer needed, or after a day.
    """

    class Status(models.TextChoices):
        CHECKED = "checked", _("checked, waiting for confirmation")
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", _("imported")
        FAILED = "failed", _("not imported")
        EXPIRED = "expired", _("not confirmed in time")

    file_name = models.CharField(_("file"), max_length=255)
    content = models.BinaryField(default=b"", editable=False)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.CHECKED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("started by"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_name = models.CharField(_("started by"), max_length=150)
    ip_address = models.GenericIPAddressField(null=True)
    # The language of the messages a worker writes for the person who started it.
    language = models.CharField(max_length=8, default="en")
    rows = models.PositiveIntegerField(_("rows"), default=0)
    # What the check found would be created; after the run, what was.
    customers = models.PositiveIntegerField(_("customers"), default=0)
    domains = models.PositiveIntegerField(_("domains"), default=0)
    mailboxes = models.PositiveIntegerField(_("mailboxes"), default=0)
    passwords_generated = models.PositiveIntegerField(_("passwords generated"), default=0)
    # Clear and generated passwords Postamt hashes (~20 ms each): decides request or worker.
    passwords_to_hash = models.PositiveIntegerField(default=0)
    step = models.CharField(max_length=10, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    # Bad rows a run found (the database changed after the check): [[row, column, message]].
    problems = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    # CSV of the generated passwords until its one download.
    passwords = models.TextField(blank=True, editable=False)
    passwords_taken_at = models.DateTimeField(null=True)
    claim = models.CharField(max_length=32, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(_("finished"), null=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")

    def __str__(self) -> str:
        return self.file_name

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.progress_total:
            return 0
        return min(99, self.progress_done * 100 // self.progress_total)


class MailboxMove(models.Model):
    """Moving one mailbox to another mail server (``mailboxes.moves``).

    The row is the job's state: a worker claims each step with a conditional UPDATE, so a
    task delivered twice does each step once. While a move is unfinished the mailbox is
    visible to both servers (the ``dovecot_users`` view), so workers can log in on either side.
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("waiting for a worker")
        COPYING = "copying", _("copying")
        SWITCHED = "switched", _("switched, catching up")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    UNFINISHED = (State.QUEUED, State.COPYING, State.SWITCHED)

    mailbox = models.ForeignKey(
        Mailbox, verbose_name=_("mailbox"), on_delete=models.CASCADE, related_name="moves"
    )
    source = models.ForeignKey(
        MailServer, verbose_name=_("from"), on_delete=models.PROTECT, related_name="+"
    )
    target = models.ForeignKey(
        MailServer, verbose_name=_("to"), on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.QUEUED)
    messages_total = models.PositiveIntegerField(_("messages to copy"), default=0)
    messages_done = models.PositiveIntegerField(_("messages checked"), default=0)
    messages_copied = models.PositiveIntegerField(_("messages copied"), default=0)
    caught_up = models.PositiveIntegerField(_("messages caught up after the switch"), default=0)
    # Per folder: the source's UIDVALIDITY and highest UID the last copy saw, so the catch-up
    # after the switch copies only what arrived later (not what the customer deleted since).
    copied_upto = models.JSONField(default=dict, editable=False)
    # Per folder: [messages, bytes] on both sides when the copy was verified.
    verified = models.JSONField(default=dict, editable=False)
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("started"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    switched_at = models.DateTimeField(_("switched"), null=True)
    finished_at = models.DateTimeField(_("finished"), null=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("mailbox move")
        verbose_name_plural = _("mailbox moves")
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox"],
                condition=models.Q(state__in=["queued", "copying", "switched"]),
                name="mailbox_one_unfinished_move",
            ),
            models.CheckConstraint(
                condition=~models.Q(source=models.F("target")), name="mailbox_move_elsewhere"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id}: {self.source_id} → {self.target_id}"

    @property
    def is_active(self) -> bool:
        return self.state in self.UNFINISHED

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        if not self.messages_total:
            return 0
        return min(99, 100 * self.messages_done // self.messages_total)
