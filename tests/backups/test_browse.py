"""The browse page's headers: hostile or broken mail never fails the page."""

from __future__ import annotations

import pytest

from backups.browse import SHOWN_CHARS, display_headers


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
