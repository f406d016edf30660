"""Large messages without a mail server: sealing and opening in pieces, decompression capped
at the recorded size (a forged pack cannot exhaust memory), and downloads in pieces."""

from __future__ import annotations

import io
import re
import zipfile

import pyrage
import pytest
import zstandard
from django.core.management import CommandError, call_command

from backups import archive, browse, crypto
from backups.manifest import Entry
from backups.models import Blob, Pack, StoredMessage
from backups.packs import build_pack, locate, pack_key, read_blob, unpack_blob
from backups.store import get_store
from tests.backups.helpers import DATE, make_snapshot, message
from tests.factories import make_mailbox

pytestmark = pytest.mark.django_db


def test_what_is_sealed_in_pieces_opens_as_what_is_sealed_whole(restore_side):
    data = message("big", size=300_000)
    out = io.BytesIO()
    crypto.seal_stream(
        (data[i : i + 1000] for i in range(0, len(data), 1000)), out, crypto.recipients()
    )
    sealed = out.getvalue()

    assert crypto.unseal(sealed, crypto.identities(), limit=len(data)) == data
    opened = io.BytesIO()
    pieces = (sealed[i : i + 777] for i in range(0, len(sealed), 777))
    crypto.unseal_stream(pieces, opened, crypto.identities(), limit=len(data))
    assert opened.getvalue() == data


def zstd_bomb(size: int) -> bytes:
    """A few kilobytes of zstd that decompress to ``size`` zero bytes."""
    compressor = zstandard.ZstdCompressor(level=19).compressobj()
    block = b"\0" * (1 << 20)
    return b"".join(compressor.compress(block) for _ in range(size >> 20)) + compressor.flush()


@pytest.fixture
def forged(restore_side, backup_keys):  # type: ignore[no-untyped-def]
    """A snapshot whose one message's blob was replaced by someone who can write to the
    store and knows the public key: a 256 MiB zstd bomb where 1 KB was recorded."""
    snapshot = make_snapshot(make_mailbox("anna"), {"INBOX": [(message("one"), [])]})
    blob = Blob.objects.get(repository=snapshot.repository)
    bomb = pyrage.encrypt(zstd_bomb(256 << 20), [backup_keys.identity.to_public()])
    assert len(bomb) < 64 * 1024
    pack, data = build_pack([(blob.sha256, blob.size, bomb)], crypto.recipients())
    store = get_store()
    store.put(pack_key(str(snapshot.repository.key), pack.name), data)
    store.flush()
    blob.pack = Pack.objects.create(repository=snapshot.repository, name=pack.name, size=pack.size)
    blob.offset, blob.length = pack.blobs[0].offset, pack.blobs[0].length
    blob.save()
    return snapshot, blob


def test_a_forged_blob_that_would_decompress_past_its_recorded_size_is_refused(forged):
    snapshot, blob = forged
    locations = locate(snapshot.repository_id, [blob.sha256])
    args = (get_store(), str(snapshot.repository.key), blob.sha256, locations, crypto.identities())

    with pytest.raises(crypto.TooLarge, match=f"more than the {blob.size} bytes recorded"):
        read_blob(*args)
    received = io.BytesIO()
    with pytest.raises(crypto.TooLarge):
        unpack_blob(*args, received)
    assert len(received.getvalue()) <= blob.size
    with pytest.raises(crypto.TooLarge):
        list(archive.snapshot_archive(snapshot))  # a download stops there too


def test_backup_check_reports_the_forged_blob(forged):
    snapshot, _blob = forged
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("backup_check", snapshot.repository.address, "--read-data", stdout=out)
    assert "message unreadable" in out.getvalue()
    assert "decompresses to more than" in out.getvalue()


def whole_mboxrd(raw: bytes) -> bytes:
    """The mboxrd body of a message made from all of it at once: the reference."""
    body = raw.replace(b"\r\n", b"\n")
    if not body.endswith(b"\n"):
        body += b"\n"
    return re.sub(rb"^(>*From )", rb">\1", body, flags=re.M) + b"\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: x\r\n\r\nFrom here\r\n>From there\r\nno From\r\nFrom",
        b"From the start\r\n\r\n\r\nbody without end",
        b"a long line " * 50 + b"\r\nFrom next\r\n\rFrom not at a line start\r\n",
        b"\r\r\n\r\n>>From x\n",
        b"",
    ],
)
@pytest.mark.parametrize("piece", [1, 2, 3, 7, 1 << 20])
def test_mbox_in_pieces_is_the_mbox_of_the_whole_message(raw, piece, monkeypatch):
    monkeypatch.setattr(archive, "PIECE", piece)
    entry = Entry(1, "0" * 64, len(raw), ["\\Seen"], DATE)

    streamed = b"".join(archive.mbox_pieces(io.BytesIO(raw), entry))

    head = b"From MAILER-DAEMON Fri May 17 08:30:00 2024\nStatus: RO\n"
    assert streamed == head + whole_mboxrd(raw)


def test_a_large_message_downloads_as_it_would_whole(restore_side, settings):
    big = message("big", "From the start\nFrom again", size=200_000)
    snapshot = make_snapshot(make_mailbox("anna"), {"INBOX": [(big, []), (message("small"), [])]})
    whole = zipfile.ZipFile(io.BytesIO(b"".join(archive.snapshot_archive(snapshot))))

    settings.BACKUP_STREAM_THRESHOLD = 1000  # the big one now goes through a temporary file
    streamed = zipfile.ZipFile(io.BytesIO(b"".join(archive.snapshot_archive(snapshot))))

    inbox = streamed.read("INBOX.mbox")
    assert inbox == whole.read("INBOX.mbox")
    assert b"\n>From the start\n>From again\n" in inbox


def test_a_large_message_stored_before_display_headers_were_kept_shows_its_headers(
    restore_side, settings
):
    big = message("the big one", size=3 * browse.HEAD_BYTES)
    snapshot = make_snapshot(make_mailbox("anna"), {"INBOX": [(big, [])]})
    Blob.objects.filter(repository=snapshot.repository).update(headers=None)  # as older runs
    settings.BACKUP_STREAM_THRESHOLD = browse.HEAD_BYTES

    (summary,) = browse.summaries(
        snapshot.repository,
        list(StoredMessage.objects.filter(repository=snapshot.repository)),
        crypto.identities(),
    )

    assert (summary.sender, summary.subject, summary.readable) == (
        "sender@example.org",
        "the big one",
        True,
    )
