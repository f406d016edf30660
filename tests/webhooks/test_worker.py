"""With the real Celery worker on Redis: a mailbox made through the service reaches a
receiver, signed; and a worker killed in the middle of a delivery loses nothing."""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest
from django.db import connection

from tests.factories import make_mailbox, make_server
from tests.integration.test_broker_outage import PrivateRedis, private_broker
from tests.waiting import wait_for
from tests.workers import start_worker_process
from webhooks import delivery, events
from webhooks.models import WebhookDelivery

from .helpers import endpoint_for

pytestmark = pytest.mark.integration
__all__ = ["private_broker"]  # fixture


def test_the_worker_delivers_a_created_mailbox_to_the_receiver(celery_worker, receiver):
    endpoint_for(receiver, [events.MAILBOX_CREATED])
    make_server()

    mailbox = make_mailbox("anna")  # committed: the event's task goes to the worker

    (event,) = wait_for(lambda: receiver.verified, "the signed delivery", timeout=30)
    assert event["type"] == "mailbox.created"
    assert event["data"]["mailbox"]["id"] == mailbox.pk
    row = wait_for(
        lambda: WebhookDelivery.objects.filter(status="delivered").first(),
        "the delivery to be recorded",
    )
    assert row.attempts == 1 and row.last_status_code == 200


def test_nothing_is_lost_when_the_worker_is_killed_mid_delivery(
    transactional_db, private_broker: PrivateRedis, receivers
):
    hanging = receivers(hang=threading.Event())
    endpoint_for(hanging, [events.MAILBOX_CREATED])
    make_server()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": private_broker.url,
    }

    make_mailbox("anna")  # its delivery's task waits in the private broker
    (sent,) = WebhookDelivery.objects.all()
    worker = start_worker_process("webhooks", env)
    try:
        wait_for(hanging.arrived.is_set, "the worker to start the delivery", timeout=60)
        worker.kill()  # SIGKILL while it waits for the receiver's answer
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert hanging.hang is not None
    hanging.hang.set()

    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.status == "pending" and row.attempts == 1 and row.lease_until is not None
    assert delivery.sweep() == []  # the lease still runs: its worker may be alive

    # Time passes beyond the lease; beat's sweeper finds the delivery; a new worker sends it.
    WebhookDelivery.objects.filter(pk=sent.pk).update(
        lease_until=row.lease_until - timedelta(minutes=5),
        queued_at=row.queued_at - timedelta(minutes=5),
    )
    worker = start_worker_process("webhooks", env)
    try:
        assert delivery.sweep() == [sent.pk]
        wait_for(
            lambda: WebhookDelivery.objects.filter(pk=sent.pk, status="delivered").exists(),
            "the delivery after the crash",
            timeout=60,
        )
    finally:
        worker.kill()
        worker.wait()

    row = WebhookDelivery.objects.get(pk=sent.pk)
    assert row.attempts == 2 and row.last_status_code == 200
    first, second = hanging.received
    assert first.verified and second.verified
    assert first.event["id"] == second.event["id"] == str(sent.event_id)  # one event, twice
