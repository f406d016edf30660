"""People and organisations: staff users, the hoster's customers, and the audit log."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


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


class PlanChangeRequest(models.Model):
    """A customer's wish to move a mailbox to another plan or protocol.

    Staff approve (which calls ``mailbox_change_plan``) or decline it; where self-service is
    allowed the request is applied at once and kept as the record of who asked. It lives in
    ``accounts`` because it belongs to the customer's dealings with the hoster, not to the
    mail server's view of a mailbox.
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
        "mailboxes.Mailbox",
        verbose_name=_("mailbox"),
        on_delete=models.CASCADE,
        related_name="plan_change_requests",
    )
    # Kept as names too: the plans and protocol at the time of asking, as the customer saw them.
    from_plan_name = models.CharField(_("current plan"), max_length=100)
    from_protocol = models.CharField(_("current protocol"), max_length=4)
    plan = models.ForeignKey(
        "mailboxes.Plan",
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
