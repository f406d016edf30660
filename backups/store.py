"""Where backup objects live, behind a small interface: a local directory now, object storage
later. Keys are ``/``-separated paths; objects are written whole and never modified.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from django.conf import settings

TEMP_MARK = ".tmp-"
FSYNC_EACH_UP_TO = 8
_syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)


class StoreError(Exception):
    """An object could not be written or read back intact."""


class Store(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store one object, whole or not at all; safe to call from several threads. It may
        become visible only with the next ``flush``."""

    def flush(self) -> None:
        """Make every ``put`` so far visible and durable: a crash after this loses none."""

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, offset: int, length: int) -> bytes: ...

    def size(self, key: str) -> int | None:
        """The size of a complete object, or None when there is none under ``key``."""

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys of the complete objects under ``prefix``."""

    def discard_incomplete(self, prefix: str) -> int:
        """Remove what interrupted writes left under ``prefix``; only while no one writes."""

    def delete_prefix(self, prefix: str) -> None: ...


class LocalStore:
    """A directory. ``put`` writes a temporary file; ``flush`` makes every file written so
    far durable with one ``syncfs`` (one journal commit instead of one per file), renames
    them into place and fsyncs their directories. A key therefore holds its whole object or
    does not exist, even after a crash, and nothing is visible before it is durable."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._staged: list[tuple[Path, Path]] = []  # (temporary file, final path)
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") or TEMP_MARK in part for part in parts):
            raise StoreError(f"invalid key {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        temp = path.with_name(f"{path.name}{TEMP_MARK}{secrets.token_hex(6)}")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot write {key}: {exc}") from exc
        with self._lock:  # only complete files are staged
            self._staged.append((temp, path))

    def flush(self) -> None:
        with self._lock:
            staged, self._staged = self._staged, []
        if not staged:
            return
        try:
            _sync_files(self.root, [temp for temp, _path in staged])
            directories = set()
            for temp, path in staged:
                os.replace(temp, path)
                directories.add(path.parent)
                # New directories are entries of their parents, up to the root.
                directories.update(
                    p for p in path.parent.parents if p == self.root or self.root in p.parents
                )
            for directory in directories:
                _fsync_directory(directory)
        except OSError as exc:
            raise StoreError(f"cannot sync the backup store: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"{key} is missing from the backup store") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            with self._path(key).open("rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except FileNotFoundError as exc:
            raise StoreError(f"{key} is missing from the backup store") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc
        if len(data) != length:
            raise StoreError(f"{key} is shorter than the index says")
        return data

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        for directory, _dirs, files in os.walk(base):
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                if TEMP_MARK not in name:
                    yield f"{relative}/{name}"

    def discard_incomplete(self, prefix: str) -> int:
        removed = 0
        for directory, _dirs, files in os.walk(self._path(prefix)):
            for name in files:
                if TEMP_MARK in name:
                    Path(directory, name).unlink(missing_ok=True)
                    removed += 1
        return removed

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)


def _sync_files(root: Path, files: list[Path]) -> None:
    """Make the files' data durable: one ``syncfs(2)`` for the file system they are on
    (Linux) when there are many, else (or where that call does not exist) an fsync each,
    which does not wait for what other programs have written."""
    if _syncfs is None or len(files) <= FSYNC_EACH_UP_TO:
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def get_store() -> Store:
    """The configured store (``BACKUP_ROOT``)."""
    return LocalStore(Path(settings.BACKUP_ROOT))
