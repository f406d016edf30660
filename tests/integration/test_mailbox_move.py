"""Moving a mailbox between two real mail servers behind the proxy, with mail arriving."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from mailboxes import moves
from mailboxes.models import Mailbox, MailboxMove
from mailboxes.services import mailbox_reactivate, mailbox_suspend
from mailserver.errors import MasterLoginRejected
from mailserver.imap import append_message, master_session
from tests.conftest import Fleet
from tests.factories import PASSWORD
from tests.integration.test_proxy import imap_can_login, mailbox_on, message, pop3_messages
from tests.mailclients import imaps

pytestmark = pytest.mark.integration
# Tests that run a move's steps themselves: the task mailbox_move_start hands to the broker is
# only recorded, else the session's Celery worker (started by the test of the staff page) would
# run the same move alongside.
by_hand = pytest.mark.usefixtures("sent_tasks")


def folder_contents(instance, address: str) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Folder -> sorted (subject, flags) as the customer sees them through ``instance``."""
    seen: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    with imaps(instance) as client:
        client.login(address, PASSWORD)
        for flags, _delimiter, name in client.list_folders():
            if b"\\Noselect" in flags or b"\\NonExistent" in flags:
                continue
            client.select_folder(name, readonly=True)
            uids = client.search()
            answer = client.fetch(uids, [b"FLAGS", b"BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
            seen[name] = sorted(
                (
                    data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().split(":", 1)[1].strip(),
                    tuple(sorted(f.decode() for f in data[b"FLAGS"] if f != b"\\Recent")),
                )
                for data in answer.values()
            )
    return seen


def subscribed(instance, address: str) -> set[str]:
    with imaps(instance) as client:
        client.login(address, PASSWORD)
        return {name for _flags, _delimiter, name in client.list_sub_folders()}


def message_files(instance, mailbox: Mailbox) -> list[Path]:
    maildir = instance.mail_root / mailbox.storage_path / "Maildir"
    return [p for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new")]


@by_hand
def test_a_move_with_mail_arriving_loses_nothing_and_removes_the_old_copy(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox = mailbox_on(fleet.server_a, "anna")
    for number in range(3):
        fleet.deliver(mailbox.address, message(f"old {number}"))
    with master_session(fleet.server_a, mailbox.address) as session:
        session.create_folder("Projects/2026")
        session.subscribe("Projects/2026")
        session.append("Projects/2026", [(message("plan"), ["\\Seen", "\\Flagged"], _date())])
        session.select("INBOX", readonly=False)
        first = min(session.uids())
        session.set_flags({first: ["\\Answered", "\\Seen"]})
    before = folder_contents(fleet.proxy, mailbox.address)

    real_copy = moves.copy_mailbox
    passes: list[str] = []

    def copy_with_mail_arriving(source, target, address, **options):  # type: ignore[no-untyped-def]
        if options.get("after") is not None:
            # After the switch: the proxy delivers to the new server.
            assert fleet.deliver(address, message("after the switch")) == {}
        result = real_copy(source, target, address, **options)
        if options.get("after") is None:
            # During the copy, after it has read the folders: lands on the old server.
            assert fleet.deliver(address, message("during the copy")) == {}
        passes.append("catch-up" if options.get("after") is not None else "copy")
        return result

    monkeypatch.setattr(moves, "copy_mailbox", copy_with_mail_arriving)

    move = moves.mailbox_move_start(mailbox=mailbox, target=fleet.server_b, actor="test")
    assert moves.run_move(move.pk) is not None  # copied, verified, switched: come back later
    move.refresh_from_db()
    mailbox.refresh_from_db()
    assert move.state == MailboxMove.State.SWITCHED
    assert mailbox.mail_server == fleet.server_b
    assert move.messages_total == 4 and move.messages_done == 4

    assert moves.run_move(move.pk) is None
    move.refresh_from_db()
    assert move.state == MailboxMove.State.DONE, move.error
    assert passes == ["copy", "catch-up"]
    assert move.caught_up == 1

    after = folder_contents(fleet.proxy, mailbox.address)
    expected_inbox = sorted(before["INBOX"] + [("during the copy", ()), ("after the switch", ())])
    assert after["INBOX"] == expected_inbox
    assert after["Projects/2026"] == [("plan", ("\\Flagged", "\\Seen"))]
    assert "Projects/2026" in subscribed(fleet.proxy, mailbox.address)
    # The same password and address, through the same proxy, over POP3 too.
    assert imap_can_login(fleet.proxy, mailbox.address, PASSWORD)
    # The mail is on the new server; the old server no longer knows the mailbox or keeps it.
    assert len(message_files(fleet.b, mailbox)) == 6
    assert message_files(fleet.a, mailbox) == []
    with pytest.raises(MasterLoginRejected):
        append_message(fleet.server_a, mailbox.address, "INBOX", message("lost?"))


@by_hand
def test_a_pop3_mailbox_moves_and_logs_in_through_the_proxy(fleet: Fleet) -> None:
    mailbox = mailbox_on(fleet.server_a, "paula", protocol="pop3")
    fleet.deliver(mailbox.address, message("one"))
    move = moves.mailbox_move_start(mailbox=mailbox, target=fleet.server_b, actor="test")
    while moves.run_move(move.pk) is not None:
        pass
    fleet.deliver(mailbox.address, message("two"))
    assert pop3_messages(fleet.proxy, mailbox.address, PASSWORD) == 2
    assert len(message_files(fleet.b, mailbox)) == 2


@by_hand
def test_a_move_is_refused_to_the_same_server_or_a_full_one_or_twice(fleet: Fleet) -> None:
    mailbox = mailbox_on(fleet.server_a, "anna")
    with pytest.raises(ValidationError, match="is on fleet-a already"):
        moves.mailbox_move_start(mailbox=mailbox, target=fleet.server_a, actor="test")

    fleet.server_b.capacity_bytes = 10
    fleet.server_b.save()
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=1000)
    mailbox.refresh_from_db()
    with pytest.raises(ValidationError, match="fleet-b is full"):
        moves.mailbox_move_start(mailbox=mailbox, target=fleet.server_b, actor="test")

    fleet.server_b.capacity_bytes = None
    fleet.server_b.active = False
    fleet.server_b.save()
    with pytest.raises(ValidationError, match="does not accept new mailboxes"):
        moves.mailbox_move_start(mailbox=mailbox, target=fleet.server_b, actor="test")

    fleet.server_b.active = True
    fleet.server_b.save()
    mailbox_suspend(mailbox=mailbox, actor="test")
    with pytest.raises(ValidationError, match="is suspended; reactivate it to move it"):
        moves.mailbox_move_start(mailbox=mailbox, target=fleet.server_b, actor="test")
    mailbox_reactivate(mailbox=mailbox, actor="test")

    moves.mailbox_move_start(mailbox=mailbox, target=fleet.server_b, actor="test")
    with pytest.raises(ValidationError, match="is being moved already"):
        moves.mailbox_move_start(mailbox=mailbox, target=fleet.server_b, actor="test")
    assert MailboxMove.objects.filter(mailbox=mailbox).count() == 1


def _date():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@by_hand
def test_a_session_open_on_the_old_server_is_closed_before_the_catch_up(fleet: Fleet) -> None:
    """Else a client still connected could write to the old copy after it was caught up."""
    import imaplib

    from imapclient.exceptions import IMAPClientError

    mailbox = mailbox_on(fleet.server_a, "anna")
    client = imaps(fleet.proxy)
    client.login(mailbox.address, PASSWORD)
    client.select_folder("INBOX")
    move = moves.mailbox_move_start(mailbox=mailbox, target=fleet.server_b, actor="test")
    while moves.run_move(move.pk) is not None:
        pass
    with pytest.raises((IMAPClientError, imaplib.IMAP4.abort, OSError)):
        client.append("INBOX", message("too late"))
        client.noop()


@by_hand
def test_the_command_moves_a_mailbox_and_names_what_it_refuses(fleet: Fleet, settings) -> None:  # type: ignore[no-untyped-def]
    from io import StringIO

    from django.core.management import CommandError, call_command

    settings.POSTAMT_MOVE_SETTLE_SECONDS = 0
    mailbox = mailbox_on(fleet.server_a, "anna")
    fleet.deliver(mailbox.address, message("hello"))
    with pytest.raises(CommandError, match="There is no mail server “nowhere”"):
        call_command("mailbox_move", mailbox.address, "nowhere")
    with pytest.raises(CommandError, match="is on fleet-a already"):
        call_command("mailbox_move", mailbox.address, "fleet-a")

    out = StringIO()
    call_command("mailbox_move", mailbox.address, "fleet-b", "--now", stdout=out)
    assert "Moved anna@anna.fleet-a.test to fleet-b: 1 message." in out.getvalue()
    mailbox.refresh_from_db()
    assert mailbox.mail_server == fleet.server_b
    assert len(message_files(fleet.b, mailbox)) == 1


def test_a_move_started_by_staff_runs_on_the_worker(
    fleet: Fleet,
    celery_worker: object,
    client,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    from django.urls import reverse

    from accounts.models import StaffRole, User
    from tests.waiting import wait_for

    settings.POSTAMT_MOVE_SETTLE_SECONDS = 0.5
    mailbox = mailbox_on(fleet.server_a, "anna")
    fleet.deliver(mailbox.address, message("hello"))
    client.force_login(User.objects.create_user("hanna", is_staff=True, staff_role=StaffRole.ADMIN))
    url = reverse("staff:mailbox_move", args=[mailbox.pk])
    assert client.post(url, {"target": "fleet-b"}).status_code == 302

    wait_for(
        lambda: MailboxMove.objects.get(mailbox=mailbox).state == "done", "the move", timeout=60
    )
    assert "Moved to fleet-b" in client.get(url).content.decode()
    assert folder_contents(fleet.proxy, mailbox.address)["INBOX"] == [("hello", ())]
    assert message_files(fleet.a, mailbox) == []
    # Usage is measured again, now on the new server.
    measured = wait_for(
        lambda: Mailbox.objects.filter(pk=mailbox.pk, usage_state="ok", used_bytes__gt=0).first(),
        "the usage measured after the move",
        timeout=30,
    )
    assert measured.mail_server == fleet.server_b


@by_hand
def test_a_copy_run_again_copies_nothing_twice_and_keeps_true_duplicates(fleet: Fleet) -> None:
    """A worker lost mid-copy runs the pass again: nothing may end up twice, but two
    identical messages (same Message-ID, size and date) stay two."""
    from mailserver.move import copy_mailbox

    mailbox = mailbox_on(fleet.server_a, "anna")
    twin = b"From: a@example.org\r\nMessage-ID: <twin@example.org>\r\nSubject: twin\r\n\r\nx\r\n"
    with master_session(fleet.server_a, mailbox.address) as session:
        session.append("INBOX", [(twin, [], _date()), (twin, [], _date())])
        session.append("INBOX", [(message("single"), ["\\Seen"], _date())])
    # An unfinished move makes the mailbox known to both servers.
    first = moves.mailbox_move_start(mailbox=mailbox, target=fleet.server_b, actor="test")

    once = {f.name: f for f in copy_mailbox(fleet.server_a, fleet.server_b, mailbox.address)}
    again = {f.name: f for f in copy_mailbox(fleet.server_a, fleet.server_b, mailbox.address)}

    assert once["INBOX"].copied == 3 and once["INBOX"].matches
    assert again["INBOX"].copied == 0 and again["INBOX"].target_messages == 3
    assert first.state == MailboxMove.State.QUEUED
