"""Where backup objects live, behind a small interface: a local directory now, object storage
later. Keys are ``/``-separated paths; objects are written whole and never modified.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from django.conf import settings

TEMP_MARK = ".tmp-"


class StoreError(Exception):
    """An object could not be written or read back intact."""


class Store(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store one object, whole or not at all; safe to call from several threads."""

    def flush(self) -> None:
        """Make every ``put`` so far durable: a crash after this loses none of them."""

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys of the complete objects under ``prefix``."""

    def discard_incomplete(self, prefix: str) -> int:
        """Remove what interrupted writes left under ``prefix``; only while no one writes."""

    def delete_prefix(self, prefix: str) -> None: ...


class LocalStore:
    """A directory. A write goes to a temporary file that is fsynced, read back, compared
    and renamed into place, so a key either holds its whole object or does not exist;
    ``flush`` fsyncs the directories so that the renames survive a crash too.

    Writers should call ``put`` from several threads: parallel fsyncs share the file
    system's journal commits (2,000 small files take a quarter of the time they take one
    after the other)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._unsynced: set[Path] = set()
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(part in ("", ".", "..") or TEMP_MARK in part for part in parts):
            raise StoreError(f"invalid key {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes) -> None:
        try:
            changed = self._write(self._path(key), data)
        except OSError as exc:
            raise StoreError(f"cannot write {key}: {exc}") from exc
        with self._lock:
            self._unsynced.update(changed)

    def flush(self) -> None:
        with self._lock:
            directories, self._unsynced = self._unsynced, set()
        try:
            for directory in sorted(directories, key=lambda d: len(d.parts), reverse=True):
                _fsync_directory(directory)
        except OSError as exc:
            raise StoreError(f"cannot sync the backup store: {exc}") from exc

    @staticmethod
    def _write(path: Path, data: bytes) -> list[Path]:
        """Write one object; returns the directories whose entries changed."""
        changed = [path.parent]
        missing = path.parent
        while not missing.is_dir():  # new directories are entries of their parents
            changed.append(missing.parent)
            missing = missing.parent
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = path.with_name(f"{path.name}{TEMP_MARK}{secrets.token_hex(6)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if hashlib.sha256(temp.read_bytes()).digest() != hashlib.sha256(data).digest():
            temp.unlink(missing_ok=True)
            raise StoreError(f"{path}: what was written does not read back the same")
        os.replace(temp, path)
        return changed

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"{key} is missing from the backup store") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

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


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def get_store() -> Store:
    """The configured store (``BACKUP_ROOT``)."""
    return LocalStore(Path(settings.BACKUP_ROOT))
