"""The storage format: object keys and the snapshot manifest (docs/backups.md describes both).

A manifest is ``age(zstd(json))`` and lists, per folder, every message of one snapshot by
the SHA-256 of its raw bytes; the messages themselves are blobs in packs (``packs``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

import pyrage

from .crypto import seal, unseal
from .store import Store

FORMAT = "postamt-backup-manifest"
VERSION = 1

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*((?:[^\r\n]|\r?\n[ \t])*)", re.IGNORECASE | re.M)
_FOLDING = re.compile(rb"\r?\n[ \t]")


class ManifestError(Exception):
    """A manifest or blob is not what the format promises."""


def manifest_key(repository: str, seq: int) -> str:
    # Named by number, not time: a rerun of a crashed backup rewrites the same object.
    return f"{repository}/snapshots/{seq:08d}.json.zst.age"


def header_block(raw: bytes) -> bytes:
    """The header of a message: what a FETCH of ``HEADER.FIELDS`` would look at."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[: end + len(separator) // 2]
    return raw


def message_id(header: bytes) -> str:
    """The first Message-ID in a header block, unfolded; empty when there is none.

    Used on the raw message at backup time and on ``HEADER.FIELDS (MESSAGE-ID)`` at restore
    time: the same function on the same header line gives the same answer.
    """
    found = _MESSAGE_ID.search(header)
    if not found:
        return ""
    return _FOLDING.sub(b" ", found.group(1)).strip().decode("utf-8", "replace")[:998]


@dataclass(frozen=True)
class Entry:
    uid: int
    sha256: str
    size: int
    flags: list[str]
    internal_date: datetime
    message_id: str = ""


@dataclass
class Folder:
    name: str
    delimiter: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None
    messages: list[Entry] = field(default_factory=list)
    # None in manifests written before subscriptions were recorded.
    subscribed: bool | None = None


@dataclass
class Manifest:
    repository: str
    mailbox: str
    seq: int
    taken_at: datetime
    folders: list[Folder]

    @property
    def message_count(self) -> int:
        return sum(len(folder.messages) for folder in self.folders)

    @property
    def size_bytes(self) -> int:
        return sum(m.size for folder in self.folders for m in folder.messages)

    def to_json(self) -> bytes:
        # Built by hand: dataclasses.asdict deep-copies and takes longer than the rest of
        # an unchanged mailbox's backup.
        data = {
            "format": FORMAT,
            "version": VERSION,
            "repository": self.repository,
            "mailbox": self.mailbox,
            "seq": self.seq,
            "taken_at": self.taken_at.isoformat(),
            "folders": [
                {
                    "name": f.name,
                    "delimiter": f.delimiter,
                    "uidvalidity": f.uidvalidity,
                    "uidnext": f.uidnext,
                    "highestmodseq": f.highestmodseq,
                    "subscribed": f.subscribed,
                    "messages": [
                        {
                            "uid": m.uid,
                            "sha256": m.sha256,
                            "size": m.size,
                            "flags": m.flags,
                            "internal_date": m.internal_date.isoformat(),
                            "message_id": m.message_id,
                        }
                        for m in f.messages
                    ],
                }
                for f in self.folders
            ],
            "totals": {"messages": self.message_count, "bytes": self.size_bytes},
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ManifestError(f"not a version {VERSION} manifest")
        folders = [
            Folder(
                name=f["name"],
                delimiter=f["delimiter"],
                uidvalidity=f["uidvalidity"],
                uidnext=f["uidnext"],
                highestmodseq=f["highestmodseq"],
                messages=[
                    Entry(
                        uid=m["uid"],
                        sha256=m["sha256"],
                        size=m["size"],
                        flags=m["flags"],
                        internal_date=datetime.fromisoformat(m["internal_date"]),
                        message_id=m["message_id"],
                    )
                    for m in f["messages"]
                ],
                subscribed=f.get("subscribed"),
            )
            for f in data["folders"]
        ]
        return cls(
            repository=data["repository"],
            mailbox=data["mailbox"],
            seq=data["seq"],
            taken_at=datetime.fromisoformat(data["taken_at"]),
            folders=folders,
        )


def write_manifest(store: Store, manifest: Manifest, to: list[pyrage.x25519.Recipient]) -> str:
    key = manifest_key(manifest.repository, manifest.seq)
    store.put(key, seal(manifest.to_json(), to))
    store.flush()
    return key


def read_manifest(store: Store, key: str, keys: list[pyrage.x25519.Identity]) -> Manifest:
    return Manifest.from_json(unseal(store.get(key), keys))
