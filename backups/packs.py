"""Pack files: many sealed message blobs in one object, with an encrypted table of contents.

One file per message costs an inode and a directory entry each (and on object storage, one
request each); a backup batch becomes one pack instead. Blobs stay content-addressed: a
blob is found by the SHA-256 of its message through the ``Blob`` table, or, without the
database, through the table of contents at the end of every pack (docs/backups.md).

Layout: ``blob ... blob toc len(toc):8 MAGIC`` where every blob is ``age(zstd(message))``,
``toc`` is ``age(zstd(json))`` listing each blob's sha256, offset, length and message size,
``len(toc)`` is big-endian and ``MAGIC`` marks the format version.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import pyrage

from .crypto import seal, unseal
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
    data: bytes
    blobs: list[PackedBlob]


def pack_key(repository: str, name: str) -> str:
    return f"{repository}/packs/{name}.pack"


def build_pack(sealed: list[tuple[str, int, bytes]], to: list[pyrage.x25519.Recipient]) -> NewPack:
    """A pack of already sealed blobs ``(sha256, message size, sealed bytes)``."""
    parts: list[bytes] = []
    blobs: list[PackedBlob] = []
    offset = 0
    for sha256, size, data in sealed:
        blobs.append(PackedBlob(sha256, size, offset, len(data)))
        parts.append(data)
        offset += len(data)
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
    data = b"".join([*parts, toc, TRAILER.pack(len(toc), MAGIC)])
    return NewPack(hashlib.sha256(data).hexdigest(), data, blobs)


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


def locate(repository_id: int, hashes: Iterable[str]) -> dict[str, Location]:
    """Where the blobs of these messages are (one query; read them with ``read_blob``)."""
    from .models import Blob

    rows = Blob.objects.filter(repository=repository_id, sha256__in=set(hashes)).values_list(
        "sha256", "pack__name", "offset", "length"
    )
    return {sha256: Location(pack, offset, length) for sha256, pack, offset, length in rows}


def read_blob(
    store: Store,
    repository: str,
    sha256: str,
    locations: dict[str, Location],
    keys: list[pyrage.x25519.Identity],
) -> bytes:
    """A message's raw bytes, checked against the hash it is stored under."""
    where = locations.get(sha256)
    if where is None:
        raise PackError(f"blob {sha256} is missing from the backup index")
    raw = unseal(
        store.get_range(pack_key(repository, where.pack), where.offset, where.length), keys
    )
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise PackError(f"blob {sha256} in pack {where.pack} is damaged: its content differs")
    return raw
