"""Fixtures: the real Dovecot, Celery worker and SMTP server for integration tests.

Unit tests need only the database. Integration tests use ``transactional_db`` because Dovecot
and the Celery worker read the database over their own connections and see only committed rows.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import smtplib
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from mailboxes.models import MailServer
from mailboxes.services import mail_server_register_local
from mailserver.dovecot import DovecotInstance
from mailserver.tls import PrivateCA, make_private_ca
from provider.celery import BACKUP, POLL, server_queue

# The owner / stranger / staff fixtures every test of a page can ask for (tests/audiences.py).
from tests.audiences import (
    bigger_plan,
    customer,
    mailbox,
    other_customer,
    other_mailbox,
    other_request,
    owner,
    owner_client,
    pending_request,
    plan,
    server,
    staff,
    stranger,
)

__all__ = [  # re-exported: pytest finds fixtures by name here
    "server",
    "plan",
    "bigger_plan",
    "customer",
    "mailbox",
    "owner",
    "other_customer",
    "other_mailbox",
    "stranger",
    "staff",
    "owner_client",
    "pending_request",
    "other_request",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The fleet's mail servers listen on another loopback address than the proxy's (127.0.0.1):
# Dovecot counts only a client on the server's own address as secured, so a cleartext login
# from the proxy is refused there as it would be from another machine.
FLEET_BACKEND_ADDRESS = "127.0.0.2"


@pytest.fixture(scope="session")
def private_ca() -> Iterator[PrivateCA]:
    """The test run's own CA and a certificate for localhost, 127.0.0.1 and the fleet's
    mail servers (FLEET_BACKEND_ADDRESS), trusted by the workers, the fleet's proxy and
    processes the tests start, as production trusts its CA."""
    directory = Path(tempfile.mkdtemp(prefix="postamt-tls-"))
    made = make_private_ca(directory, ("localhost", "127.0.0.1", FLEET_BACKEND_ADDRESS))
    # Anyone may read the CA certificate, as the system's: the proxy's login processes run
    # unprivileged when they verify a mail server (the key stays its owner's).
    directory.chmod(0o755)
    made.ca_file.chmod(0o644)
    before = settings.POSTAMT_MAIL_CA_FILE
    settings.POSTAMT_MAIL_CA_FILE = os.environ["POSTAMT_MAIL_CA_FILE"] = str(made.ca_file)
    yield made
    settings.POSTAMT_MAIL_CA_FILE = before
    os.environ.pop("POSTAMT_MAIL_CA_FILE")
    shutil.rmtree(directory, ignore_errors=True)


def private_dovecot_options(server: str, private_ca: PrivateCA) -> dict[str, Any]:
    """What every test Dovecot shares: a root of its own, free loopback ports, TLS as in
    production (IMAPS, POP3S, STARTTLS) with the run's certificate, no fsync, no auth penalty."""
    root = Path(tempfile.mkdtemp(prefix=f"postamt-dovecot-{server}-"))
    root.chmod(0o755)  # the mail user must be able to enter it
    return {
        "root": root,
        "server": server,
        "imap_port": free_port(),
        "pop3_port": free_port(),
        "imaps_port": free_port(),
        "pop3s_port": free_port(),
        "ssl_cert": str(private_ca.cert_file),
        "ssl_key": str(private_ca.key_file),
        "lmtp_port": free_port(),
        "mail_fsync": "never",
        "auth_penalty": False,  # else one failed login delays the next ones by seconds
    }


def _private_dovecot(server: str, private_ca: PrivateCA, **options: object) -> DovecotInstance:
    """A Dovecot reading the test database, with the doveadm API over HTTPS."""
    return DovecotInstance(
        **private_dovecot_options(server, private_ca),
        doveadm_port=free_port(),
        doveadm_api_key=settings.POSTAMT_DOVEADM_API_KEY,
        master_user=settings.POSTAMT_MASTER_USER,
        master_password=settings.POSTAMT_MASTER_PASSWORD,
        db=dict(connection.settings_dict),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def dovecot(
    django_db_setup: None, django_db_blocker: object, private_ca: PrivateCA
) -> Iterator[DovecotInstance]:
    """One private Dovecot for the whole run, reading the test database."""
    instance = _private_dovecot(TEST_SERVER, private_ca)
    instance.start()
    yield instance
    instance.stop()


@dataclass
class Fleet:
    """Two mail servers behind one proxy, as a hoster with more than one server runs them:
    customers log in to the proxy over TLS, and so does the proxy to the mail servers."""

    a: DovecotInstance
    b: DovecotInstance
    proxy: DovecotInstance
    server_a: MailServer | None = None
    server_b: MailServer | None = None

    def deliver(self, to: str, message: bytes | str, sender: str = "sender@example.org") -> dict:
        """Deliver over LMTP to the proxy, as the MTA in front of the fleet would."""
        with smtplib.LMTP(self.proxy.listen, self.proxy.lmtp_port) as lmtp:
            return lmtp.sendmail(sender, [to], message)


@pytest.fixture(scope="session")
def dovecot_fleet(django_db_setup: None, private_ca: PrivateCA) -> Iterator[Fleet]:
    """Two private mail servers and the proxy in front of them, for the whole run."""
    started: list[DovecotInstance] = []
    try:
        for name in FLEET_SERVERS:
            backend = _private_dovecot(name, private_ca, listen=FLEET_BACKEND_ADDRESS)
            backend.start()
            started.append(backend)
        proxy = _private_dovecot(
            "fleet-proxy", private_ca, role="proxy", ca_file=str(private_ca.ca_file)
        )
        proxy.start()
        started.append(proxy)
        yield Fleet(*started)
    finally:
        for instance in started:
            instance.stop()


@pytest.fixture
def fleet(dovecot_fleet: Fleet, transactional_db: None) -> Fleet:
    """The fleet with its two MailServer rows (the table is emptied after each test)."""
    dovecot_fleet.server_a = mail_server_register_local(dovecot_fleet.a)
    dovecot_fleet.server_b = mail_server_register_local(dovecot_fleet.b)
    return dovecot_fleet


@pytest.fixture
def mail_server(dovecot: DovecotInstance, transactional_db: None) -> MailServer:
    """The MailServer row for the running Dovecot (the table is emptied after each test)."""
    return mail_server_register_local(dovecot)


@pytest.fixture
def deliver(dovecot: DovecotInstance):  # type: ignore[no-untyped-def]
    """Deliver a message over LMTP, as the MTA would; returns the per-recipient refusals."""

    def _deliver(to: str, message: bytes | str, sender: str = "sender@example.org") -> dict:
        with smtplib.LMTP(dovecot.listen, dovecot.lmtp_port) as lmtp:
            return lmtp.sendmail(sender, [to], message)

    return _deliver


TEST_SERVER = "test"
FLEET_SERVERS = ("fleet-a", "fleet-b")
TEST_SERVER_QUEUES = [
    server_queue(kind, server)
    for server in (TEST_SERVER, *FLEET_SERVERS)
    for kind in (POLL, BACKUP)
]


@pytest.fixture(scope="session")
def celery_worker_session(django_db_setup: None) -> Iterator[object]:
    """A real Celery worker thread on the real Redis broker."""
    from celery.contrib.testing.worker import start_worker

    from provider.celery import app

    with start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        shutdown_timeout=10,
        # The shared queues, and those of the test Dovecot's server ("test"): poll.test, …
        queues=["default", POLL, BACKUP, "webhooks", *TEST_SERVER_QUEUES],
    ) as worker:
        yield worker


@pytest.fixture
def celery_worker(celery_worker_session: object, transactional_db: None) -> object:
    return celery_worker_session


os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop + live_server


class SMTPCollector:
    """An aiosmtpd handler that keeps every message it receives, parsed."""

    def __init__(self) -> None:
        import threading

        self.messages: list[Message] = []
        self.refuse = False
        self._lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        if self.refuse:
            return "451 4.3.0 try again later"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)  # type: ignore[attr-defined]
        with self._lock:
            self.messages.append(parsed)
        return "250 OK"


@pytest.fixture
def smtp_server(settings: object) -> Iterator[SMTPCollector]:
    """A real SMTP server on loopback; Django (and the worker thread) send to it."""
    from aiosmtpd.controller import Controller

    handler = SMTPCollector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # type: ignore[attr-defined]
    settings.EMAIL_HOST = "127.0.0.1"  # type: ignore[attr-defined]
    settings.EMAIL_PORT = controller.port  # type: ignore[attr-defined]
    settings.EMAIL_TIMEOUT = 5  # type: ignore[attr-defined]
    yield handler
    controller.stop()


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """Login-failure counters live in the cache (a Redis database of the tests' own)."""
    from django.core.cache import cache

    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _staff_logins_pass_the_second_factor(monkeypatch: pytest.MonkeyPatch) -> None:
    """``client.force_login(staff)`` also marks the session verified: staff pages want the
    second factor, and most tests are about something else (tests/twofactor.py)."""
    from django.test import Client

    from tests import twofactor

    monkeypatch.setattr(Client, "force_login", twofactor.force_login)


@pytest.fixture(autouse=True)
def _english_after_each_test() -> Iterator[None]:
    """A request in German leaves German active in this thread; don't let it leak."""
    from django.utils import translation

    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def sent_tasks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple, dict]]:  # type: ignore[type-arg]
    """The tasks handed to the broker, as (name, args, kwargs), without a broker.

    The integration tests send the same tasks to a real worker; this is for unit tests that
    only need to know what was sent.
    """
    from provider.celery import app

    sent: list[tuple[str, tuple, dict]] = []  # type: ignore[type-arg]

    def record(name: str, args: tuple = (), kwargs: dict | None = None, **_options: object) -> None:  # type: ignore[type-arg]
        sent.append((name, tuple(args), dict(kwargs or {})))

    monkeypatch.setattr(app, "send_task", record)
    return sent
