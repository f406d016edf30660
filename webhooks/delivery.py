"""Sending one delivery, recording its answer, and the sweeper that sends what is due.

A worker claims a delivery with a conditional UPDATE that leases it (status pending, due, no
live lease), POSTs outside any transaction, and writes the answer only if it still holds the
lease. 2xx: delivered. Anything else: tried again after ``backoff`` (2, 4, 8 … minutes, at
most 6 hours) until ``WEBHOOK_RETRY_HOURS`` after the event, then failed. The database row
is the schedule: no Celery countdowns, so nothing depends on the broker keeping a message
for hours. The sweeper (beat, every minute) sends the task for every due delivery, which
covers retries, tasks lost to a broker outage and workers killed mid-delivery (their lease
lapses).

One endpoint cannot hold up another: every delivery is a task of its own with short connect
and read timeouts, and an endpoint that does not answer at all is paused, so its other
deliveries wait without each spending a timeout on the workers.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from provider.celery import enqueue_after_commit

from .models import WebhookDelivery, WebhookEndpoint
from .signing import signature_header

log = logging.getLogger(__name__)

RESPONSE_KEPT = 2000  # characters of the answer kept for the staff page
MAX_BACKOFF = timedelta(hours=6)
# Answers that say the endpoint itself is down (not this one request): pause the endpoint.
ENDPOINT_DOWN = {502, 503, 504}
SWEEP_BATCH = 1000
USER_AGENT = "Postamt-Webhooks/1"
# What may stay as it is in a path or query (RFC 3986's reserved and unreserved characters and
# "%", so that an already encoded URL is sent unchanged).
URL_SAFE = "/:@!$&'()*+,;=-._~%"

Pending = WebhookDelivery.Status.PENDING


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: no HTTP answer at all
    text: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def endpoint_down(self) -> bool:
        return self.status_code is None or self.status_code in ENDPOINT_DOWN


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: 2^attempts minutes, at most 6 h."""
    return min(timedelta(minutes=2 ** min(attempts, 20)), MAX_BACKOFF)


def deadline(delivery: WebhookDelivery) -> datetime:
    return delivery.created_at + timedelta(hours=settings.WEBHOOK_RETRY_HOURS)


def body_of(delivery: WebhookDelivery) -> bytes:
    """The JSON sent: id, type, created_at, data in that order (jsonb does not keep it)."""
    ordered = {key: delivery.payload[key] for key in ("id", "type", "created_at", "data")}
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode()


def claim(delivery_id: int, now: datetime | None = None) -> WebhookDelivery | None:
    """Lease a due pending delivery for this worker; None if it is not due, done, or held."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    taken = WebhookDelivery.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        pk=delivery_id,
        status=Pending,
        next_attempt_at__lte=now,
    ).update(lease_until=lease, attempts=F("attempts") + 1, last_attempt_at=now)
    if not taken:
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def target(url: str) -> tuple[str, str, int | None, str]:
    """Scheme, host, port and request path of ``url`` as they go on the wire: an international
    host name in its ASCII form, a path with other characters percent-encoded."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    host = parts.hostname.encode("idna").decode("ascii")
    path = quote(parts.path or "/", safe=URL_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=URL_SAFE + "?")
    return parts.scheme, host, parts.port, path


def post(url: str, secret: str, delivery: WebhookDelivery) -> Answer:
    """POST the signed delivery; never raises for what the network or the receiver does."""
    body = body_of(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Postamt-Event": delivery.event,
        "Postamt-Delivery": str(delivery.pk),
        "Postamt-Signature": signature_header(secret, body, int(time.time())),
    }
    connection = None
    try:
        scheme, host, port, path = target(url)
        connection_class = (
            http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(host, port, timeout=settings.WEBHOOK_CONNECT_TIMEOUT)
        connection.connect()
        assert connection.sock is not None
        # Connected: from here on, each read may wait this long (a slow receiver).
        connection.sock.settimeout(settings.WEBHOOK_READ_TIMEOUT)
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read(RESPONSE_KEPT * 4).decode("utf-8", "replace")[:RESPONSE_KEPT]
        return Answer(response.status, text)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Answer(None, error=f"{type(exc).__name__}: {exc}"[:1000])
    finally:
        if connection is not None:
            connection.close()


def deliver(delivery_id: int) -> str | None:
    """Attempt one delivery; the outcome ("delivered", "retry", "failed", "paused"), or None
    when there was nothing to do (done, not due, or another worker holds it)."""
    delivery = claim(delivery_id)
    if delivery is None:
        return None
    endpoint = delivery.endpoint
    lease = delivery.lease_until
    now = timezone.now()
    if not endpoint.active:
        _fail(delivery, lease, "endpoint disabled")
        return "failed"
    paused = endpoint.paused_until
    if paused is not None and paused > now and delivery.event != "ping":
        return _wait_for_endpoint(delivery, lease, paused)
    try:
        answer = post(endpoint.url, endpoint.secret, delivery)
    except SoftTimeLimitExceeded:  # a receiver that trickles its answer byte by byte
        answer = Answer(None, error="no complete answer within the task's time limit")
    return record(delivery, lease, answer)


def record(delivery: WebhookDelivery, lease: datetime | None, answer: Answer) -> str:
    """Write the answer, if this worker still holds the delivery, and pause or resume its
    endpoint."""
    now = timezone.now()
    mine = WebhookDelivery.objects.filter(pk=delivery.pk, status=Pending, lease_until=lease)
    last = {
        "last_status_code": answer.status_code,
        "last_response": answer.text,
        "last_error": answer.error,
        "lease_until": None,
    }
    endpoint = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id)
    if answer.ok:
        mine.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now, **last)
        endpoint.filter(paused_until__isnull=False).update(paused_until=None)
        return "delivered"
    wait = backoff(delivery.attempts)
    if answer.endpoint_down:
        endpoint.update(paused_until=now + wait)
    if now >= deadline(delivery):
        mine.update(status=WebhookDelivery.Status.FAILED, **last)
        return "failed"
    mine.update(next_attempt_at=min(now + wait, deadline(delivery)), **last)
    return "retry"


def _fail(delivery: WebhookDelivery, lease: datetime | None, error: str) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk, status=Pending, lease_until=lease).update(
        status=WebhookDelivery.Status.FAILED, last_error=error, lease_until=None
    )


def _wait_for_endpoint(delivery: WebhookDelivery, lease: datetime | None, until: datetime) -> str:
    """The endpoint is paused: wait for it without an attempt of its own (nothing was sent)."""
    if until >= deadline(delivery):
        _fail(delivery, lease, "the endpoint did not answer until the retry period ended")
        return "failed"
    WebhookDelivery.objects.filter(pk=delivery.pk, status=Pending, lease_until=lease).update(
        next_attempt_at=until, lease_until=None, attempts=F("attempts") - 1
    )
    return "paused"


def due(now: datetime | None = None) -> Q:
    """Pending, due, not held by a live worker, and not sent to the queue just now."""
    now = now or timezone.now()
    grace = now - timedelta(seconds=settings.WEBHOOK_QUEUE_GRACE_SECONDS)
    return (
        Q(status=Pending, next_attempt_at__lte=now)
        & (Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        & (Q(queued_at__isnull=True) | Q(queued_at__lt=grace))
    )


def sweep(now: datetime | None = None) -> list[int]:
    """Send the task of every due delivery: retries that are due, tasks the broker lost, and
    deliveries whose worker died mid-delivery (lease lapsed). Returns their ids."""
    now = now or timezone.now()
    ids = list(
        WebhookDelivery.objects.filter(due(now))
        .filter(Q(endpoint__paused_until__isnull=True) | Q(endpoint__paused_until__lte=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    sent = []
    with transaction.atomic():
        for delivery_id in ids:
            # Conditional: two sweepers at once send each task once.
            if WebhookDelivery.objects.filter(due(now), pk=delivery_id).update(queued_at=now):
                enqueue_after_commit("webhooks.deliver", delivery_id)
                sent.append(delivery_id)
    return sent


def forget_old(now: datetime | None = None) -> int:
    """Delivered and failed deliveries older than ``WEBHOOK_KEEP_DAYS`` are deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.WEBHOOK_KEEP_DAYS)
    deleted, _ = (
        WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(status=Pending).delete()
    )
    return deleted
