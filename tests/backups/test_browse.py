"""The browse page's headers: hostile or broken mail never fails the page."""

from __future__ import annotations

import pytest

from backups.browse import SHOWN_CHARS, display_block, display_headers


@pytest.mark.parametrize(
    ("raw", "sender", "subject"),
    [
        (b"From: .:\r\nSubject: Hallo\r\n\r\nbody", "(unreadable)", "Hallo"),
        (b'From: "\r\nSubject: \r\n\r\n', "(unreadable)", ""),
        (b"From: a@example.org\r\nSubject: =?utf-8?q?\xff?=\r\n\r\n", "a@example.org", "\ufffd"),
        (b"no headers at all", "", ""),
        (b"", "", ""),
        (b"Subject: a\x00b\r\n\r\n", "", "a b"),  # NUL
        (b"Subject: caf\xe9\r\n\r\n", "", "caf\ufffd"),
    ],
)
def test_headers_that_cannot_be_parsed_are_shown_as_unreadable(raw, sender, subject):
    assert display_headers(raw) == (sender, subject)


def test_a_long_subject_is_cut():
    _sender, subject = display_headers(b"Subject: " + b"x" * 5000 + b"\r\n\r\n")
    assert len(subject) == SHOWN_CHARS + 1 and subject.endswith("…")


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        b"  folded on\r\nDate: Mon, 03 Mar 2025 10:00:00 +0100\r\n\r\nbody From: x\r\n",
        b"Subject: lf only\nX-Other: y\nFROM: .:\n\nbody",
        b"no headers at all",
        b"Received: x\r\n\tcontinued\r\nsubject:\x00\xff\r\n\r\n",
    ],
)
def test_the_kept_display_block_shows_what_the_whole_message_shows(raw):
    assert display_headers(display_block(raw)) == display_headers(raw)


def test_the_display_block_keeps_only_sender_subject_and_date():
    raw = b"To: b@x\r\nSubject: s\r\nFrom: a@x\r\nDate: d\r\nX-Long: " + b"y" * 9000
    raw += b"\r\n\r\n" + b"z" * 10_000
    assert display_block(raw) == b"Subject: s\r\nFrom: a@x\r\nDate: d\r\n\r\n"
