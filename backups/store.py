"""Where backup objects live, behind a small interface: a local directory, or S3-compatible
object storage (``s3store.py``), chosen by ``BACKUP_STORE_URL``. Keys are ``/``-separated
paths; objects are written whole and never modified.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from django.conf import settings

from .store_base import CHUNK_SIZE, TEMP_MARK, StoreError, check_key

FSYNC_EACH_UP_TO = 8
_syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)


class Store(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store one object, whole or not at all; safe to call from several threads. It may
        become visible only with the next ``flush``."""

    def put_file(self, key: str, source: Path) -> None:
        """``put`` the contents of a file without holding them in memory (large messages).
        The file is only read: the caller may remove it once this returns."""

    def flush(self) -> None:
        """Make every ``put`` so far visible and durable: a crash after this loses none."""

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, offset: int, length: int) -> bytes: ...

    def iter_range(
        self, key: str, offset: int, length: int, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        """``get_range`` in pieces of at most ``chunk_size`` bytes, so that a large object is
        never held whole; raises StoreError if the object ends before ``length`` bytes."""

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
        check_key(key)
        return self.root.joinpath(*key.split("/"))

    def put(self, key: str, data: bytes) -> None:
        self._stage(key, lambda out: out.write(data))

    def put_file(self, key: str, source: Path) -> None:
        def copy(out: BinaryIO) -> None:
            with source.open("rb") as handle:
                shutil.copyfileobj(handle, out, CHUNK_SIZE)

        self._stage(key, copy)

    def _stage(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        """Write a private temporary file next to ``key``; stage it for the next ``flush``."""
        path = self._path(key)
        temp = path.with_name(f"{path.name}{TEMP_MARK}{secrets.token_hex(6)}")
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(temp, "xb", opener=lambda name, flags: os.open(name, flags, 0o600)) as out:
                write(out)
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
        return b"".join(self.iter_range(key, offset, length, chunk_size=max(length, 1)))

    def iter_range(
        self, key: str, offset: int, length: int, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        try:
            with self._path(key).open("rb") as handle:
                handle.seek(offset)
                left = length
                while left:
                    data = handle.read(min(left, chunk_size))
                    if not data:
                        raise StoreError(f"{key} is shorter than the index says")
                    left -= len(data)
                    yield data
        except FileNotFoundError as exc:
            raise StoreError(f"{key} is missing from the backup store") from exc
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc

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


@contextmanager
def temporary_file() -> Iterator[tuple[BinaryIO, Path]]:
    """A file without a name (Linux: ``O_TMPFILE`` in ``TMPDIR``) and a path that opens it
    (``/proc/self/fd/N``) for ``put_file``: a worker killed while writing it leaves nothing
    behind, as the kernel frees a file no one has open."""
    with tempfile.TemporaryFile() as handle:
        yield handle, Path(f"/proc/self/fd/{handle.fileno()}")


def get_store() -> Store:
    """The configured store: S3 when ``BACKUP_STORE_URL`` names a bucket, else the directory
    ``BACKUP_ROOT``. Everything in ``backups`` reaches storage through here."""
    if not settings.BACKUP_STORE_URL:
        return LocalStore(Path(settings.BACKUP_ROOT))
    # Imported here: boto3 takes a third of a second to load, which only S3 users should pay.
    from .s3store import S3Store, s3_client

    bucket, _slash, prefix = settings.BACKUP_STORE_URL.removeprefix("s3://").partition("/")
    client = s3_client(
        endpoint_url=settings.BACKUP_S3_ENDPOINT_URL,
        region=settings.BACKUP_S3_REGION,
        addressing_style=settings.BACKUP_S3_ADDRESSING_STYLE,
        access_key_id=settings.BACKUP_S3_ACCESS_KEY_ID,
        secret_access_key=settings.BACKUP_S3_SECRET_ACCESS_KEY,
    )
    return S3Store(client, bucket, prefix)
