"""age encryption: workers seal with public keys, only the restore side opens.

Backup workers need only ``BACKUP_PUBLIC_KEY`` (one or more age recipients). The identity
(private key) is read from ``BACKUP_IDENTITY_FILE`` by the separate step that restores and
serves downloads; nothing in the backup path ever loads it.
"""

from __future__ import annotations

import io
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, cast

import pyrage
import zstandard
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# zstd's default level: on mail it compresses better than gzip -1 in a third of the time.
ZSTD_LEVEL = 3
# What repositories written before zstd hold; unseal still opens them.
GZIP_MAGIC = b"\x1f\x8b"
# zstd level 3 writes windows of at most 2 MiB (8 MiB at the highest levels); a frame that
# asks for more is not ours, and would make the decompressor allocate it.
MAX_WINDOW = 8 * 1024 * 1024
OUT_PIECE = 1024 * 1024  # what decompression hands on at a time
# Objects without a recorded size (manifests, tables of contents, display headers) are JSON
# or header lines, which zstd shrinks a few times, never this much.
INDEX_RATIO = 64


class KeyMissing(ImproperlyConfigured):
    """The key this step needs is not configured."""


class DecryptFailed(Exception):
    """Data could not be opened with the configured identity, or is damaged."""


class SealFailed(Exception):
    """Data could not be encrypted (the file it was written to failed)."""


class TooLarge(DecryptFailed):
    """Decompressed data went past the size recorded for it: a forged or damaged object,
    stopped before it could fill memory or disk."""


class Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


def recipients() -> list[pyrage.x25519.Recipient]:
    """The public keys to encrypt to (``BACKUP_PUBLIC_KEY``, comma or space separated)."""
    keys = re.split(r"[\s,]+", settings.BACKUP_PUBLIC_KEY.strip())
    keys = [key for key in keys if key]
    if not keys:
        raise KeyMissing("BACKUP_PUBLIC_KEY is not set: backups cannot be encrypted")
    try:
        return [pyrage.x25519.Recipient.from_str(key) for key in keys]
    except pyrage.RecipientError as exc:
        raise KeyMissing(f"BACKUP_PUBLIC_KEY is not a valid age public key: {exc}") from exc


def identities() -> list[pyrage.x25519.Identity]:
    """The private keys from ``BACKUP_IDENTITY_FILE`` (an age identity file, several allowed
    so that old keys can still open what was written before a key change)."""
    path = settings.BACKUP_IDENTITY_FILE
    if not path:
        raise KeyMissing("BACKUP_IDENTITY_FILE is not set: this process cannot decrypt backups")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise KeyMissing(f"cannot read BACKUP_IDENTITY_FILE: {exc}") from exc
    lines = [line.strip() for line in text.splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    try:
        found = [pyrage.x25519.Identity.from_str(key) for key in keys]
    except pyrage.IdentityError as exc:
        raise KeyMissing(f"BACKUP_IDENTITY_FILE holds an invalid identity: {exc}") from exc
    if not found:
        raise KeyMissing("BACKUP_IDENTITY_FILE holds no identity")
    return found


def seal(data: bytes, to: list[pyrage.x25519.Recipient]) -> bytes:
    """zstd, then age: what every object in the store is (``age -d | zstd -d`` opens it)."""
    return pyrage.encrypt(zstandard.compress(data, ZSTD_LEVEL), to)


def seal_stream(pieces: Iterable[bytes], out: Writer, to: list[pyrage.x25519.Recipient]) -> None:
    """``seal`` of the concatenated ``pieces``, written to ``out`` as it goes: memory holds
    a piece, not the data. pyrage's ``encrypt_io`` pulls from a reader, so the compressed
    pieces are handed to it as one; the result is the same age file ``seal`` makes."""
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()

    def compressed() -> Iterator[bytes]:
        for piece in pieces:
            yield compressor.compress(piece)
        yield compressor.flush()

    reader = _Reader(compressed())
    try:
        pyrage.encrypt_io(reader, out, to)
    except pyrage.EncryptError as exc:
        reader.raise_own()
        raise SealFailed(f"cannot encrypt: {exc}") from exc
    reader.raise_own()


def unseal(data: bytes, keys: list[pyrage.x25519.Identity], limit: int | None = None) -> bytes:
    """What ``seal`` sealed. Never more than ``limit`` bytes come out (``TooLarge``); without
    one, ``INDEX_RATIO`` times the sealed size, for objects whose size nobody recorded."""
    if limit is None:
        limit = max(len(data), 1) * INDEX_RATIO
    try:
        compressed = pyrage.decrypt(data, keys)
    except pyrage.DecryptError as exc:
        raise DecryptFailed(str(exc) or exc.__class__.__name__) from exc
    parts: list[bytes] = []
    decompressor = _Decompressor(parts.append, limit)
    decompressor.write(compressed)
    decompressor.close()
    return b"".join(parts)


def unseal_stream(
    pieces: Iterable[bytes], out: Writer, keys: list[pyrage.x25519.Identity], limit: int
) -> None:
    """``unseal`` of the concatenated sealed ``pieces`` into ``out``, a piece at a time; at
    most ``limit`` bytes are written, then ``TooLarge``."""
    reader = _Reader(pieces)
    decompressor = _Decompressor(out.write, limit)
    try:
        pyrage.decrypt_io(reader, decompressor, keys)
    except pyrage.DecryptError as exc:
        reader.raise_own()
        decompressor.raise_own()
        raise DecryptFailed(str(exc) or exc.__class__.__name__) from exc
    reader.raise_own()
    decompressor.raise_own()
    decompressor.close()


class _Reader(io.RawIOBase):
    """Pieces as a readable file, for pyrage. An exception of the pieces' own (a lost IMAP
    session, a store error) would reach the caller as pyrage's error; it is kept and raised
    as itself instead."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = iter(pieces)
        self._left = memoryview(b"")
        self._error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        try:
            while not self._left:
                piece = next(self._pieces, None)
                if piece is None:
                    return 0
                self._left = memoryview(piece)
        except BaseException as exc:
            self._error = exc
            raise
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._left))
        target[:count] = self._left[:count]
        self._left = self._left[count:]
        return count

    def raise_own(self) -> None:
        if self._error is not None:
            raise self._error


class _Decompressor:
    """A writable file that decompresses zstd (or the gzip of older repositories) into
    ``write`` in pieces of at most ``OUT_PIECE`` bytes, and refuses to produce more than
    ``limit`` bytes: a few kilobytes of forged zstd can expand to terabytes."""

    def __init__(self, write: Callable[[bytes], object], limit: int) -> None:
        self._write = write
        self._limit = limit
        self._written = 0
        self._zstd: zstandard.ZstdDecompressionWriter | None = None
        self._gzip: zlib._Decompress | None = None
        self._start = b""
        self._error: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            self._decompress(bytes(data))
        except BaseException as exc:
            self._error = exc
            raise
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered here."""

    def raise_own(self) -> None:
        if self._error is not None:
            raise self._error

    def _decompress(self, data: bytes) -> None:
        if self._zstd is None and self._gzip is None:
            self._start += data
            if len(self._start) < len(GZIP_MAGIC):
                return
            data, self._start = self._start, b""
            if data.startswith(GZIP_MAGIC):
                self._gzip = zlib.decompressobj(wbits=31)
            else:
                self._zstd = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).stream_writer(
                    cast(IO[bytes], _Sink(self._emit)), write_size=OUT_PIECE, write_return_read=True
                )
        try:
            if self._zstd is not None:
                self._zstd.write(data)
            elif self._gzip is not None:
                while data:
                    self._emit(self._gzip.decompress(data, OUT_PIECE))
                    data = self._gzip.unconsumed_tail
        except (zstandard.ZstdError, zlib.error) as exc:
            raise DecryptFailed(f"cannot decompress: {exc}") from exc

    def _emit(self, data: bytes) -> None:
        self._written += len(data)
        if self._written > self._limit:
            raise TooLarge(
                f"decompresses to more than the {self._limit} bytes recorded for it: "
                "damaged or forged"
            )
        if data:
            self._write(data)

    def close(self) -> None:
        """Raise if what was written was not one whole compressed object."""
        if self._start:
            raise DecryptFailed("cannot decompress: too short")
        if self._gzip is not None and not self._gzip.eof:
            raise DecryptFailed("cannot decompress: the gzip stream is cut short")
        if self._zstd is not None:
            self._zstd.flush()


class _Sink:
    """What zstandard's stream writer writes into."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write

    def write(self, data: bytes) -> int:
        self._write(bytes(data))
        return len(data)


def write_identity_file(path: Path, *, overwrite: bool = False) -> str:
    """Create a new identity in ``path`` (mode 0600, as ``age-keygen`` writes it) and
    return its public key."""
    identity = pyrage.x25519.Identity.generate()
    public = str(identity.to_public())
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    text = f"# created: {created}\n# public key: {public}\n{identity}\n"
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o600)  # an existing file keeps its mode on O_TRUNC
    return public
