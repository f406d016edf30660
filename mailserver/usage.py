"""What a mail server reports about a mailbox's storage, whichever way it was asked."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Folder:
    name: str
    message_count: int
    size_bytes: int


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    message_count: int | None
    limit_bytes: int | None
    folders: tuple[Folder, ...] = ()
