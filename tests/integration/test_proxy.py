"""One public address: logins and deliveries through the Dovecot proxy reach the mailbox's
own server (two private mail servers and a proxy, all reading the test database)."""

from __future__ import annotations

import poplib

import pytest
from imapclient.exceptions import LoginError

from mailboxes.models import Mailbox, MailServer
from mailboxes.services import domain_create, mailbox_set_password, mailbox_suspend
from mailserver.dovecot import DovecotInstance
from mailserver.imap import append_message
from tests.conftest import Fleet
from tests.factories import PASSWORD, make_customer, make_mailbox
from tests.mailclients import imaps, pop3s

pytestmark = pytest.mark.integration


def mailbox_on(server: MailServer, local_part: str, protocol: str = "imap") -> Mailbox:
    domain = domain_create(
        customer=make_customer(),
        name=f"{local_part}.{server.name}.test",
        mail_server=server,
        actor="test",
    )
    return make_mailbox(local_part, domain=domain, protocol=protocol)


def imap_subjects(instance: DovecotInstance, user: str, password: str) -> list[str]:
    with imaps(instance) as client:
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
    import smtplib

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
