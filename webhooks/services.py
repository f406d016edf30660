"""State changes of webhook endpoints, each atomic, audited and role-checked (admins only:
``accounts.roles`` lists no webhook action, so only admins and the hoster's own machinery
may)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit, roles
from accounts.audit import Actor
from accounts.models import User
from provider.celery import enqueue_after_commit

from .events import EVENTS, PING, new_delivery, payload
from .models import WebhookDelivery, WebhookEndpoint
from .signing import new_secret


@dataclass(frozen=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def _clean(url: str, description: str, events: list[str]) -> tuple[str, str, list[str]]:
    errors: dict[str, list[str]] = {}
    url = url.strip()
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        errors["url"] = [_("Enter an http:// or https:// URL.")]
    max_length = WebhookEndpoint._meta.get_field("url").max_length
    if max_length is not None and len(url) > max_length:
        errors["url"] = [_("The URL is too long.")]
    wanted = [event for event in EVENTS if event in set(events)]
    if not wanted or len(wanted) != len(set(events)):
        errors["events"] = [_("Choose at least one of the events.")]
    if errors:
        raise ValidationError(errors)
    return url, description.strip()[:200], wanted


@transaction.atomic
def endpoint_create(
    *,
    url: str,
    events: list[str],
    description: str = "",
    actor: Actor,
    ip: str | None = None,
) -> NewEndpoint:
    roles.authorize(actor, "webhook.create")
    url, description, events = _clean(url, description, events)
    secret = new_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=url,
        description=description,
        events=events,
        secret=secret,
        created_by=actor if isinstance(actor, User) else None,
    )
    audit.record("webhook.create", endpoint, actor=actor, ip=ip, events=events)
    return NewEndpoint(endpoint, secret)


@transaction.atomic
def endpoint_set_active(
    *, endpoint: WebhookEndpoint, active: bool, actor: Actor, ip: str | None = None
) -> WebhookEndpoint:
    """Disabling stops sending: its pending deliveries fail (a resend can bring one back)."""
    roles.authorize(actor, "webhook.update")
    if endpoint.active == active:
        return endpoint
    endpoint.active = active
    endpoint.paused_until = None
    endpoint.save(update_fields=["active", "paused_until"])
    if active:
        audit.record("webhook.enable", endpoint, actor=actor, ip=ip)
    else:
        endpoint.deliveries.filter(status=WebhookDelivery.Status.PENDING).update(
            status=WebhookDelivery.Status.FAILED, last_error="endpoint disabled", lease_until=None
        )
        audit.record("webhook.disable", endpoint, actor=actor, ip=ip)
    return endpoint


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor, ip: str | None = None) -> None:
    """Removes the endpoint with its deliveries; the audit log keeps that it existed."""
    roles.authorize(actor, "webhook.delete")
    audit.record("webhook.delete", endpoint, actor=actor, ip=ip, events=endpoint.events)
    endpoint.delete()


def _send(delivery: WebhookDelivery) -> WebhookDelivery:
    delivery.save()
    enqueue_after_commit("webhooks.deliver", delivery.pk)
    return delivery


def _check_active(endpoint: WebhookEndpoint) -> None:
    if not endpoint.active:
        raise ValidationError(_("The endpoint is disabled; enable it first."))


@transaction.atomic
def endpoint_test(
    *, endpoint: WebhookEndpoint, actor: Actor, ip: str | None = None
) -> WebhookDelivery:
    """A ``ping`` event, sent now (even while the endpoint is paused)."""
    roles.authorize(actor, "webhook.test")
    _check_active(endpoint)
    event_id = uuid.uuid4()
    data = {"endpoint": endpoint.pk, "message": "Test event from Postamt"}
    body = payload(PING, data, event_id=event_id, at=timezone.now())
    delivery = _send(new_delivery(endpoint, PING, body, event_id))
    audit.record("webhook.test", endpoint, actor=actor, ip=ip, delivery=delivery.pk)
    return delivery


@transaction.atomic
def delivery_resend(
    *, delivery: WebhookDelivery, actor: Actor, ip: str | None = None
) -> WebhookDelivery:
    """A new delivery of the same event (same id and payload) with a fresh retry period; the
    old one stays as it was, so the history shows both."""
    roles.authorize(actor, "webhook.resend")
    endpoint = delivery.endpoint
    _check_active(endpoint)
    again = _send(new_delivery(endpoint, delivery.event, delivery.payload, delivery.event_id))
    audit.record(
        "webhook.resend", endpoint, actor=actor, ip=ip, delivery=delivery.pk, resent_as=again.pk
    )
    return again
