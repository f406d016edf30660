"""RabbitMQ as the broker: a real worker process on the machine's RabbitMQ (127.0.0.1:5672,
guest/guest; scripts/services.sh starts one) runs a real task end to end, its result coming
back through Redis, which stays the result backend. Each run has a vhost of its own."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from django.db import connection
from kombu import Connection

from mailboxes.models import UsageSample
from provider.celery import app
from tests.factories import make_mailbox
from tests.integration.test_polling import doveadm_quota, message
from tests.workers import start_worker_process

pytestmark = pytest.mark.integration


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


@pytest.fixture
def vhost() -> Iterator[str]:
    name = f"postamt_celery_test_{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


def consumer_timeout() -> int:
    """The server's consumer_timeout in seconds, for RABBITMQ_CONSUMER_TIMEOUT."""
    answer = rabbitmqctl("eval", "application:get_env(rabbit, consumer_timeout).")
    found = re.search(r"\{ok,(\d+)\}", answer)
    assert found, f"RabbitMQ has no consumer_timeout: {answer}"
    return int(found.group(1)) // 1000


def test_a_worker_on_rabbitmq_measures_a_mailbox(dovecot, mail_server, deliver, vhost) -> None:
    anna = make_mailbox("anna")
    deliver(anna.address, message("hello", 10_000))
    broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": broker,
        # What this server has, so the worker's start-up check compares against the truth.
        "RABBITMQ_CONSUMER_TIMEOUT": str(consumer_timeout()),
    }
    queue = "rabbitmq-test"  # a queue of its own, whatever the routing table says
    worker = start_worker_process(queue, env)
    try:
        with Connection(broker) as amqp:
            sent = app.send_task(
                "mailboxes.refresh_usage", args=[anna.pk], queue=queue, connection=amqp
            )
        measured = sent.get(timeout=60)  # from the Redis result backend
        assert queue in rabbitmqctl("list_queues", "-p", vhost, "name").split()
    finally:
        worker.terminate()
        worker.wait(30)
    assert worker.returncode == 0
    assert measured == doveadm_quota(dovecot, anna.address) > 10_000
    anna.refresh_from_db()
    assert anna.used_bytes == measured
    assert UsageSample.objects.filter(mailbox=anna, run=None).count() == 1
