"""With the broker down, a page that queues work answers at once and saves the change; once
the broker is back, the backstops send what was lost and a real worker does it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import User
from mailboxes.models import MIB, Mailbox, StoragePurge
from provider.celery import app
from tests.conftest import free_port
from tests.factories import make_customer, make_domain, make_mailbox
from tests.waiting import wait_for
from tests.workers import start_worker_process

pytestmark = pytest.mark.integration


class PrivateRedis:
    """A Redis of this test's own, to stop and start again (nothing kept on disk)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: _answers(self.url), "the private Redis to answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.2).ping())
    except redis.RedisError:
        return False


def _use_broker(url: str) -> None:
    """Point this process's Celery app at ``url``, dropping connections to the old broker."""
    app.conf.broker_url = url
    app._pool = None  # Celery keeps no public way to swap brokers at run time
    app.amqp._producer_pool = None


@pytest.fixture
def private_broker() -> Iterator[PrivateRedis]:
    broker = PrivateRedis()
    broker.start()
    saved = app.conf.broker_url
    _use_broker(broker.url)
    try:
        yield broker
    finally:
        _use_broker(saved)
        broker.stop()


def timed_post(client: Client, url: str, data: dict | None = None) -> tuple[int, float]:  # type: ignore[type-arg]
    start = time.monotonic()
    response = client.post(url, data or {})
    return response.status_code, time.monotonic() - start


def test_with_the_broker_down_pages_answer_and_the_work_is_done_once_it_is_back(
    client: Client,
    private_broker: PrivateRedis,
    dovecot,
    mail_server,
    deliver,
    smtp_server,
    settings,
):
    client.force_login(User.objects.create_user("hanna", is_staff=True))
    customer = make_customer("Bäckerei")
    domain = make_domain(customer, "baeckerei.example")
    anna = make_mailbox("anna", domain=domain, quota_bytes=200 * MIB)
    bert = make_mailbox("bert", domain=domain)
    deliver(anna.address, "Subject: hello\r\n\r\n" + "x" * 5000 + "\r\n")

    private_broker.stop()
    answers = [
        timed_post(
            client,
            reverse("staff:customer_user_create", args=[customer.pk]),
            {"email": "neu@example.org"},
        ),
        timed_post(client, reverse("staff:mailbox_refresh", args=[anna.pk])),
        timed_post(client, reverse("staff:mailbox_quota", args=[anna.pk]), {"quota": 300}),
        timed_post(client, reverse("staff:mailbox_delete", args=[bert.pk])),
    ]
    for status, seconds in answers:
        assert status == 302 and seconds < 3, answers

    # Every change was saved although nothing could be queued.
    invited = User.objects.get(email="neu@example.org")
    assert invited.invite_sent_at is None
    anna.refresh_from_db()
    assert anna.quota_bytes == 300 * MIB and anna.used_bytes is None
    assert not Mailbox.objects.filter(pk=bert.pk).exists()
    assert StoragePurge.objects.get().done_at is None

    private_broker.start()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": private_broker.url,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(settings.EMAIL_PORT),
        "DOVECOT_SERVER_NAME": dovecot.server,
        "DOVECOT_ROOT": str(dovecot.root),
    }
    worker = start_worker_process("default,poll", env)
    try:
        # Time passes beyond the backstops' grace periods; beat sends them.
        User.objects.filter(pk=invited.pk).update(date_joined=invited.date_joined - _minutes(3))
        Mailbox.objects.filter(pk=anna.pk).update(
            refresh_requested_at=anna.refresh_requested_at - _minutes(2)
        )
        for task in (
            "accounts.send_pending_invites",
            "mailboxes.refresh_pending",
            "mailboxes.purge_pending_storage",
        ):
            app.send_task(task)

        wait_for(
            lambda: any("neu@example.org" in m["To"] for m in smtp_server.messages),
            "the invitation",
            timeout=30,
        )
        wait_for(lambda: Mailbox.objects.get(pk=anna.pk).used_bytes, "the refresh", timeout=30)
        wait_for(lambda: StoragePurge.objects.get().done_at, "the purge", timeout=30)
    finally:
        worker.kill()
        worker.wait()
    assert Mailbox.objects.get(pk=anna.pk).used_bytes > 5000
    assert User.objects.get(pk=invited.pk).invite_sent_at is not None
    assert not (dovecot.mail_root / "baeckerei.example" / "bert").exists()


def _minutes(n: int):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(minutes=n)
