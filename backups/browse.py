"""What a snapshot's messages are, for choosing some to restore: date, sender and subject.

The database knows each message's folder, date, size and flags; sender and subject are only
in the encrypted blobs, so they are read where the identity is installed (as for downloads),
one page at a time.
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
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from .crypto import DecryptFailed
from .manifest import header_block
from .models import Repository, StoredMessage
from .packs import locate, read_blob
from .store import StoreError, get_store

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


def summaries(
    repository: Repository,
    rows: Sequence[StoredMessage],
    keys: list[pyrage.x25519.Identity] | None,
) -> list[MessageSummary]:
    """One summary per row; without ``keys`` (no identity here) sender and subject stay
    empty. A blob that cannot be read marks its message unreadable, a header that cannot be
    parsed shows as "(unreadable)": neither fails the page."""
    locations = locate(repository.pk, (row.sha256 for row in rows)) if keys else {}
    store = get_store()
    result = []
    for row in rows:
        sender = subject = ""
        readable = None if keys is None else True
        if keys is not None:
            try:
                raw = read_blob(store, str(repository.key), row.sha256, locations, keys)
            except (DecryptFailed, StoreError, ValueError, LookupError):
                readable = False
            else:
                sender, subject = display_headers(raw)
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
