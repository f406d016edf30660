"""Reading a folder's metadata from Dovecot's UID FETCH answer (the real server is in
tests/integration/test_backups.py; here the answers a server may also give)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from mailserver.errors import CommandRefused, UnexpectedAnswer
from mailserver.fetch import MessageInfo, fetch_bodies, folder_metadata, uid_set


def _imap(status: str, lines: list[object]) -> SimpleNamespace:
    """imaplib's answer to ``uid(...)``: the status and the untagged FETCH data."""
    return SimpleNamespace(uid=lambda *args: (status, lines))


def test_every_message_with_flags_date_and_size():
    lines = [
        b"1 (UID 7 FLAGS (\\Seen $Label1 \\Recent) RFC822.SIZE 20006 "
        b'INTERNALDATE "03-Mar-2025 10:00:00 +0100")',
        b'2 (UID 9 FLAGS () RFC822.SIZE 5 INTERNALDATE " 1-Jan-2025 00:00:00 +0000")',
    ]

    found = folder_metadata(_imap("OK", lines))

    assert found == {
        7: MessageInfo(7, 20006, ["$Label1", "\\Seen"],
                       datetime(2025, 3, 3, 10, tzinfo=timezone(timedelta(hours=1)))),
        9: MessageInfo(9, 5, [], datetime(2025, 1, 1, tzinfo=UTC)),
    }  # fmt: skip


def test_an_empty_folder_has_no_messages():
    assert folder_metadata(_imap("OK", [None])) == {}


def test_an_unsolicited_flag_update_does_not_hide_the_message():
    lines = [
        b'1 (UID 7 FLAGS (\\Seen) RFC822.SIZE 10 INTERNALDATE "03-Mar-2025 10:00:00 +0000")',
        b"1 (UID 7 FLAGS (\\Seen \\Deleted) MODSEQ (12))",  # another client, meanwhile
    ]

    assert folder_metadata(_imap("OK", lines))[7].flags == ["\\Seen"]


@pytest.mark.parametrize(
    "lines",
    [
        [b"1 (UID 7 RFC822.SIZE 10 FLAGS (\\Seen))"],
        [(b"1 (UID 7 RFC822.SIZE 10 INTERNALDATE {26}", b"03-Mar-2025 10:00:00 +0000")],
    ],
    ids=["incomplete", "literal"],
)
def test_an_answer_it_cannot_read_is_an_error_not_a_guess(lines):
    with pytest.raises(UnexpectedAnswer):
        folder_metadata(_imap("OK", lines))


def test_a_refusal_is_told_apart_from_an_answer_it_cannot_read():
    with pytest.raises(CommandRefused):
        folder_metadata(_imap("NO", [b"Mailbox doesn't exist"]))
    with pytest.raises(CommandRefused):
        fetch_bodies(_imap("NO", [b"Mailbox doesn't exist"]), [7])


def test_bodies_by_uid_wherever_the_server_puts_the_uid():
    parts = [
        (b"1 (UID 7 BODY[] {5}", b"hello"),
        b")",
        (b"2 (BODY[] {3}", b"bye"),  # the UID may also follow the literal
        b" UID 9)",
        b"2 (FLAGS (\\Seen))",  # an update from another session on the way
    ]

    assert fetch_bodies(_imap("OK", parts), [7, 9]) == {7: b"hello", 9: b"bye"}


def test_a_body_without_uid_is_an_error():
    with pytest.raises(UnexpectedAnswer):
        fetch_bodies(_imap("OK", [(b"1 (BODY[] {5}", b"hello"), b")"]), [7])


def test_uid_sets_are_written_as_ranges():
    assert uid_set([5, 1, 2, 3, 9, 10, 12]) == "1:3,5,9:10,12"
    assert uid_set([4]) == "4"
