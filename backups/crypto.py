"""age encryption: workers seal with public keys, only the restore side opens.

Backup workers need only ``BACKUP_PUBLIC_KEY`` (one or more age recipients). The identity
(private key) is read from ``BACKUP_IDENTITY_FILE`` by the separate step that restores and
serves downloads; nothing in the backup path ever loads it.
"""

from __future__ import annotations

import gzip
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pyrage
import zstandard
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# zstd's default level: on mail it compresses better than gzip -1 in a third of the time.
ZSTD_LEVEL = 3
# What repositories written before zstd hold; unseal still opens them.
GZIP_MAGIC = b"\x1f\x8b"


class KeyMissing(ImproperlyConfigured):
    """The key this step needs is not configured."""


class DecryptFailed(Exception):
    """Data could not be opened with the configured identity, or is damaged."""


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


def unseal(data: bytes, keys: list[pyrage.x25519.Identity]) -> bytes:
    try:
        compressed = pyrage.decrypt(data, keys)
        if compressed.startswith(GZIP_MAGIC):
            return gzip.decompress(compressed)
        return zstandard.decompress(compressed)
    except (pyrage.DecryptError, zstandard.ZstdError, OSError, EOFError) as exc:
        raise DecryptFailed(str(exc) or exc.__class__.__name__) from exc


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
