from __future__ import annotations

from webhooks import events
from webhooks.models import WebhookEndpoint
from webhooks.services import endpoint_create

from .receiver import Receiver

ALL_EVENTS = list(events.EVENTS)


def endpoint_for(receiver: Receiver, event_types: list[str] | None = None) -> WebhookEndpoint:
    """An endpoint made as staff make one; the receiver learns its secret, as a hoster would."""
    new = endpoint_create(url=receiver.url, events=event_types or ALL_EVENTS, actor="test")
    receiver.secret = new.secret
    return new.endpoint


def endpoint_at(url: str, event_types: list[str] | None = None) -> WebhookEndpoint:
    return endpoint_create(url=url, events=event_types or ALL_EVENTS, actor="test").endpoint
