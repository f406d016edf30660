"""Provision through the services, then log in over real IMAP and POP3 against Dovecot."""

from __future__ import annotations

import poplib
import time
from datetime import UTC, datetime

import pytest
from django.conf import settings
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailboxes.models import MIB, Mailbox, MailboxLogin, MailServer, login_order
from mailboxes.selectors import with_last_login
from mailboxes.services import (
    mailbox_change_plan,
    mailbox_delete,
    mailbox_reactivate,
    mailbox_set_password,
    mailbox_set_quota,
    mailbox_suspend,
)
from mailboxes.usage import poll_server, refresh_mailbox_usage, schedule_polls
from mailserver.dovecot import DovecotInstance
from tests.factories import PASSWORD, make_mailbox, make_plan
from tests.mailclients import imaps, pop3s
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def imap_login(dovecot: DovecotInstance, user: str, password: str) -> IMAPClient:
    client = imaps(dovecot)
    client.login(user, password)
    return client


def imap_can_login(dovecot: DovecotInstance, user: str, password: str) -> bool:
    try:
        imap_login(dovecot, user, password).logout()
    except LoginError:
        return False
    return True


def pop3_can_login(dovecot: DovecotInstance, user: str, password: str) -> bool:
    pop = pop3s(dovecot)
    try:
        pop.user(user)
        pop.pass_(password)
    except poplib.error_proto:
        return False
    finally:
        pop.quit()
    return True


def test_new_imap_mailbox_logs_in_at_once(dovecot, mail_server: MailServer) -> None:
    mailbox = make_mailbox("anna")
    client = imap_login(dovecot, mailbox.address, PASSWORD)
    folders = {name for _flags, _sep, name in client.list_folders()}
    client.logout()
    assert {"INBOX", "Sent", "Drafts", "Trash", "Junk"} <= folders


def test_wrong_password_is_refused(dovecot, mail_server: MailServer) -> None:
    mailbox = make_mailbox("anna")
    assert not imap_can_login(dovecot, mailbox.address, "not-the-password")


def test_imap_mailbox_is_refused_over_pop3(dovecot, mail_server: MailServer) -> None:
    mailbox = make_mailbox("anna", protocol="imap")
    assert imap_can_login(dovecot, mailbox.address, PASSWORD)
    assert not pop3_can_login(dovecot, mailbox.address, PASSWORD)


def test_pop3_mailbox_is_refused_over_imap(dovecot, mail_server: MailServer) -> None:
    mailbox = make_mailbox("bob", protocol="pop3")
    assert pop3_can_login(dovecot, mailbox.address, PASSWORD)
    assert not imap_can_login(dovecot, mailbox.address, PASSWORD)


def test_suspended_mailbox_is_refused_until_reactivated(dovecot, mail_server: MailServer) -> None:
    mailbox = make_mailbox("anna")
    mailbox_suspend(mailbox=mailbox, actor="test")
    assert not imap_can_login(dovecot, mailbox.address, PASSWORD)
    mailbox_reactivate(mailbox=mailbox, actor="test")
    assert imap_can_login(dovecot, mailbox.address, PASSWORD)


def test_changed_password_works_on_next_login(dovecot, mail_server: MailServer) -> None:
    mailbox = make_mailbox("anna")
    mailbox_set_password(mailbox=mailbox, password="Fresh-Lantern-7733", actor="test")
    assert imap_can_login(dovecot, mailbox.address, "Fresh-Lantern-7733")
    assert not imap_can_login(dovecot, mailbox.address, PASSWORD)


def test_protocol_change_moves_access(dovecot, mail_server: MailServer) -> None:
    mailbox = make_mailbox("anna", protocol="imap")
    both = make_plan(protocol="imap", allows_pop3=True)
    mailbox_change_plan(mailbox=mailbox, plan=both, protocol="pop3", actor="test")
    assert pop3_can_login(dovecot, mailbox.address, PASSWORD)
    assert not imap_can_login(dovecot, mailbox.address, PASSWORD)


def test_deleted_mailbox_is_refused(dovecot, mail_server: MailServer) -> None:
    mailbox = make_mailbox("anna")
    address = mailbox.address
    mailbox_delete(mailbox=mailbox, actor="test")
    assert not imap_can_login(dovecot, address, PASSWORD)


def test_quota_limit_is_postamts(dovecot, mail_server: MailServer) -> None:
    mailbox = make_mailbox("anna", quota_bytes=50 * MIB)
    client = imap_login(dovecot, mailbox.address, PASSWORD)
    _roots, quotas = client.get_quota_root("INBOX")
    client.logout()
    assert quotas[0].resource == "STORAGE"
    assert quotas[0].limit == 50 * 1024  # KiB

    mailbox_set_quota(mailbox=mailbox, quota_bytes=20 * MIB, actor="test")
    client = imap_login(dovecot, mailbox.address, PASSWORD)
    _roots, quotas = client.get_quota_root("INBOX")
    client.logout()
    assert quotas[0].limit == 20 * 1024


def test_lmtp_delivery_arrives_and_counts(dovecot, mail_server: MailServer, deliver) -> None:
    mailbox = make_mailbox("anna")
    message = "Subject: Hallo\r\nMessage-ID: <1@example.org>\r\n\r\n" + "x" * 4000 + "\r\n"
    assert deliver(mailbox.address, message) == {}
    client = imap_login(dovecot, mailbox.address, PASSWORD)
    client.select_folder("INBOX", readonly=True)
    uids = client.search()
    envelope = client.fetch(uids, ["ENVELOPE"])[uids[0]][b"ENVELOPE"]
    _roots, quotas = client.get_quota_root("INBOX")
    client.logout()
    assert len(uids) == 1
    assert envelope.subject == b"Hallo"
    assert quotas[0].usage >= 4  # KiB


def test_delivery_over_quota_is_refused(dovecot, mail_server: MailServer, deliver) -> None:
    import smtplib

    plan = make_plan(protocol="imap", max_quota_bytes=10 * MIB)
    mailbox = make_mailbox("anna", plan=plan, quota_bytes=64 * 1024)
    big = "Subject: big\r\n\r\n" + ("y" * 998 + "\r\n") * 100  # ~100 KB
    # LMTP answers per recipient after DATA; with one recipient smtplib raises that answer.
    with pytest.raises(smtplib.SMTPDataError) as refused:
        deliver(mailbox.address, big)
    assert refused.value.smtp_code == 552
    assert b"Quota exceeded" in refused.value.smtp_error


def test_deleted_mailbox_mail_is_purged_by_the_worker(
    dovecot, mail_server: MailServer, deliver, celery_worker, settings
) -> None:

    from mailboxes.models import StoragePurge

    settings.DOVECOT = {**settings.DOVECOT, "SERVER_NAME": dovecot.server, "ROOT": dovecot.root}
    mailbox = make_mailbox("anna")
    deliver(mailbox.address, "Subject: keep me\r\n\r\nprivate\r\n")
    maildir = dovecot.mail_root / mailbox.storage_path
    assert maildir.exists()

    mailbox_delete(mailbox=mailbox, actor="test")

    wait_for(lambda: StoragePurge.objects.filter(done_at__isnull=False).exists(), "the purge")
    assert not maildir.exists()
    assert StoragePurge.objects.get().done_at is not None


# --- Last login per protocol: Dovecot's last_login plugin writes dovecot_last_login -----------


def recorded(address: str) -> dict[str, int]:
    """What Dovecot wrote for ``address``: {protocol: Unix time}."""
    rows = MailboxLogin.objects.filter(username=address).values_list("protocol", "last_login")
    return dict(rows)


def wait_recorded(address: str, protocol: str, after: int = 0) -> int:
    """The time Dovecot records for the login; it writes once the session has ended."""
    return wait_for(
        lambda: (at := recorded(address).get(protocol)) and at > after and at,
        f"the {protocol} login of {address} to be recorded",
    )


def settled(dovecot: DovecotInstance) -> None:
    """A login made now is recorded: sessions that ended before it had their turn too."""
    barrier = make_mailbox("barrier")
    assert imap_can_login(dovecot, barrier.address, PASSWORD)
    wait_recorded(barrier.address, "imap")


def test_imap_and_pop3_logins_are_recorded_per_protocol(dovecot, mail_server: MailServer) -> None:
    anna = make_mailbox("anna", protocol="imap")
    bob = make_mailbox("bob", protocol="pop3")
    before = int(time.time())

    assert imap_can_login(dovecot, anna.address, PASSWORD)
    assert pop3_can_login(dovecot, bob.address, PASSWORD)

    imap_at = wait_recorded(anna.address, "imap")
    pop3_at = wait_recorded(bob.address, "pop3")
    assert before <= imap_at <= time.time() and before <= pop3_at <= time.time()
    assert recorded(anna.address) == {"imap": imap_at}
    assert recorded(bob.address) == {"pop3": pop3_at}
    # What the staff pages and lists read.
    anna, bob = with_last_login(Mailbox.objects.filter(pk__in=[anna.pk, bob.pk])).order_by("pk")
    assert (anna.last_imap_login, anna.last_pop3_login) == (
        datetime.fromtimestamp(imap_at, UTC),
        None,
    )
    assert (bob.last_imap_login, bob.last_pop3_login) == (
        None,
        datetime.fromtimestamp(pop3_at, UTC),
    )


def test_a_poll_copies_the_last_login_for_the_lists_sort(dovecot, mail_server: MailServer) -> None:
    anna = make_mailbox("anna", protocol="imap")
    make_mailbox("bob", domain=anna.domain, protocol="imap")  # never logs in
    assert imap_can_login(dovecot, anna.address, PASSWORD)
    imap_at = wait_recorded(anna.address, "imap")

    poll_server(schedule_polls()[0].pk)

    by_login = Mailbox.objects.order_by(login_order().desc(), "-id").values_list(
        "local_part", "last_login_at"
    )
    assert list(by_login)[:2] == [("anna", datetime.fromtimestamp(imap_at, UTC)), ("bob", None)]


def test_the_next_login_updates_the_time(dovecot, mail_server: MailServer) -> None:
    anna = make_mailbox("anna")
    MailboxLogin.objects.create(username=anna.address, protocol="imap", last_login=1000)

    assert imap_can_login(dovecot, anna.address, PASSWORD)

    assert wait_recorded(anna.address, "imap", after=1000) >= anna.created_at.timestamp() - 1
    assert MailboxLogin.objects.filter(username=anna.address).count() == 1


def test_refused_logins_record_nothing(dovecot, mail_server: MailServer) -> None:
    anna = make_mailbox("anna", protocol="imap")
    bob = make_mailbox("bob", protocol="pop3")
    carl = make_mailbox("carl", protocol="imap")
    mailbox_suspend(mailbox=carl, actor="test")

    assert not imap_can_login(dovecot, anna.address, "not-the-password")
    assert not pop3_can_login(dovecot, anna.address, PASSWORD)  # an IMAP box over POP3
    assert not imap_can_login(dovecot, bob.address, PASSWORD)  # a POP3 box over IMAP
    assert not imap_can_login(dovecot, carl.address, PASSWORD)  # suspended

    settled(dovecot)
    assert not MailboxLogin.objects.filter(
        username__in=[anna.address, bob.address, carl.address]
    ).exists()


def test_workers_and_deliveries_are_not_logins(dovecot, mail_server: MailServer, deliver) -> None:
    """Polls, refreshes and backups log in as the master user; they must not make a mailbox
    nobody uses look used. Nor must mail arriving over LMTP."""
    anna = make_mailbox("anna", protocol="imap")
    bob = make_mailbox("bob", protocol="pop3")
    assert deliver(anna.address, "Subject: hello\r\n\r\nhi\r\n") == {}

    for mailbox in (anna, bob):
        measured = refresh_mailbox_usage(mailbox.pk)  # "Refresh now": a master IMAP session
        assert measured is not None and measured.usage_state == Mailbox.UsageState.OK
    master = f"{bob.address}*{settings.POSTAMT_MASTER_USER}"
    assert pop3_can_login(dovecot, master, settings.POSTAMT_MASTER_PASSWORD)

    settled(dovecot)
    assert not MailboxLogin.objects.filter(username__in=[anna.address, bob.address]).exists()
