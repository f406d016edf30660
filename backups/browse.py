"""What a snapshot's messages are, for choosing some to restore: date, sender and subject.

The database knows each message's folder, date, size and flags; sender and subject are only
in the encrypted blobs, so they are read where the identity is installed (as for downloads),
one page at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import overload

import pyrage
from django.db.models import QuerySet

from .crypto import DecryptFailed
from .manifest import header_block
from .models import Repository, StoredMessage
from .packs import locate, read_blob
from .store import StoreError, get_store

_HEADERS = BytesHeaderParser(policy=default_policy)


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
    empty. A blob that cannot be read, or a header that cannot be parsed, marks its message
    unreadable instead of failing the page."""
    locations = locate(repository.pk, (row.sha256 for row in rows)) if keys else {}
    store = get_store()
    result = []
    for row in rows:
        sender = subject = ""
        readable = None if keys is None else True
        if keys is not None:
            try:
                raw = read_blob(store, str(repository.key), row.sha256, locations, keys)
                headers = _HEADERS.parsebytes(header_block(raw))
                sender, subject = str(headers["from"] or ""), str(headers["subject"] or "")
            except (DecryptFailed, StoreError, ValueError, LookupError):
                readable = False
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
