"""Downloads: a zip of mbox files, streamed, that mail programs and Python can read."""

from __future__ import annotations

import io
import mailbox
import zipfile

import pytest

from backups import archive, crypto
from backups.manifest import Entry, Folder
from tests.backups.helpers import DATE, make_snapshot, message
from tests.factories import make_mailbox

pytestmark = pytest.mark.django_db


def read_zip(chunks) -> zipfile.ZipFile:  # type: ignore[no-untyped-def]
    return zipfile.ZipFile(io.BytesIO(b"".join(chunks)))


def test_a_snapshot_downloads_as_one_mbox_per_folder(restore_side, tmp_path):
    anna = make_mailbox("anna")
    tricky = message("from line", "From here on\n>From quoted\nno From here")
    snapshot = make_snapshot(
        anna,
        {
            "INBOX": [(message("one"), ["\\Seen"]), (tricky, ["\\Flagged", "\\Answered"])],
            "Projekte/Bäckerei": [(message("two", charset_8bit=True, body="Grüße"), [])],
            "Leer": [],
        },
    )

    chunks = list(archive.snapshot_archive(snapshot))

    assert len(chunks) > 1  # handed out piece by piece, not built in memory first
    zf = read_zip(chunks)
    assert sorted(zf.namelist()) == ["INBOX.mbox", "Leer.mbox", "Projekte/Bäckerei.mbox"]
    zf.extractall(tmp_path)
    inbox = mailbox.mbox(tmp_path / "INBOX.mbox")
    first, second = list(inbox)
    assert first["Subject"] == "one" and first.get_flags() == "RO"
    assert second.get_flags() == "OAF"  # not seen; answered, flagged
    # mboxrd: every ">*From " line gets one more ">", so readers that undo it get it back.
    assert second.get_payload() == ">From here on\n>>From quoted\nno From here\n"
    assert first.get_from().startswith("MAILER-DAEMON Fri May 17 08:30:00 2024")
    nested = list(mailbox.mbox(tmp_path / "Projekte" / "Bäckerei.mbox"))
    assert nested[0].get_payload(decode=True).decode() == "Grüße\n"
    assert len(mailbox.mbox(tmp_path / "Leer.mbox")) == 0


def test_the_download_needs_the_identity(backup_settings):
    snapshot = make_snapshot(make_mailbox("anna"), {"INBOX": [(message("one"), [])]})
    with pytest.raises(crypto.KeyMissing):
        list(archive.snapshot_archive(snapshot))


def test_mbox_quotes_from_lines_reversibly():
    entry = Entry(1, "0" * 64, 0, ["\\Deleted", "\\Draft"], DATE)
    raw = b"Subject: x\r\n\r\nFrom me\r\n>From you\r\n"

    mbox = archive.mbox_message(raw, entry)

    assert mbox.splitlines() == [
        b"From MAILER-DAEMON Fri May 17 08:30:00 2024",
        b"Status: O",
        b"X-Status: TD",
        b"Subject: x",
        b"",
        b">From me",
        b">>From you",
        b"",
    ]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("INBOX", "INBOX.mbox"),
        ("a/b/c", "a/b/c.mbox"),
        ("../../etc/passwd", "_../_../etc/passwd.mbox"),
        ("C:\\evil", "C__evil.mbox"),
        ("/", "_/_.mbox"),
    ],
)
def test_folder_names_become_safe_paths(name, expected):
    assert archive.entry_name(Folder(name, "/", 1, 1, None)) == expected
