"""People and organisations: staff users, the hoster's customers, and the audit log."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class StaffRole(models.TextChoices):
    """What a staff user may do; the table is in ``accounts.roles``."""

    SUPPORT = "support", _("Support")
    ADMIN = "admin", _("Administrator")
    AUDITOR = "auditor", _("Auditor")


class User(AbstractUser):
    """A login: hoster staff (``is_staff``) or, later, a customer's user (``customer`` set)."""

    customer = models.ForeignKey(
        "accounts.Customer",
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="users",
    )
    # What a staff user may do (accounts.roles); meaningless for a customer's users.
    staff_role = models.CharField(
        _("staff role"),
        max_length=8,
        choices=StaffRole.choices,
        default=StaffRole.ADMIN,
    )
    # When the set-password invitation went out: the sweeper sends the ones a broker outage lost.
    invite_sent_at = models.DateTimeField(null=True, blank=True, editable=False)


class Customer(models.Model):
    """A client of the hoster, owner of domains and mailboxes."""

    name = models.CharField(_("name"), max_length=200)
    contact_email = models.EmailField(
        _("contact email"),
        help_text=_("Where notices go; must not be one of the customer's own mailboxes."),
    )
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, default="en"
    )
    only_full_warnings = models.BooleanField(
        _("only warn when a mailbox is full"),
        default=False,
        help_text=_("Skip the early warnings (80 %, 90 %, …); the 100 % warning is always sent."),
    )
    copy_warnings_to_mailbox = models.BooleanField(
        _("also put warnings into the mailbox"),
        default=False,
        help_text=_("A copy goes into the mailbox itself while it still has room."),
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
        verbose_name = _("customer")
        verbose_name_plural = _("customers")

    def __str__(self) -> str:
        return self.name


class AuditEntry(models.Model):
    """One state change, written in the same transaction as the change itself."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept as text too, so the log still says who acted after the user is gone.
    actor_name = models.CharField(_("actor"), max_length=150)
    action = models.CharField(_("action"), max_length=64, db_index=True)
    target_type = models.CharField(_("target type"), max_length=64)
    target_id = models.BigIntegerField(_("target id"), null=True)
    target_repr = models.CharField(_("target"), max_length=300)
    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_entries",
    )
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M}"
        return f"{when} {self.actor_name} {self.action} {self.target_repr}"


class ApiKey(models.Model):
    """A key for the REST API: the whole hoster's, with a staff role, or one customer's.

    The key acts through a user of its own (``user``): a staff user with the key's role, or a
    user of the customer. So the services, their role checks and the audit log treat a call
    through the API like any other actor, and the log names the key. That user has no
    password: it cannot log in anywhere but through the key.

    Only a SHA-256 of the secret is kept: the secret is 32 random bytes, so a slow password
    hash would add nothing, and every request must check it. ``prefix`` names the key in
    lists and logs and finds its row.
    """

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("key id"), max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    user = models.OneToOneField(
        User, on_delete=models.CASCADE, related_name="api_key", editable=False
    )
    read_only = models.BooleanField(_("read only"), default=True)
    # CIDR networks the key may be used from; empty: any address.
    allowed_networks = models.JSONField(_("allowed networks"), default=list, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(_("last used from"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def customer_id(self) -> int | None:
        return self.user.customer_id


class SupportAccessGrantQuerySet(models.QuerySet["SupportAccessGrant"]):
    def active(self, now: datetime | None = None) -> SupportAccessGrantQuerySet:
        """Grants not revoked and not yet run out."""
        return self.filter(revoked_at__isnull=True, expires_at__gt=now or timezone.now())


class SupportAccessGrant(models.Model):
    """A customer's permission, for a limited time, for support staff to look into its
    backups (message lists and downloads; ``accounts.roles``). One is active at a time: a new
    grant moves the end of the active one (``accounts.services.support_access_grant``)."""

    customer = models.ForeignKey(
        Customer,
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="support_access_grants",
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("granted by"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("granted"), auto_now_add=True)
    expires_at = models.DateTimeField(_("until"))
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("revoked by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    objects = SupportAccessGrantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("support access grant")
        verbose_name_plural = _("support access grants")
        indexes = [models.Index(fields=["customer", "expires_at"])]

    def __str__(self) -> str:
        return f"{self.customer}: support access until {self.expires_at:%Y-%m-%d %H:%M}"
