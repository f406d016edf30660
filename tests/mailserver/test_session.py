"""What a mailbox session tells its callers when something goes wrong: a dropped connection
(retry the job) apart from a refused command (report it), in the adapter's own exceptions.
The real server is in tests/integration/test_backups.py."""

from __future__ import annotations

import imaplib
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from imapclient.exceptions import IMAPClientError

from mailserver.errors import (
    CommandRefused,
    FolderError,
    MailServerUnavailable,
    OverQuota,
    SessionLost,
)
from mailserver.imap import MailboxSession


def _session(**methods: Any) -> MailboxSession:
    imap = SimpleNamespace(uid=methods.pop("uid", None))
    return MailboxSession(SimpleNamespace(_imap=imap, **methods), "mx1")  # type: ignore[arg-type]


def _raises(exc: BaseException) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return call


def test_a_folder_the_server_refuses_to_open_is_a_folder_error():
    session = _session(select_folder=_raises(IMAPClientError("select failed: [NONEXISTENT]")))

    with pytest.raises(FolderError, match="cannot open folder 'Gone'"):
        session.select("Gone")


@pytest.mark.parametrize(
    "exc",
    [
        imaplib.IMAP4.abort("socket error: EOF"),
        TimeoutError("timed out"),
        ConnectionResetError("reset"),
    ],
    ids=["abort", "timeout", "socket"],
)
def test_a_dropped_connection_is_a_lost_session_worth_a_retry(exc):
    session = _session(select_folder=_raises(exc), uid=_raises(exc))

    with pytest.raises(SessionLost, match="mx1: connection lost") as raised:
        session.select("INBOX")
    assert isinstance(raised.value, MailServerUnavailable)
    with pytest.raises(SessionLost):
        session.bodies([1, 2])


def test_uids_are_read_from_the_search_answer():
    session = _session(uid=lambda *args: ("OK", [b"1 2 7"]))

    assert session.uids() == [1, 2, 7]
    assert _session(uid=lambda *args: ("OK", [b""])).uids() == []


MESSAGE = (b"Subject: x\r\n\r\nhi\r\n", ["\\Seen"], datetime(2025, 3, 3, tzinfo=UTC))


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (("NO", [b"[OVERQUOTA] Quota exceeded (mailbox for user is full)"]), OverQuota),
        (("NO", [b"[TRYCREATE] Mailbox doesn't exist"]), CommandRefused),
        (IMAPClientError("APPEND command error: BAD [b'Invalid arguments']"), CommandRefused),
        (imaplib.IMAP4.abort("socket error: EOF"), SessionLost),
    ],
    ids=["over quota", "refused", "bad", "dropped"],
)
def test_what_an_append_can_run_into(answer, error):
    multiappend = _raises(answer) if isinstance(answer, Exception) else lambda *a: answer
    session = _session(multiappend=multiappend)

    with pytest.raises(error):
        session.append("INBOX", [MESSAGE])


def test_an_accepted_append_sends_flags_and_date():
    sent = []
    session = _session(multiappend=lambda folder, msgs: sent.append((folder, msgs)) or ("OK", []))

    session.append("INBOX", [MESSAGE])

    raw, flags, date = MESSAGE
    assert sent == [("INBOX", [{"msg": raw, "flags": flags, "date": date}])]


def test_without_list_extended_subscriptions_come_from_lsub():
    session = _session(
        has_capability=lambda name: False,
        list_folders=lambda: [
            ((b"\\HasChildren",), b"/", "INBOX"),
            ((b"\\Noselect", b"\\HasChildren"), b"/", "Projekte"),
            ((b"\\HasNoChildren",), b"/", "Projekte/Bäckerei"),
        ],
        # LSUB also names subscribed folders that no longer exist.
        list_sub_folders=lambda: [((), b"/", "Projekte/Bäckerei"), ((), b"/", "Gone")],
    )

    assert [(f.name, f.delimiter, f.subscribed) for f in session.folders()] == [
        ("INBOX", "/", False),
        ("Projekte/Bäckerei", "/", True),
    ]
