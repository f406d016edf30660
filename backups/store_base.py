"""What every backup store shares (``store.py``, ``s3store.py``): the error they raise, the
rule for keys, the size of the pieces they read in."""

from __future__ import annotations

TEMP_MARK = ".tmp-"
CHUNK_SIZE = 1 << 20


class StoreError(Exception):
    """An object could not be written or read back intact."""


def check_key(key: str) -> None:
    """Keys are relative paths without empty, ``.`` or ``..`` parts (so that none escapes a
    directory) and never look like an unfinished write; the same rule in every store."""
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") or TEMP_MARK in part for part in parts):
        raise StoreError(f"invalid key {key!r}")
