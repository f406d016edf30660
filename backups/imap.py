"""IMAP details that backup and restore share, on top of ``mailboxes.mailserver``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from imapclient import IMAPClient

T = TypeVar("T")

# UIDs per FETCH command: imapclient sends them one by one (it cannot send ranges), and
# Dovecot refuses command lines over 64 KiB.
METADATA_CHUNK = 4000
MIB = 1024 * 1024


def tune(client: IMAPClient) -> None:
    """Timestamps with their zone and HIGHESTMODSEQ in SELECT answers. (master_imap already
    turns off imaplib's costly debug formatting and Nagle's delay.)"""
    client.normalise_times = False
    if client.has_capability("CONDSTORE"):
        client.enable("CONDSTORE")


def batches(
    items: Iterable[T], size: Callable[[T], int], *, count: int, max_bytes: int
) -> Iterator[list[T]]:
    """Consecutive batches of at most ``count`` items and ``max_bytes`` (a bigger item
    travels alone), so memory stays bounded whatever the messages weigh."""
    batch: list[T] = []
    total = 0
    for item in items:
        if batch and (len(batch) >= count or total + size(item) > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += size(item)
    if batch:
        yield batch
