"""One public address: logins and deliveries through the Dovecot proxy reach the mailbox's
own server (two private mail servers and a proxy, all reading the test database).

Customers log in to the proxy over IMAPS, POP3S or STARTTLS, and the proxy logs in to the mail
server over TLS, verifying its certificate. LMTP deliveries go on in cleartext: no password
crosses that hop, and the MTA in front delivers in cleartext too."""

from __future__ import annotations

import contextlib
import poplib
import re
import smtplib
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailboxes import client_settings
from mailboxes.models import Mailbox, MailServer
from mailboxes.services import domain_create, mailbox_set_password, mailbox_suspend
from mailserver.dovecot import DovecotInstance
from mailserver.imap import append_message
from mailserver.tls import PrivateCA, make_private_ca
from tests.conftest import Fleet
from tests.factories import PASSWORD, make_customer, make_mailbox
from tests.mailclients import imaps, pop3s, tls_context

pytestmark = pytest.mark.integration


def mailbox_on(server: MailServer, local_part: str, protocol: str = "imap") -> Mailbox:
    domain = domain_create(
        customer=make_customer(),
        name=f"{local_part}.{server.name}.test",
        mail_server=server,
        actor="test",
    )
    return make_mailbox(local_part, domain=domain, protocol=protocol, mail_server=server)


def imap_subjects(
    instance: DovecotInstance, user: str, password: str, timeout: float = 10
) -> list[str]:
    with imaps(instance, timeout) as client:
        client.login(user, password)
        client.select_folder("INBOX", readonly=True)
        uids = client.search()
        answer = client.fetch(uids, [b"BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
    return sorted(
        data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip()
        for data in answer.values()
    )


def imap_can_login(instance: DovecotInstance, user: str, password: str) -> bool:
    try:
        imap_subjects(instance, user, password)
    except LoginError:
        return False
    return True


def pop3_messages(instance: DovecotInstance, user: str, password: str) -> int | None:
    """How many messages POP3 lists, or None if the login is refused."""
    pop = pop3s(instance)
    try:
        pop.user(user)
        pop.pass_(password)
        return pop.stat()[0]
    except poplib.error_proto:
        return None
    finally:
        pop.quit()


def message(subject: str) -> bytes:
    return f"From: a@example.org\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n".encode()


def test_imap_login_through_the_proxy_reaches_the_mailboxs_own_server(fleet: Fleet) -> None:
    on_a = mailbox_on(fleet.server_a, "anna")
    on_b = mailbox_on(fleet.server_b, "bert")
    append_message(fleet.server_b, on_b.address, "INBOX", message("only on B"))
    append_message(fleet.server_a, on_a.address, "INBOX", message("only on A"))

    assert imap_subjects(fleet.proxy, on_b.address, PASSWORD) == ["only on B"]
    assert imap_subjects(fleet.proxy, on_a.address, PASSWORD) == ["only on A"]


def test_pop3_login_through_the_proxy_reaches_the_mailboxs_own_server(fleet: Fleet) -> None:
    on_b = mailbox_on(fleet.server_b, "paula", protocol="pop3")
    for subject in ("one", "two"):
        append_message(fleet.server_b, on_b.address, "INBOX", message(subject))

    assert pop3_messages(fleet.proxy, on_b.address, PASSWORD) == 2


def test_delivery_to_the_proxy_lands_on_the_mailboxs_own_server(fleet: Fleet) -> None:
    on_a = mailbox_on(fleet.server_a, "anna")
    on_b = mailbox_on(fleet.server_b, "bert")

    assert fleet.deliver(on_b.address, message("for bert")) == {}
    assert fleet.deliver(on_a.address, message("for anna")) == {}

    assert imap_subjects(fleet.b, on_b.address, PASSWORD) == ["for bert"]
    assert imap_subjects(fleet.a, on_a.address, PASSWORD) == ["for anna"]


def test_delivery_to_an_unknown_address_is_refused_by_the_proxy(fleet: Fleet) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        fleet.deliver("nobody@nowhere.test", message("lost"))


def test_wrong_password_is_refused_through_the_proxy(fleet: Fleet) -> None:
    on_b = mailbox_on(fleet.server_b, "bert")
    pop_box = mailbox_on(fleet.server_b, "paula", protocol="pop3")

    assert not imap_can_login(fleet.proxy, on_b.address, "not-the-password")
    assert pop3_messages(fleet.proxy, pop_box.address, "not-the-password") is None


def test_a_protocol_the_mailbox_does_not_have_is_refused_through_the_proxy(fleet: Fleet) -> None:
    imap_box = mailbox_on(fleet.server_a, "anna", protocol="imap")
    pop_box = mailbox_on(fleet.server_b, "paula", protocol="pop3")

    assert pop3_messages(fleet.proxy, imap_box.address, PASSWORD) is None
    assert not imap_can_login(fleet.proxy, pop_box.address, PASSWORD)
    # and each works over its own protocol
    assert imap_can_login(fleet.proxy, imap_box.address, PASSWORD)
    assert pop3_messages(fleet.proxy, pop_box.address, PASSWORD) == 0


def test_new_password_and_suspension_take_effect_through_the_proxy(fleet: Fleet) -> None:
    on_b = mailbox_on(fleet.server_b, "bert")
    mailbox_set_password(mailbox=on_b, password="Quiet-Heron-7788", actor="test")

    assert not imap_can_login(fleet.proxy, on_b.address, PASSWORD)
    assert imap_can_login(fleet.proxy, on_b.address, "Quiet-Heron-7788")

    mailbox_suspend(mailbox=on_b, actor="test")
    assert not imap_can_login(fleet.proxy, on_b.address, "Quiet-Heron-7788")


# --- TLS on both hops ------------------------------------------------------------------------


def test_starttls_logins_through_the_proxy_reach_the_mailboxs_own_server(fleet: Fleet) -> None:
    on_b = mailbox_on(fleet.server_b, "bert")
    pop_box = mailbox_on(fleet.server_a, "paula", protocol="pop3")
    append_message(fleet.server_b, on_b.address, "INBOX", message("only on B"))
    append_message(fleet.server_a, pop_box.address, "INBOX", message("only on A"))

    with IMAPClient(fleet.proxy.listen, port=fleet.proxy.imap_port, ssl=False, timeout=10) as c:
        c.starttls(tls_context())
        c.login(on_b.address, PASSWORD)
        assert c.select_folder("INBOX", readonly=True)[b"EXISTS"] == 1

    pop = poplib.POP3(fleet.proxy.listen, fleet.proxy.pop3_port, timeout=10)
    pop.stls(tls_context())
    pop.user(pop_box.address)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 1
    pop.quit()


def log_from_here(instance: DovecotInstance) -> Callable[[], list[str]]:
    """The instance's log lines written from now on (the instances serve the whole run)."""
    log = instance.root / "log" / "dovecot.log"
    start = log.stat().st_size

    def lines() -> list[str]:
        with log.open("rb") as handle:
            handle.seek(start)
            return handle.read().decode(errors="replace").splitlines()

    return lines


def logins(lines: list[str], address: str) -> list[str]:
    """Dovecot 2.3 logs "Login: user=<…>", 2.4 "Logged in: user=<…>"."""
    return [
        line
        for line in lines
        if re.search(rf"(Login|Logged in): user=<{re.escape(address)}>", line)
    ]


def test_the_proxy_logs_in_to_the_mail_server_over_tls(fleet: Fleet) -> None:
    """The hop from the proxy to the mail server carries the customer's password: the mail
    server records each proxied login as TLS, and refuses a cleartext one from the proxy's
    address (another address than its own, as another machine's would be)."""
    on_b = mailbox_on(fleet.server_b, "bert")
    pop_box = mailbox_on(fleet.server_b, "paula", protocol="pop3")
    on_a_log, on_b_log = log_from_here(fleet.a), log_from_here(fleet.b)

    assert imap_can_login(fleet.proxy, on_b.address, PASSWORD)
    assert pop3_messages(fleet.proxy, pop_box.address, PASSWORD) == 0

    for address in (on_b.address, pop_box.address):
        (line,) = logins(on_b_log(), address)
        assert f"rip={fleet.proxy.listen}, lip={fleet.b.listen}" in line
        assert ", TLS" in line
    assert logins(on_a_log(), on_b.address) == []

    with IMAPClient(fleet.b.listen, port=fleet.b.imap_port, ssl=False, timeout=10) as client:
        assert b"LOGINDISABLED" in client.capabilities()
        with pytest.raises(LoginError):
            client.login(on_b.address, PASSWORD)
    assert len(logins(on_b_log(), on_b.address)) == 1


@pytest.mark.parametrize("impostor", ["another CA", "another host name"])
def test_the_proxy_does_not_log_in_to_a_server_it_cannot_verify(
    fleet: Fleet, private_ca: PrivateCA, impostor: str
) -> None:
    """A mail server row that points at someone else (a certificate no trusted CA signed, or
    a trusted certificate for another name) gets no customer's login through the proxy."""
    on_b = mailbox_on(fleet.server_b, "bert")
    proxy_log = log_from_here(fleet.proxy)
    with tempfile.TemporaryDirectory() as directory:
        if impostor == "another CA":
            host, chain = fleet.b.listen, make_private_ca(Path(directory), (fleet.b.listen,))
        else:  # the run's own certificate, which does not name 127.0.0.3
            host, chain = "127.0.0.3", private_ca
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain.cert_file, chain.key_file)
        with socket.create_server((host, 0)) as listener:
            done = threading.Event()
            server = threading.Thread(target=_greet_over_tls, args=(listener, context, done))
            server.start()
            MailServer.objects.filter(pk=on_b.mail_server_id).update(
                hostname=host, imaps_port=listener.getsockname()[1]
            )
            try:
                with pytest.raises(LoginError, match="UNAVAILABLE"):
                    imap_subjects(fleet.proxy, on_b.address, PASSWORD, timeout=60)
            finally:
                done.set()
                server.join(10)
    refusals = [line for line in proxy_log() if "SSL certificate" in line]
    assert refusals, proxy_log()


def _greet_over_tls(
    listener: socket.socket, context: ssl.SSLContext, done: threading.Event
) -> None:
    """Greet like an IMAP server should a handshake pass, until the test is done (Dovecot
    tries a server that fails the handshake again, three times)."""
    listener.settimeout(0.2)
    while not done.is_set():
        try:
            connection, _address = listener.accept()
        except TimeoutError:
            continue
        with connection, contextlib.suppress(OSError):
            connection.settimeout(5)
            with context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
                tls.recv(1024)


def test_client_settings_for_a_fleet_name_the_proxy_and_its_tls_ports(
    fleet: Fleet, settings: Any
) -> None:
    """With the proxy's public name (and its ports, where not 993/995) configured, every
    mailbox of every server is told the same address, and logs in with what it was told."""
    settings.POSTAMT_MAIL_HOSTNAME = "localhost"  # the proxy's name in the run's certificate
    settings.POSTAMT_MAIL_SECURITY = "ssl"
    settings.POSTAMT_MAIL_IMAP_PORT = fleet.proxy.imaps_port
    settings.POSTAMT_MAIL_POP3_PORT = fleet.proxy.pop3s_port
    on_a = mailbox_on(fleet.server_a, "anna")
    on_b = mailbox_on(fleet.server_b, "paula", protocol="pop3")

    (imap,) = client_settings.for_mailbox(on_a).incoming
    (pop3,) = client_settings.for_mailbox(on_b).incoming
    assert (imap.hostname, imap.port, imap.security) == ("localhost", fleet.proxy.imaps_port, "ssl")
    assert (pop3.hostname, pop3.port, pop3.security) == ("localhost", fleet.proxy.pop3s_port, "ssl")

    with IMAPClient(imap.hostname, port=imap.port, ssl_context=tls_context(), timeout=10) as c:
        c.login(on_a.address, PASSWORD)
    pop = poplib.POP3_SSL(pop3.hostname, pop3.port, context=tls_context(), timeout=10)
    pop.user(on_b.address)
    assert pop.pass_(PASSWORD).startswith(b"+OK")
    pop.quit()
