"""TLS as customers and workers meet it: IMAPS, POP3S and STARTTLS logins, a certificate
nobody vouches for refused, and no cleartext login from another machine."""

from __future__ import annotations

import contextlib
import json
import os
import poplib
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from imapclient import IMAPClient

from mailboxes.models import MailServer
from mailserver.doveadm import doveadm_users
from mailserver.dovecot import DovecotInstance
from mailserver.errors import UntrustedCertificate
from mailserver.imap import master_imap_probe
from mailserver.tls import PrivateCA, make_private_ca
from tests.conftest import free_port
from tests.factories import PASSWORD, make_mailbox
from tests.mailclients import imaps, pop3s, tls_context

pytestmark = pytest.mark.integration


def test_imap_mailbox_logs_in_over_imaps(dovecot: DovecotInstance, mail_server: MailServer) -> None:
    mailbox = make_mailbox("anna", protocol="imap")
    client = imaps(dovecot)
    client.login(mailbox.address, PASSWORD)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()


def test_pop3_mailbox_logs_in_over_pop3s(dovecot: DovecotInstance, mail_server: MailServer) -> None:
    mailbox = make_mailbox("bob", protocol="pop3")
    pop = pop3s(dovecot)
    pop.user(mailbox.address)
    assert pop.pass_(PASSWORD).startswith(b"+OK")
    assert pop.stat() == (0, 0)
    pop.quit()


def test_imap_and_pop3_log_in_after_starttls(
    dovecot: DovecotInstance, mail_server: MailServer
) -> None:
    imap_box = make_mailbox("anna", protocol="imap")
    pop3_box = make_mailbox("bob", protocol="pop3")

    client = IMAPClient(dovecot.listen, port=dovecot.imap_port, ssl=False, timeout=10)
    client.starttls(tls_context())
    client.login(imap_box.address, PASSWORD)
    assert client.socket().version() in ("TLSv1.2", "TLSv1.3")
    client.logout()

    pop = poplib.POP3(dovecot.listen, dovecot.pop3_port, timeout=10)
    pop.stls(tls_context())
    pop.user(pop3_box.address)
    assert pop.pass_(PASSWORD).startswith(b"+OK")
    pop.quit()


@pytest.fixture
def stranger_ca(settings: object) -> Iterator[PrivateCA]:
    """Workers that trust another CA than the one that signed Dovecot's certificate."""
    with tempfile.TemporaryDirectory() as directory:
        other = make_private_ca(Path(directory))
        settings.POSTAMT_MAIL_CA_FILE = str(other.ca_file)  # type: ignore[attr-defined]
        yield other


def test_workers_refuse_a_server_whose_certificate_they_cannot_verify(
    mail_server: MailServer, stranger_ca: PrivateCA, client: Client
) -> None:
    mailbox = make_mailbox("anna")

    with pytest.raises(UntrustedCertificate, match="certificate verify failed|unable to get"):
        master_imap_probe(mail_server, mailbox.address)
    with pytest.raises(UntrustedCertificate):
        doveadm_users(mail_server)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["mail_servers"] == {mail_server.name: "untrusted certificate"}


def test_workers_refuse_a_trusted_certificate_for_another_host(
    mail_server: MailServer, settings: object
) -> None:
    """A server whose certificate the workers' CA signed, but for another name: someone in
    between with a certificate of their own must not get the master password."""
    with tempfile.TemporaryDirectory() as directory:
        other = make_private_ca(Path(directory), ("mail.example.net",))
        settings.POSTAMT_MAIL_CA_FILE = str(other.ca_file)  # type: ignore[attr-defined]
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(other.cert_file, other.key_file)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            impostor = threading.Thread(target=_handshake_once, args=(listener, server_context))
            impostor.start()
            mail_server.imaps_port = listener.getsockname()[1]
            mail_server.save()
            with pytest.raises(UntrustedCertificate, match="IP address mismatch"):
                master_imap_probe(mail_server, make_mailbox("anna").address)
            impostor.join(10)


def _handshake_once(listener: socket.socket, context: ssl.SSLContext) -> None:
    connection, _address = listener.accept()
    with connection, contextlib.suppress(OSError):
        context.wrap_socket(connection, server_side=True).close()


# --- from another machine -------------------------------------------------------------------

# Runs inside the network namespace: every way to log in, and what came of it.
REMOTE_CLIENT = r"""
import imaplib, json, poplib, ssl, sys
host, imap, pop3, imaps, pop3s, ca, user, password = sys.argv[1:]
context = ssl.create_default_context(cafile=ca)
results = {}
def attempt(name, login):
    try:
        login()
        results[name] = "ok"
    except (imaplib.IMAP4.error, poplib.error_proto) as exc:
        results[name] = "refused: " + str(exc)
def imap_plain():
    with imaplib.IMAP4(host, int(imap), timeout=10) as c:
        results["imap_capabilities"] = sorted(c.capabilities)
        c.login(user, password)
def imap_starttls():
    with imaplib.IMAP4(host, int(imap), timeout=10) as c:
        c.starttls(context)
        c.login(user, password)
def imaps_login():
    with imaplib.IMAP4_SSL(host, int(imaps), ssl_context=context, timeout=10) as c:
        c.login(user, password)
def pop3_plain():
    p = poplib.POP3(host, int(pop3), timeout=10)
    try:
        p.user(user); p.pass_(password)
    finally:
        p.close()
def pop3_stls():
    p = poplib.POP3(host, int(pop3), timeout=10)
    p.stls(context); p.user(user); p.pass_(password); p.quit()
def pop3s_login():
    p = poplib.POP3_SSL(host, int(pop3s), context=context, timeout=10)
    p.user(user); p.pass_(password); p.quit()
for name, login in [("imap_plain", imap_plain), ("imap_starttls", imap_starttls),
                    ("imaps", imaps_login), ("pop3_plain", pop3_plain),
                    ("pop3_stls", pop3_stls), ("pop3s", pop3s_login)]:
    attempt(name, login)
print(json.dumps(results))
"""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"ip {' '.join(args)}: {result.stderr.strip()} (needs root and iproute2)")


@pytest.fixture
def other_machine() -> Iterator[tuple[str, str, str]]:
    """A network namespace joined to this one by a veth pair: (namespace, our address, its
    address). Dovecot counts a connection as secured when the client's address is its own,
    so only a client with another address shows what a customer's machine meets."""
    tag = f"pt{os.getpid() % 100000}"
    namespace, here, there = f"postamt-{tag}", f"{tag}h", f"{tag}n"
    subnet = f"10.213.{os.getpid() % 250}"
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", namespace)
        _ip("addr", "add", f"{subnet}.1/30", "dev", here)
        _ip("link", "set", here, "up")
        _ip("-n", namespace, "addr", "add", f"{subnet}.2/30", "dev", there)
        _ip("-n", namespace, "link", "set", there, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        yield namespace, f"{subnet}.1", f"{subnet}.2"
    finally:
        # Deleting the namespace deletes the pair; the link too, should moving it have failed.
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", here], capture_output=True)


@pytest.fixture
def dovecot_on_the_network(
    other_machine: tuple[str, str, str], dovecot: DovecotInstance, mail_server: MailServer
) -> Iterator[tuple[DovecotInstance, PrivateCA]]:
    """A second Dovecot for the same server's mailboxes, listening on the veth address with a
    certificate that names it."""
    _namespace, address, _client = other_machine
    root = Path(tempfile.mkdtemp(prefix="postamt-dovecot-net-"))
    root.chmod(0o755)
    ca = make_private_ca(root / "tls", (address,))
    instance = DovecotInstance(
        root=root,
        server=dovecot.server,
        listen=address,
        imap_port=free_port(),
        pop3_port=free_port(),
        imaps_port=free_port(),
        pop3s_port=free_port(),
        lmtp_port=free_port(),
        ssl_cert=str(ca.cert_file),
        ssl_key=str(ca.key_file),
        master_user=dovecot.master_user,
        master_password=dovecot.master_password,
        instance_name=f"postamt-net-{os.getpid()}",
        mail_fsync="never",
        auth_penalty=False,
        db=dovecot.db,
    )
    instance.start()
    try:
        yield instance, ca
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_cleartext_logins_from_another_address_are_refused_tls_logins_work(
    other_machine: tuple[str, str, str],
    dovecot_on_the_network: tuple[DovecotInstance, PrivateCA],
) -> None:
    namespace, address, _client = other_machine
    instance, ca = dovecot_on_the_network
    mailbox = make_mailbox("anna", protocol="imap")
    pop3_box = make_mailbox("bob", protocol="pop3")

    def from_other_machine(user: str, password: str = PASSWORD) -> dict[str, object]:
        ports = (instance.imap_port, instance.pop3_port, instance.imaps_port, instance.pop3s_port)
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", REMOTE_CLIENT, address]
            + [str(p) for p in ports]
            + [str(ca.ca_file), user, password],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    imap_results = from_other_machine(mailbox.address)
    assert "LOGINDISABLED" in imap_results["imap_capabilities"]
    assert str(imap_results["imap_plain"]).startswith("refused")
    assert imap_results["imap_starttls"] == "ok"
    assert imap_results["imaps"] == "ok"

    pop3_results = from_other_machine(pop3_box.address)
    assert "Plaintext authentication disallowed" in str(pop3_results["pop3_plain"])
    assert pop3_results["pop3_stls"] == "ok"
    assert pop3_results["pop3s"] == "ok"
    # The master user the workers log in as is refused in cleartext as well.
    master = from_other_machine(
        f"{mailbox.address}*{settings.POSTAMT_MASTER_USER}", settings.POSTAMT_MASTER_PASSWORD
    )
    assert str(master["imap_plain"]).startswith("refused")
    assert master["imaps"] == "ok"
