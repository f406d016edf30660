"""Reading a folder's metadata from Dovecot's UID FETCH answer (the real server is in
tests/integration/test_backups.py; here the answers a server may also give)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from backups.imap import MessageInfo, UnexpectedAnswer, folder_metadata


def _client(status: str, lines: list[object]) -> SimpleNamespace:
    imap = SimpleNamespace(uid=lambda *args: (status, lines))
    return SimpleNamespace(_imap=imap)


def test_every_message_with_flags_date_and_size():
    lines = [
        b"1 (UID 7 FLAGS (\\Seen $Label1 \\Recent) RFC822.SIZE 20006 "
        b'INTERNALDATE "03-Mar-2025 10:00:00 +0100")',
        b'2 (UID 9 FLAGS () RFC822.SIZE 5 INTERNALDATE " 1-Jan-2025 00:00:00 +0000")',
    ]

    found = folder_metadata(_client("OK", lines))

    assert found == {
        7: MessageInfo(7, 20006, ["$Label1", "\\Seen"],
                       datetime(2025, 3, 3, 10, tzinfo=timezone(timedelta(hours=1)))),
        9: MessageInfo(9, 5, [], datetime(2025, 1, 1, tzinfo=UTC)),
    }  # fmt: skip


def test_an_empty_folder_has_no_messages():
    assert folder_metadata(_client("OK", [None])) == {}


def test_an_unsolicited_flag_update_does_not_hide_the_message():
    lines = [
        b'1 (UID 7 FLAGS (\\Seen) RFC822.SIZE 10 INTERNALDATE "03-Mar-2025 10:00:00 +0000")',
        b"1 (UID 7 FLAGS (\\Seen \\Deleted) MODSEQ (12))",  # another client, meanwhile
    ]

    assert folder_metadata(_client("OK", lines))[7].flags == ["\\Seen"]


@pytest.mark.parametrize(
    ("status", "lines"),
    [
        ("NO", [b"Mailbox doesn't exist"]),
        ("OK", [b"1 (UID 7 RFC822.SIZE 10 FLAGS (\\Seen))"]),
        ("OK", [(b"1 (UID 7 RFC822.SIZE 10 INTERNALDATE {26}", b"03-Mar-2025 10:00:00 +0000")]),
    ],
    ids=["refused", "incomplete", "literal"],
)
def test_an_answer_it_cannot_read_is_an_error_not_a_guess(status, lines):
    with pytest.raises(UnexpectedAnswer):
        folder_metadata(_client(status, lines))
