"""Pack files: many sealed message blobs in one object, with an encrypted table of contents.

One file per message costs an inode and a directory entry each (and on object storage, one
request each); a backup batch becomes one pack instead. Blobs stay content-addressed: a
blob is found by the SHA-256 of its message through the ``Blob`` table, or, without the
database, through the table of contents at the end of every pack (docs/backups.md).

Layout: ``blob ... blob toc len(toc):8 MAGIC`` where every blob is ``age(zstd(message))``,
``toc`` is ``age(zstd(json))`` listing each blob's sha256, offset, length and message size,
``len(toc)`` is big-endian and ``MAGIC`` marks the format version.

A message above ``BACKUP_STREAM_THRESHOLD`` gets a pack of its own, in the same format,
written through a temporary file (``write_pack_file``) so that it is never held whole.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

import pyrage

from .crypto import Writer, seal, unseal, unseal_stream
from .store import Store, StoreError

MAGIC = b"PAMTPK01"
TRAILER = struct.Struct(">Q8s")


class PackError(StoreError):
    """A pack is not what the format promises."""


@dataclass(frozen=True)
class PackedBlob:
    sha256: str
    size: int  # of the message
    offset: int
    length: int  # of the sealed blob


@dataclass(frozen=True)
class NewPack:
    name: str  # SHA-256 of the pack's bytes: its integrity can be checked without a key
    size: int
    blobs: list[PackedBlob]


def pack_key(repository: str, name: str) -> str:
    return f"{repository}/packs/{name}.pack"


def build_pack(
    sealed: list[tuple[str, int, bytes]], to: list[pyrage.x25519.Recipient]
) -> tuple[NewPack, bytes]:
    """A pack of already sealed blobs ``(sha256, message size, sealed bytes)``, and its bytes."""
    parts: list[bytes] = []
    blobs: list[PackedBlob] = []
    offset = 0
    for sha256, size, data in sealed:
        blobs.append(PackedBlob(sha256, size, offset, len(data)))
        parts.append(data)
        offset += len(data)
    data = b"".join([*parts, _toc(blobs, to)])
    return NewPack(hashlib.sha256(data).hexdigest(), len(data), blobs), data


def write_pack_file(
    out: BinaryIO, seal_blob: Callable[[Writer], str], size: int, to: list[pyrage.x25519.Recipient]
) -> NewPack:
    """A pack of one blob written to ``out`` as ``seal_blob`` seals it (returning the
    message's SHA-256, known only at its end); the pack's own hash is taken on the way, so
    nothing is read back."""
    digest = hashlib.sha256()
    written = 0

    def write(data: bytes) -> None:
        nonlocal written
        digest.update(data)
        out.write(data)
        written += len(data)

    sha256 = seal_blob(_Tee(write))
    blob = PackedBlob(sha256, size, 0, written)
    write(_toc([blob], to))
    return NewPack(digest.hexdigest(), written, [blob])


class _Tee:
    """A writable file that hands what it is given to ``write``."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write

    def write(self, data: bytes) -> int:
        self._write(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered here."""


def _toc(blobs: list[PackedBlob], to: list[pyrage.x25519.Recipient]) -> bytes:
    """The sealed table of contents and the trailer that end every pack."""
    toc = seal(
        json.dumps(
            {
                "format": "postamt-pack",
                "version": 1,
                "blobs": [[b.sha256, b.size, b.offset, b.length] for b in blobs],
            },
            separators=(",", ":"),
        ).encode(),
        to,
    )
    return toc + TRAILER.pack(len(toc), MAGIC)


def read_toc(data: bytes, keys: list[pyrage.x25519.Identity]) -> list[PackedBlob]:
    """The table of contents of a whole pack (for recovery without the database)."""
    if len(data) < TRAILER.size:
        raise PackError("too short to be a pack")
    length, magic = TRAILER.unpack(data[-TRAILER.size :])
    if magic != MAGIC or length > len(data) - TRAILER.size:
        raise PackError("not a version 1 pack")
    toc = json.loads(unseal(data[-TRAILER.size - length : -TRAILER.size], keys))
    return [PackedBlob(*entry) for entry in toc["blobs"]]


@dataclass(frozen=True)
class Location:
    pack: str
    offset: int
    length: int
    size: int  # of the message: decompression stops there


def locate(repository_id: int, hashes: Iterable[str]) -> dict[str, Location]:
    """Where the blobs of these messages are (one query; read them with ``read_blob``)."""
    from .models import Blob

    rows = Blob.objects.filter(repository=repository_id, sha256__in=set(hashes)).values_list(
        "sha256", "pack__name", "offset", "length", "size"
    )
    return {
        sha256: Location(pack, offset, length, size) for sha256, pack, offset, length, size in rows
    }


def read_blob(
    store: Store,
    repository: str,
    sha256: str,
    locations: dict[str, Location],
    keys: list[pyrage.x25519.Identity],
) -> bytes:
    """A message's raw bytes, checked against the hash it is stored under (for messages
    below ``BACKUP_STREAM_THRESHOLD``; ``unpack_blob`` streams the others)."""
    where = _where(sha256, locations)
    raw = unseal(
        store.get_range(pack_key(repository, where.pack), where.offset, where.length),
        keys,
        limit=where.size,
    )
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise _damaged(sha256, where)
    return raw


def unpack_blob(
    store: Store,
    repository: str,
    sha256: str,
    locations: dict[str, Location],
    keys: list[pyrage.x25519.Identity],
    out: Writer,
) -> None:
    """``read_blob`` written into ``out`` a piece at a time, so a message of any size is
    never held whole. The hash can only be checked at the end: when this raises, what
    ``out`` received must be thrown away."""
    where = _where(sha256, locations)
    digest = hashlib.sha256()

    def write(data: bytes) -> None:
        digest.update(data)
        out.write(data)

    unseal_stream(
        store.iter_range(pack_key(repository, where.pack), where.offset, where.length),
        _Tee(write),
        keys,
        limit=where.size,
    )
    if digest.hexdigest() != sha256:
        raise _damaged(sha256, where)


def _where(sha256: str, locations: dict[str, Location]) -> Location:
    where = locations.get(sha256)
    if where is None:
        raise PackError(f"blob {sha256} is missing from the backup index")
    return where


def _damaged(sha256: str, where: Location) -> PackError:
    return PackError(f"blob {sha256} in pack {where.pack} is damaged: its content differs")
