"""Download: a snapshot as a zip of mbox files (one per folder), produced as a stream.

One message is decrypted at a time and the zip is written into a small buffer that is
handed out and emptied as it fills, so memory stays flat whatever the mailbox weighs. A
message above ``BACKUP_STREAM_THRESHOLD`` is decrypted into a temporary file and turned into
mbox a line (or ``PIECE``) at a time, so it is never held whole either.
The mbox flavour is mboxrd (``>From`` quoting is reversible) with LF line ends and the
flags in ``Status``/``X-Status`` headers, as mutt, Thunderbird and Python's ``mailbox`` read.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from django.conf import settings
from django.utils import timezone

from .crypto import identities
from .manifest import Entry, Folder, read_manifest
from .models import Snapshot
from .packs import locate, read_blob, unpack_blob
from .store import get_store, temporary_file

PIECE = 1024 * 1024  # the longest run of a line handled at once
# The start of a line too short to tell whether it is a ">*From " line is held back (only a
# line of nothing but ">" can make it grow, and only up to this).
_UNDECIDED = re.compile(rb">*(?:F|Fr|Fro|From)?")
MAX_UNDECIDED = 4 * PIECE

_FROM_LINE = re.compile(rb"^(>*From )", re.M)
_UNSAFE = re.compile(r'[\x00-\x1f\\:*?"<>|]')


class _Buffer:
    """A write-only file for ``zipfile``: it has no ``seek``/``tell``, so zipfile writes
    data descriptors and never goes back."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: ``drain`` hands the data out."""

    def close(self) -> None:
        """Nothing to close; zipfile leaves a file it was given open anyway."""

    def drain(self) -> Iterator[bytes]:
        if self.chunks:
            data = b"".join(self.chunks)
            self.chunks = []
            yield data


def archive_name(snapshot: Snapshot) -> str:
    taken = timezone.localtime(snapshot.taken_at)
    return f"{snapshot.repository.address}-{taken:%Y-%m-%d-%H%M}.zip"


def snapshot_archive(
    snapshot: Snapshot, on_message: Callable[[], None] | None = None
) -> Iterator[bytes]:
    """The zip, piece by piece; ``on_message`` is called after each message (progress).
    Needs the identity: only the restore side runs it, in the worker (``downloads``)."""
    keys = identities()
    store = get_store()
    manifest = read_manifest(store, snapshot.manifest_key, keys)
    taken = timezone.localtime(snapshot.taken_at)
    buffer = _Buffer()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for folder in manifest.folders:
            info = zipfile.ZipInfo(entry_name(folder), date_time=taken.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            locations = locate(snapshot.repository_id, (m.sha256 for m in folder.messages))
            with zf.open(info, "w", force_zip64=True) as entry:
                for message in folder.messages:
                    if message.size <= settings.BACKUP_STREAM_THRESHOLD:
                        raw = read_blob(store, manifest.repository, message.sha256, locations, keys)
                        entry.write(mbox_message(raw, message))
                    else:
                        with temporary_file() as (handle, _path):
                            unpack_blob(
                                store, manifest.repository, message.sha256, locations, keys, handle
                            )
                            handle.seek(0)
                            for piece in mbox_pieces(handle, message):
                                entry.write(piece)
                                yield from buffer.drain()
                    if on_message is not None:
                        on_message()
                    yield from buffer.drain()
        yield from buffer.drain()
    yield from buffer.drain()


def entry_name(folder: Folder) -> str:
    """``Projekte/Bäckerei.mbox``: the folder tree as directories, nothing that could
    climb out of the extraction directory."""
    parts = folder.name.split(folder.delimiter) if folder.delimiter else [folder.name]
    safe = [_UNSAFE.sub("_", part).strip() or "_" for part in parts]
    safe = ["_" + part if part in (".", "..") else part for part in safe]
    return "/".join(safe) + ".mbox"


def mbox_message(raw: bytes, entry: Entry) -> bytes:
    return b"".join(mbox_pieces(io.BytesIO(raw), entry))


def mbox_pieces(source: BinaryIO, entry: Entry) -> Iterator[bytes]:
    """A message as an mboxrd entry, read from ``source`` a line at a time (a line longer
    than ``PIECE`` in several pieces): CRLF becomes LF, a line starting ``>*From `` gets one
    more ``>``, and the entry ends with an empty line."""
    status, x_status = _status_headers(entry.flags)
    head = _from_line(entry.internal_date)
    if status:
        head += b"Status: " + status + b"\n"
    if x_status:
        head += b"X-Status: " + x_status + b"\n"
    yield head
    at_line_start, carry, last = True, b"", b""
    while piece := source.readline(PIECE):
        piece, carry = carry + piece, b""
        if (
            at_line_start
            and not piece.endswith(b"\n")
            and len(piece) < MAX_UNDECIDED
            and _UNDECIDED.fullmatch(piece)
        ):
            carry = piece
            continue
        if piece.endswith(b"\r"):  # maybe the first half of a CRLF cut by PIECE
            piece, carry = piece[:-1], b"\r"
        if at_line_start:
            piece = _FROM_LINE.sub(rb">\1", piece)
        piece = piece.replace(b"\r\n", b"\n")
        if piece:
            at_line_start, last = piece.endswith(b"\n"), piece[-1:]
            yield piece
    if carry:
        yield carry
        last = carry
    yield b"\n\n" if last != b"\n" else b"\n"


def _from_line(date: datetime) -> bytes:
    utc = date.astimezone(UTC)
    return f"From MAILER-DAEMON {utc:%a %b} {utc.day:2d} {utc:%H:%M:%S %Y}\n".encode()


def _status_headers(flags: list[str]) -> tuple[bytes, bytes]:
    lowered = {flag.lower() for flag in flags}
    status = (b"R" if "\\seen" in lowered else b"") + b"O"
    x_status = b"".join(
        letter
        for flag, letter in (
            ("\\answered", b"A"),
            ("\\flagged", b"F"),
            ("\\draft", b"T"),
            ("\\deleted", b"D"),
        )
        if flag in lowered
    )
    return status, x_status
