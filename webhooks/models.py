"""Webhook endpoints the hoster registers, and one row per delivery of an event to one of them.

The delivery row is the truth about a delivery (pending / delivered / failed, attempts, the
next attempt, the last answer): tasks only carry its id, so a lost task or a killed worker
loses nothing (see ``delivery``).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class WebhookEndpoint(models.Model):
    url = models.URLField(_("URL"), max_length=2000)
    description = models.CharField(_("description"), max_length=200, blank=True)
    # The event types it subscribed to (``events.EVENTS``); a test event ("ping") goes anyway.
    events = models.JSONField(_("events"), default=list)
    # Shown once, when the endpoint is made. Kept in clear: signing needs it (a hash would not).
    secret = models.CharField(max_length=100, editable=False)
    active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # While an endpoint does not answer (no connection, timeout, 502/503/504), its other
    # deliveries wait until then instead of each waiting for a timeout of their own.
    paused_until = models.DateTimeField(null=True, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("failed")

    endpoint = models.ForeignKey(
        WebhookEndpoint,
        verbose_name=_("endpoint"),
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    event = models.CharField(_("event"), max_length=40)
    # The event's id, the same for every endpoint and every resend: receivers deduplicate by it.
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4)
    payload = models.JSONField(_("payload"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # The earliest time of the next attempt; the sweeper sends the task when it is due.
    next_attempt_at = models.DateTimeField(_("next attempt"))
    # When a task was last sent for it: the sweeper sends again only after a grace period.
    queued_at = models.DateTimeField(null=True, editable=False)
    # Held by the worker that is sending it; a worker killed mid-delivery lets it lapse.
    lease_until = models.DateTimeField(null=True, editable=False)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True)
    last_status_code = models.PositiveSmallIntegerField(_("last status code"), null=True)
    last_response = models.TextField(_("last response"), blank=True)  # truncated
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        indexes = [
            # The sweeper: the few pending rows, by when they are due.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="webhook_delivery_due",
            ),
            # An endpoint's deliveries, newest first (the staff page).
            models.Index(
                models.F("endpoint"),
                models.F("created_at").desc(),
                name="webhook_delivery_endpoint",
            ),
            models.Index(fields=["created_at"], name="webhook_delivery_created"),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.event_id} → {self.endpoint_id}"
