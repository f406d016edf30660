"""Sending deliveries: signed, retried with backoff for a day, claimed once, swept when lost,
and one endpoint never holds up another."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from tests.conftest import free_port
from webhooks import delivery, events
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_set_active

from .helpers import endpoint_at, endpoint_for
from .receiver import verify

pytestmark = pytest.mark.django_db

DATA = {"mailbox": {"id": 7, "address": "anna@bäckerei.example", "quota_bytes": 104857600}}


def emit() -> WebhookDelivery:
    (created,) = events.emit(events.MAILBOX_CREATED, DATA)
    return created


def rewind(row: WebhookDelivery, **fields: timedelta) -> None:
    """As if time had passed: move the row's timestamps back."""
    current = WebhookDelivery.objects.get(pk=row.pk)
    WebhookDelivery.objects.filter(pk=row.pk).update(
        **{name: getattr(current, name) - by for name, by in fields.items()}
    )


def test_a_receiver_verifies_the_signature_and_the_delivery_is_recorded(receiver):
    endpoint_for(receiver)
    sent = emit()

    assert delivery.deliver(sent.pk) == "delivered"

    (got,) = receiver.received
    assert got.verified
    assert got.headers["Postamt-Event"] == "mailbox.created"
    assert got.headers["Postamt-Delivery"] == str(sent.pk)
    assert got.headers["Content-Type"] == "application/json"
    event = got.event
    assert list(event) == ["id", "type", "created_at", "data"]
    assert event["id"] == str(sent.event_id) and event["type"] == "mailbox.created"
    assert event["data"] == DATA
    assert timezone.datetime.fromisoformat(event["created_at"]).tzinfo is not None
    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.status == "delivered" and row.attempts == 1 and row.delivered_at
    assert row.last_status_code == 200 and row.last_response == '{"ok": true}'
    assert row.lease_until is None and row.last_error == ""


def test_a_replayed_or_altered_delivery_fails_verification(receiver):
    endpoint_for(receiver)
    delivery.deliver(emit().pk)
    (got,) = receiver.received
    header = got.headers["Postamt-Signature"]
    timestamp = int(header.split(",")[0].removeprefix("t="))

    assert verify(receiver.secret, got.body, header, now=timestamp + 299)
    assert not verify(receiver.secret, got.body, header, now=timestamp + 301)  # replayed later
    assert not verify(receiver.secret, got.body.replace(b"anna", b"bert"), header)
    assert not verify("whsec_another", got.body, header)


def test_a_receiver_with_the_wrong_secret_refuses_and_the_delivery_waits(receiver):
    endpoint_for(receiver)
    receiver.secret = "whsec_not-the-one"
    sent = emit()

    assert delivery.deliver(sent.pk) == "retry"
    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.status == "pending" and row.last_status_code == 400


def test_a_500_is_retried_later_with_growing_waits_then_delivered(receiver):
    receiver.answers = [500, 500]
    endpoint_for(receiver)
    sent = emit()

    started = timezone.now()
    assert delivery.deliver(sent.pk) == "retry"
    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.status == "pending" and row.attempts == 1 and row.last_status_code == 500
    assert row.last_response == "try again later"
    wait = row.next_attempt_at - started
    assert timedelta(minutes=2) <= wait < timedelta(minutes=2, seconds=5)
    assert delivery.deliver(sent.pk) is None  # not due yet: a duplicate task does nothing
    assert delivery.sweep() == []

    rewind(sent, next_attempt_at=timedelta(minutes=2), queued_at=timedelta(minutes=5))
    assert delivery.sweep() == [sent.pk]
    started = timezone.now()
    assert delivery.deliver(sent.pk) == "retry"
    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert timedelta(minutes=4) <= row.next_attempt_at - started < timedelta(minutes=4, seconds=5)

    rewind(sent, next_attempt_at=timedelta(minutes=4))
    assert delivery.deliver(sent.pk) == "delivered"
    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.status == "delivered" and row.attempts == 3 and row.last_status_code == 200
    assert len(receiver.received) == 3 and all(r.verified for r in receiver.received)
    assert {r.event["id"] for r in receiver.received} == {str(sent.event_id)}  # one event


def test_the_wait_doubles_up_to_six_hours():
    assert [delivery.backoff(n) for n in (1, 2, 3)] == [
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(minutes=8),
    ]
    assert delivery.backoff(8) == timedelta(minutes=256)
    assert delivery.backoff(9) == delivery.backoff(40) == timedelta(hours=6)


def test_a_delivery_fails_for_good_a_day_after_its_event(receiver):
    receiver.answers = [500, 500]
    endpoint_for(receiver)
    sent = emit()
    rewind(sent, created_at=timedelta(hours=23, minutes=59))

    assert delivery.deliver(sent.pk) == "retry"
    row = WebhookDelivery.objects.get(pk=sent.pk)
    # Never later than the day: the last attempt is at its end.
    assert row.next_attempt_at == row.created_at + timedelta(hours=24)

    rewind(sent, created_at=timedelta(minutes=2), next_attempt_at=timedelta(minutes=2))
    assert delivery.deliver(sent.pk) == "failed"
    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.status == "failed" and row.attempts == 2 and row.last_status_code == 500
    rewind(sent, next_attempt_at=timedelta(hours=1), queued_at=timedelta(hours=1))
    assert delivery.sweep() == [] and delivery.deliver(sent.pk) is None


def test_a_dead_and_a_slow_endpoint_do_not_hold_up_another(
    receivers, settings, sent_tasks, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_READ_TIMEOUT = 1
    slow = receivers(delay=10)
    good = receivers()
    endpoint_for(slow)
    endpoint_for(good)
    dead = endpoint_at(f"http://127.0.0.1:{free_port()}/nobody-listens")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            events.emit(events.MAILBOX_CREATED, DATA)
    # One task per delivery, so the workers send them side by side, each with its timeouts.
    assert [name for name, _a, _k in sent_tasks] == ["webhooks.deliver"] * 15

    started = time.monotonic()
    outcomes = [delivery.deliver(args[0]) for _name, args, _k in sent_tasks]
    elapsed = time.monotonic() - started

    # The slow one cost one read timeout, not five: after it, its endpoint was paused.
    assert elapsed < 4, elapsed
    assert outcomes.count("delivered") == 5
    assert len(good.verified) == 5
    assert len(slow.received) == 1
    for endpoint in WebhookEndpoint.objects.exclude(url=good.url):
        assert endpoint.paused_until is not None and endpoint.paused_until > timezone.now()
        first, *rest = endpoint.deliveries.order_by("pk")
        assert first.attempts == 1 and first.last_status_code is None
        assert "timed out" in first.last_error or "Refused" in first.last_error
        assert all(r.attempts == 0 and r.status == "pending" for r in rest)
        assert all(r.next_attempt_at == endpoint.paused_until for r in rest)
    assert dead.deliveries.filter(status="pending").count() == 5


def test_a_delivery_whose_worker_died_is_sent_by_the_sweeper(
    receiver, sent_tasks, django_capture_on_commit_callbacks
):
    endpoint_for(receiver)
    sent = emit()
    assert delivery.claim(sent.pk) is not None  # a worker took it ... and was killed
    sent_tasks.clear()

    assert delivery.sweep() == []  # its lease still runs: it may be alive
    assert delivery.deliver(sent.pk) is None  # nor does a duplicate task take it

    rewind(sent, lease_until=timedelta(minutes=2), queued_at=timedelta(minutes=3))
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery.sweep() == [sent.pk]
    assert sent_tasks == [("webhooks.deliver", (sent.pk,), {})]
    assert delivery.sweep() == []  # sent: not again within the grace period

    assert delivery.deliver(sent.pk) == "delivered"
    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.status == "delivered" and row.attempts == 2
    assert len(receiver.verified) == 1


def test_a_task_delivered_twice_posts_once(receiver):
    endpoint_for(receiver)
    sent = emit()
    assert delivery.deliver(sent.pk) == "delivered"
    assert delivery.deliver(sent.pk) is None
    assert len(receiver.received) == 1


def test_the_sweeper_sends_a_lost_task_after_the_grace_period(
    receiver, sent_tasks, django_capture_on_commit_callbacks
):
    endpoint_for(receiver)
    sent = emit()  # its task was lost with the broker
    sent_tasks.clear()
    assert delivery.sweep() == []
    rewind(sent, queued_at=timedelta(minutes=3))
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery.sweep() == [sent.pk]
    assert sent_tasks == [("webhooks.deliver", (sent.pk,), {})]


def test_disabling_an_endpoint_fails_what_waits_for_it(receiver):
    endpoint = endpoint_for(receiver)
    sent = emit()
    endpoint_set_active(endpoint=endpoint, active=False, actor="test")
    assert delivery.deliver(sent.pk) is None
    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.status == "failed" and row.last_error == "endpoint disabled"
    assert events.emit(events.MAILBOX_CREATED, DATA) == []  # nothing new for it
    assert receiver.received == []


def test_a_url_that_cannot_be_sent_to_is_an_error_of_the_delivery(receiver):
    endpoint_for(receiver)
    sent = emit()
    # The service accepts only http(s); a row changed behind its back must not break the task.
    WebhookEndpoint.objects.update(url="ftp://nope/")
    assert delivery.deliver(sent.pk) == "retry"
    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.last_status_code is None and "http(s)" in row.last_error


def test_old_deliveries_are_forgotten_but_not_pending_ones(receiver):
    endpoint_for(receiver)
    done, waiting = emit(), emit()
    delivery.deliver(done.pk)
    for row in (done, waiting):
        rewind(row, created_at=timedelta(days=31))
    assert delivery.forget_old() == 1
    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [waiting.pk]


def test_the_body_is_json_in_utf_8(receiver):
    endpoint_for(receiver)
    delivery.deliver(emit().pk)
    assert "anna@bäckerei.example" in receiver.received[0].body.decode()
    assert json.loads(receiver.received[0].body)["data"] == DATA


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://billing.example/hook", ("https", "billing.example", None, "/hook")),
        ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080, "/")),
        (
            "https://bücher.example:8443/pfad/ä?kunde=müller&x=%20",
            ("https", "xn--bcher-kva.example", 8443, "/pfad/%C3%A4?kunde=m%C3%BCller&x=%20"),
        ),
    ],
)
def test_urls_are_sent_as_ascii(url, expected):
    assert delivery.target(url) == expected


def test_two_workers_at_once_send_a_delivery_once(transactional_db, receiver, sent_tasks):
    receiver.delay = 0.3  # both are under way while the first waits for the answer
    endpoint_for(receiver)
    sent = emit()  # committed; its task is kept from the broker (sent_tasks): the two below
    assert sent_tasks == [("webhooks.deliver", (sent.pk,), {})]  # are the only workers
    start = threading.Barrier(2)
    outcomes: list[str | None] = []

    def worker() -> None:
        try:
            start.wait()
            outcomes.append(delivery.deliver(sent.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes, key=str) == [None, "delivered"]
    assert len(receiver.received) == 1
    assert WebhookDelivery.objects.get(pk=sent.pk).attempts == 1


def test_deliveries_go_to_the_webhooks_queue():
    from provider.celery import app

    for task in ("webhooks.deliver", "webhooks.sweep", "webhooks.forget_old"):
        assert app.amqp.router.route({}, task)["queue"].name == "webhooks"


def test_a_receiver_that_outlasts_the_time_limit_is_a_failed_attempt(receiver, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    endpoint_for(receiver)
    sent = emit()

    def trickle(*args: object) -> None:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(delivery, "post", trickle)
    assert delivery.deliver(sent.pk) == "retry"
    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.status == "pending" and row.lease_until is None and "time limit" in row.last_error
    assert WebhookEndpoint.objects.get().paused_until is not None
