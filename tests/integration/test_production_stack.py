"""The production stack without containers: gunicorn with the production settings, one Celery
worker per queue and one beat, as real processes with the secrets docker/compose.yaml gives
each (docs/operations.md, "Secrets per process"), against PostgreSQL, a Redis of their own,
the private Dovecot and a real SMTP server. Driven over HTTP as staff would: provision a
mailbox, log in to it, poll it, get the warning email, back it up and restore it."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pyrage
import pytest
from django.db import connection
from imapclient import IMAPClient

from accounts.models import User
from backups.models import BackupJob, JobStatus, RestoreJob, Snapshot
from mailboxes.models import Mailbox, MailServer
from provider.celery import BACKUP, POLL, server_queue
from tests.backups.helpers import message
from tests.conftest import SMTPCollector, free_port
from tests.factories import PASSWORD, make_customer, make_domain, make_plan
from tests.integration.test_broker_outage import PrivateRedis
from tests.test_settings import CHECKOUT, PRODUCTION, TEST_RELAXATIONS, child_env
from tests.twofactor import current_code, totp_device
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

HOST = "postamt.example.net"
BIN = Path(sys.executable).parent
# What no process gets unless it is named below for it.
SECRETS = ("SECRET_KEY", "POSTAMT_MASTER_PASSWORD", "POSTAMT_DOVEADM_API_KEY", "EMAIL_BACKEND")
HELD_APART = (
    "SECRET_KEY",
    "POSTAMT_MASTER_PASSWORD",
    "POSTAMT_DOVEADM_API_KEY",
    "BACKUP_IDENTITY_FILE",
)
QUEUES = ("default", "poll", "backup", "restore", "webhooks")


@dataclass
class Stack:
    """The processes, each with its log file; stopped together."""

    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with (self.logs / f"{name}.log").open("w") as out:
            self.processes[name] = subprocess.Popen(
                command, cwd=CHECKOUT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def all_running(self) -> bool:
        return all(process.poll() is None for process in self.processes.values())

    def report(self) -> str:
        return "\n".join(
            f"--- {name} ({process.poll()}):\n{(self.logs / f'{name}.log').read_text()[-3000:]}"
            for name, process in self.processes.items()
        )

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Browser:
    """HTTP to gunicorn as through the TLS-ending proxy: X-Forwarded-Proto https, and the
    Secure cookies kept (a client library would not send them over the proxy's plain HTTP)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, object] | None = None
    ) -> tuple[int, str, str]:
        """(status, Location, body)."""
        headers = {"Host": HOST, "X-Forwarded-Proto": "https"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if method == "POST":
            headers["Origin"] = f"https://{HOST}"
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(form or {})
        connection_ = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection_.request(method, path, body=body, headers=headers)
        response = connection_.getresponse()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        text = response.read().decode(errors="replace")
        connection_.close()
        return response.status, response.headers.get("Location", ""), text

    def get(self, path: str) -> tuple[int, str, str]:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, object] | None = None) -> tuple[int, str, str]:
        return self.request("POST", path, form)


@dataclass
class Smtp:
    port: int
    received: SMTPCollector


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """A real SMTP server for the workers (the suite's smtp_server fixture also points this
    process's settings at it; here only the child processes send)."""
    from aiosmtpd.controller import Controller

    handler = SMTPCollector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield Smtp(controller.port, handler)
    controller.stop()


@pytest.fixture
def stack(
    dovecot,  # type: ignore[no-untyped-def]
    mail_server: MailServer,
    smtp: Smtp,
    tmp_path: Path,
) -> Iterator[tuple[Stack, int]]:
    broker = PrivateRedis()  # the suite's worker thread must not take these processes' tasks
    broker.start()
    identity = pyrage.x25519.Identity.generate()
    identity_file = tmp_path / "backup-identity.txt"
    identity_file.write_text(f"{identity}\n")
    identity_file.chmod(0o600)
    db = connection.settings_dict
    base = {k: v for k, v in child_env().items() if k not in TEST_RELAXATIONS + SECRETS}
    base.update(
        {k: v for k, v in PRODUCTION.items() if k not in SECRETS},
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=broker.url,
        CACHE_URL=broker.url.removesuffix("/0") + "/1",
        POSTAMT_VAR_DIR=str(tmp_path / "var"),
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp.port),
        BACKUP_ROOT=str(tmp_path / "backups"),
        BACKUP_PUBLIC_KEY=str(identity.to_public()),
        BACKUP_RESTORE_QUEUE="restore",
        POSTAMT_POLL_INTERVAL="2",  # beat sends a poll every 2 s
    )
    # Set empty, not left out: a process reads what its environment lacks from the checkout's
    # .env (`make run`'s), which holds every secret.
    base.update(dict.fromkeys(HELD_APART, ""))
    secret_key = {"SECRET_KEY": PRODUCTION["SECRET_KEY"]}
    master = {"POSTAMT_MASTER_PASSWORD": child_env()["POSTAMT_MASTER_PASSWORD"]}
    doveadm = {"POSTAMT_DOVEADM_API_KEY": child_env()["POSTAMT_DOVEADM_API_KEY"]}
    held = {  # as docker/compose.yaml gives them
        "default": {**secret_key, **master},
        "poll": {**master, **doveadm},
        "backup": {**master, **doveadm},
        "restore": {**master, "BACKUP_IDENTITY_FILE": str(identity_file)},
        "webhooks": {},
    }
    web_env = {**base, **secret_key, "BACKUP_IDENTITY_FILE": str(identity_file)}
    # The web talks to no mail server, so it never holds their secrets.
    assert not web_env["POSTAMT_MASTER_PASSWORD"] and not web_env["POSTAMT_DOVEADM_API_KEY"]
    assert not {**base, **held["backup"]}["BACKUP_IDENTITY_FILE"]
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=CHECKOUT, env=web_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stderr
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=CHECKOUT, env=web_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr  # as the container starts the web

    stack = Stack(tmp_path)
    port = free_port()
    stack.start(
        "web",
        [str(BIN / "gunicorn"), "provider.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        web_env,
    )
    # As compose runs them: the poll and backup workers also take the mail server's own queues.
    consumes = {q: q for q in QUEUES} | {
        kind: f"{kind},{server_queue(kind, mail_server.name)}" for kind in (POLL, BACKUP)
    }
    for queue in QUEUES:
        stack.start(
            f"worker-{queue}",
            [str(BIN / "celery"), "-A", "provider", "worker", "-Q", consumes[queue], "-P", "solo",
             "--without-mingle", "--without-gossip", "--hostname", f"{queue}@stack"],
            {**base, **held[queue]},
        )  # fmt: skip
    stack.start(
        "beat",
        [str(BIN / "celery"), "-A", "provider", "beat", "--schedule", str(tmp_path / "beat")],
        {k: v for k, v in base.items() if k != "DATABASE_URL"},  # the broker is all it needs
    )
    try:
        browser = Browser(port)

        def healthy() -> bool:
            assert stack.all_running(), stack.report()
            try:
                return browser.get("/healthz")[0] == 200
            except OSError:
                return False

        wait_for(healthy, "the web to answer /healthz with 200", timeout=120, interval=0.2)
        yield stack, port
        assert stack.all_running(), stack.report()
    finally:
        stack.stop()
        broker.stop()


def log_in_staff(browser: Browser, user: User, password: str) -> None:
    """The password, then the authenticator app's code."""
    browser.get("/accounts/login/")
    status, location, _ = browser.post(
        "/accounts/login/", {"username": user.username, "password": password}
    )
    assert status == 302, location
    status, location, body = browser.post(
        "/accounts/two-factor/", {"code": current_code(totp_device(user))}
    )
    assert status == 302, body[-2000:]


def inbox_subjects(dovecot, address: str) -> list[str]:  # type: ignore[no-untyped-def]
    with IMAPClient(dovecot.listen, port=dovecot.imap_port, ssl=False, timeout=10) as client:
        client.login(address, PASSWORD)
        client.select_folder("INBOX")
        fetched = client.fetch(client.search(), ["ENVELOPE"]).values()
        return sorted(item[b"ENVELOPE"].subject.decode() for item in fetched)


def test_provision_log_in_poll_warn_back_up_and_restore_through_the_stack(
    stack, dovecot, deliver, smtp: Smtp
) -> None:  # type: ignore[no-untyped-def]
    processes, port = stack
    staff = User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    totp_device(staff)
    customer = make_customer("Bäckerei Müller")
    domain = make_domain(customer, "baeckerei.example")
    plan = make_plan()
    browser = Browser(port)
    log_in_staff(browser, staff, "Staff-Pass-2041")

    # Provision: the web writes the row; Dovecot reads it at the next login.
    status, location, body = browser.post(
        f"/staff/customers/{customer.pk}/mailboxes/new/",
        {"domain": domain.pk, "local_part": "anna", "password": PASSWORD, "plan": plan.pk,
         "protocol": "imap", "quota": "1M"},
    )  # fmt: skip
    assert status == 302, body[-2000:]
    mailbox = Mailbox.objects.get(address="anna@baeckerei.example")
    assert location == f"/staff/mailboxes/{mailbox.pk}/"
    assert inbox_subjects(dovecot, mailbox.address) == []

    # Mail arrives; beat sends the poll, the poll worker measures, the default worker warns.
    assert deliver(mailbox.address, message("Rechnung Maerz", size=880_000)) == {}
    measured = wait_for(
        lambda: Mailbox.objects.filter(pk=mailbox.pk, used_bytes__gt=800_000).first(),
        "beat and the poll worker to measure the mailbox",
        timeout=90,
    )
    assert measured.quota_bytes == 1024 * 1024
    warning = wait_for(
        lambda: [m for m in smtp.received.messages if customer.contact_email in m["To"]],
        "the near-full warning over SMTP",
        timeout=90,
    )[0]
    assert re.search(r"anna@baeckerei\.example is \d+ % full", str(warning["Subject"]))

    # Back up (the backup worker holds only the public key) ...
    status, _, _ = browser.post(f"/staff/backups/mailboxes/{mailbox.pk}/backup/")
    assert status == 302
    job = wait_for(
        lambda: (
            BackupJob.objects.filter(repository__mailbox=mailbox, status=JobStatus.DONE)
            .select_related("snapshot")
            .first()
        ),
        "the backup worker to finish",
        timeout=120,
    )
    snapshot = job.snapshot
    assert isinstance(snapshot, Snapshot) and snapshot.messages == 1

    # ... lose the message, and restore it (the restore worker holds the identity).
    with IMAPClient(dovecot.listen, port=dovecot.imap_port, ssl=False, timeout=10) as client:
        client.login(mailbox.address, PASSWORD)
        client.select_folder("INBOX")
        client.delete_messages(client.search())
        client.expunge()
    assert inbox_subjects(dovecot, mailbox.address) == []
    prefix = f"s{snapshot.pk}"
    status, _, body = browser.post(
        f"/staff/backups/snapshots/{snapshot.pk}/restore/",
        {f"{prefix}-scope": "mailbox", f"{prefix}-folder": ""},
    )
    assert status == 302, body[-2000:]
    restore = wait_for(
        lambda: RestoreJob.objects.filter(snapshot=snapshot, status=JobStatus.DONE).first(),
        "the restore worker to finish",
        timeout=120,
    )
    assert restore.messages_restored == 1
    assert inbox_subjects(dovecot, mailbox.address) == ["Rechnung Maerz"]
    assert processes.all_running(), processes.report()
