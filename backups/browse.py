"""What a snapshot's messages are, for choosing some to restore: date, sender and subject.

The database knows each message's folder, date, size and flags; sender and subject are
encrypted, in the few header lines a backup seals next to each message (``Blob.headers``), so
they are read where the identity is installed (as for downloads), one page at a time, without
decrypting the messages themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import overload

import pyrage
from django.conf import settings
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from .crypto import DecryptFailed, unseal
from .manifest import header_block
from .models import Blob, Repository, StoredMessage
from .packs import Location, locate, read_blob, unpack_blob
from .store import Store, StoreError, get_store

_HEADERS = BytesHeaderParser(policy=default_policy)
# A header shown on the page is cut here: a subject of a megabyte says nothing more.
SHOWN_CHARS = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def unreadable() -> str:
    """What the page shows for a header that could not be parsed."""
    return _("(unreadable)")


def _shown(value: object) -> str:
    """A header as text fit for a page: lone surrogates (undecodable bytes) replaced,
    control characters and folding whitespace made spaces, cut at ``SHOWN_CHARS``."""
    text = str(value or "").encode("utf-8", "replace").decode("utf-8")
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text[:SHOWN_CHARS] + ("…" if len(text) > SHOWN_CHARS else "")


DISPLAY_FIELDS = (b"from", b"subject", b"date")
# A field kept for display is cut here (folded lines and all); the page shows less anyway.
DISPLAY_FIELD_BYTES = 2000
_LINES = re.compile(rb"\r?\n")


def display_block(raw: bytes) -> bytes:
    """The header lines the browse page shows (From, Subject, Date, with their folded
    continuations, byte for byte), from a whole message: what a backup keeps sealed next to
    the message, so that browsing never decrypts messages. ``display_headers`` of it gives
    what it gives of the whole message."""
    kept: list[bytes] = []
    keeping = False
    for line in _LINES.split(header_block(raw)):
        if line[:1] in (b" ", b"\t"):
            if keeping:
                kept[-1] += b"\r\n" + line
            continue
        name, colon, _value = line.partition(b":")
        keeping = bool(colon) and name.strip().lower() in DISPLAY_FIELDS
        if keeping:
            kept.append(line)
    return b"".join(field[:DISPLAY_FIELD_BYTES] + b"\r\n" for field in kept) + b"\r\n"


def display_headers(raw: bytes) -> tuple[str, str]:
    """Sender and subject of a message, for the browse page. Total: whatever the bytes,
    each header that cannot be parsed is ``unreadable()`` and nothing is raised.

    The standard library's header parser has a long tail of crashes on hostile input
    (``From: .:`` raises AttributeError deep inside it), so every exception counts as
    "unreadable" here rather than a list that is never complete."""
    try:
        headers = _HEADERS.parsebytes(header_block(raw))
    except Exception:  # noqa: BLE001 - see above: any crash of the parser is "unreadable"
        return unreadable(), unreadable()
    shown = []
    for name in ("from", "subject"):
        try:
            shown.append(_shown(headers[name]))
        except Exception:  # noqa: BLE001 - see above
            shown.append(unreadable())
    return shown[0], shown[1]


@dataclass(frozen=True)
class MessageSummary:
    uidvalidity: int
    uid: int
    size: int
    flags: list[str]
    internal_date: datetime
    sender: str  # empty when the headers were not or could not be read
    subject: str
    readable: bool | None  # None: not tried, this process has no identity

    @property
    def key(self) -> str:
        """How a form names this message within its folder."""
        return f"{self.uidvalidity}:{self.uid}"

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags


def _sealed_headers(repository: Repository, rows: Sequence[StoredMessage]) -> dict[str, bytes]:
    """The sealed display headers of the rows' blobs, where the backup kept them."""
    found = Blob.objects.filter(
        repository=repository, sha256__in={row.sha256 for row in rows}, headers__isnull=False
    ).values_list("sha256", "headers")
    return {sha256: bytes(headers) for sha256, headers in found if headers is not None}


def summaries(
    repository: Repository,
    rows: Sequence[StoredMessage],
    keys: list[pyrage.x25519.Identity] | None,
) -> list[MessageSummary]:
    """One summary per row; without ``keys`` (no identity here) sender and subject stay
    empty. They come from the display headers the backup sealed next to each message
    (``Blob.headers``); only a message stored before those were kept is read whole. A blob
    that cannot be read marks its message unreadable, a header that cannot be parsed shows
    as "(unreadable)": neither fails the page."""
    sealed = _sealed_headers(repository, rows) if keys else {}
    unsealed = [row.sha256 for row in rows if row.sha256 not in sealed]
    locations = locate(repository.pk, unsealed) if keys and unsealed else {}
    store = get_store()
    result = []
    for row in rows:
        sender = subject = ""
        readable = None if keys is None else True
        if keys is not None:
            try:
                if row.sha256 in sealed:
                    block = unseal(sealed[row.sha256], keys)
                elif row.size > settings.BACKUP_STREAM_THRESHOLD:
                    block = _beginning(store, str(repository.key), row.sha256, locations, keys)
                else:
                    block = read_blob(store, str(repository.key), row.sha256, locations, keys)
            except (DecryptFailed, StoreError, ValueError, LookupError):
                readable = False
            else:
                sender, subject = display_headers(block)
        result.append(
            MessageSummary(
                uidvalidity=row.uidvalidity,
                uid=row.uid,
                size=row.size,
                flags=row.flags,
                internal_date=row.internal_date,
                sender=sender,
                subject=subject,
                readable=readable,
            )
        )
    return result


HEAD_BYTES = 1024 * 1024  # where the headers of a large message are looked for


class _Enough(Exception):
    """The beginning of a message has been read: decryption stops there."""


class _Beginning:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        if len(self.data) >= HEAD_BYTES:
            raise _Enough
        return len(data)


def _beginning(
    store: Store,
    repository: str,
    sha256: str,
    locations: dict[str, Location],
    keys: list[pyrage.x25519.Identity],
) -> bytes:
    """The first ``HEAD_BYTES`` of a large message stored before display headers were kept,
    without decrypting the rest (nor checking its hash, which needs all of it)."""
    beginning = _Beginning()
    try:
        unpack_blob(store, repository, sha256, locations, keys, beginning)
    except _Enough:
        pass
    return beginning.data


class Summaries:
    """A folder's rows as their summaries, for ``Paginator``: the rows are counted in the
    database and only the slice of the page shown is summarised (its blobs read)."""

    def __init__(
        self,
        repository: Repository,
        rows: QuerySet[StoredMessage],
        keys: list[pyrage.x25519.Identity] | None,
    ) -> None:
        self.repository = repository
        self.rows = rows
        self.keys = keys

    def __len__(self) -> int:
        return self.rows.count()

    def __iter__(self) -> Iterator[MessageSummary]:
        return iter(self[:])

    @overload
    def __getitem__(self, index: int) -> MessageSummary: ...

    @overload
    def __getitem__(self, index: slice) -> list[MessageSummary]: ...

    def __getitem__(self, index: int | slice) -> MessageSummary | list[MessageSummary]:
        if isinstance(index, slice):
            return summaries(self.repository, list(self.rows[index]), self.keys)
        return summaries(self.repository, [self.rows[index]], self.keys)[0]
