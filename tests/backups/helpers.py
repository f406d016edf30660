"""Backup test fixtures and helpers, shared by the unit and the integration tests."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pyrage
import pytest
from imapclient import IMAPClient

from tests.backups.moto import start_moto
from tests.factories import PASSWORD, make_customer, make_domain, make_mailbox
from tests.mailclients import imaps
from tests.workers import worker_env


@dataclass(frozen=True)
class Keys:
    identity: pyrage.x25519.Identity
    public: str
    identity_file: Path


@pytest.fixture
def backup_keys(tmp_path: Path) -> Keys:
    identity = pyrage.x25519.Identity.generate()
    path = tmp_path / "backup-identity.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{identity}\n")
    return Keys(identity, str(identity.to_public()), path)


@pytest.fixture
def backup_settings(settings, tmp_path: Path, backup_keys: Keys):  # type: ignore[no-untyped-def]
    """As a backup worker is configured: a store and the public key, no identity."""
    settings.BACKUP_ROOT = tmp_path / "store"
    settings.BACKUP_PUBLIC_KEY = backup_keys.public
    settings.BACKUP_IDENTITY_FILE = ""
    return settings


@dataclass(frozen=True)
class S3Server:
    """A real S3 endpoint on 127.0.0.1: moto's server, in a process of its own."""

    endpoint_url: str
    region: str = "us-east-1"
    access_key_id: str = "test-access-key"
    secret_access_key: str = "test-secret-key-never-shown"

    def client(self):  # type: ignore[no-untyped-def]
        from backups.s3store import s3_client

        return s3_client(
            endpoint_url=self.endpoint_url,
            region=self.region,
            addressing_style="path",
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        )

    def new_bucket(self) -> str:
        name = f"postamt-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    process, endpoint_url = start_moto()
    yield S3Server(endpoint_url)
    process.terminate()
    process.wait(10)


@pytest.fixture
def s3_settings(backup_settings, s3_server: S3Server):  # type: ignore[no-untyped-def]
    """``backup_settings`` with the store in a fresh bucket of the test's S3 server."""
    backup_settings.BACKUP_STORE_URL = f"s3://{s3_server.new_bucket()}/backups"
    backup_settings.BACKUP_S3_ENDPOINT_URL = s3_server.endpoint_url
    backup_settings.BACKUP_S3_REGION = s3_server.region
    backup_settings.BACKUP_S3_ADDRESSING_STYLE = "path"
    backup_settings.BACKUP_S3_ACCESS_KEY_ID = s3_server.access_key_id
    backup_settings.BACKUP_S3_SECRET_ACCESS_KEY = s3_server.secret_access_key
    return backup_settings


@pytest.fixture
def restore_side(backup_settings, backup_keys: Keys):  # type: ignore[no-untyped-def]
    """The restore and download side: it also holds the identity."""
    backup_settings.BACKUP_IDENTITY_FILE = str(backup_keys.identity_file)
    return backup_settings


def message(
    subject: str,
    body: str = "Hello",
    *,
    message_id: str | None = "auto",
    size: int = 0,
    charset_8bit: bool = False,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@example.org"
    msg["To"] = "someone@example.org"
    msg["Subject"] = subject
    if message_id == "auto":
        msg["Message-ID"] = f"<{hashlib.sha1(subject.encode()).hexdigest()}@example.org>"
    elif message_id:
        msg["Message-ID"] = message_id
    msg["Date"] = "Mon, 03 Mar 2025 10:00:00 +0100"
    text = body + ("\n" + "x" * 70) * (size // 71)
    if charset_8bit:
        msg.set_content(text, charset="utf-8", cte="8bit")
    else:
        msg.set_content(text)
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@contextmanager
def imap(dovecot, address: str) -> Iterator[IMAPClient]:  # type: ignore[no-untyped-def]
    """The mailbox as its owner sees it."""
    client = imaps(dovecot)
    client.normalise_times = False
    client.login(address, PASSWORD)
    try:
        yield client
    finally:
        client.logout()


def append(
    client: IMAPClient,
    folder: str,
    raw: bytes,
    flags: tuple[bytes, ...] = (),
    date: datetime | None = None,
) -> None:
    client.append(folder, raw, flags=flags, msg_time=date)


Snapshot = dict[str, list[tuple[str, tuple[str, ...], datetime]]]


def mailbox_contents(dovecot, address: str) -> Snapshot:  # type: ignore[no-untyped-def]
    """Every selectable folder with its messages as (sha256, flags, internal date), sorted."""
    result: Snapshot = {}
    with imap(dovecot, address) as client:
        for flags, _delimiter, name in client.list_folders():
            if b"\\Noselect" in flags or b"\\NonExistent" in flags:
                continue
            client.select_folder(name, readonly=True)
            uids = client.search()
            items = client.fetch(uids, [b"BODY.PEEK[]", b"FLAGS", b"INTERNALDATE"]) if uids else {}
            result[name] = sorted(
                (
                    hashlib.sha256(item[b"BODY[]"]).hexdigest(),
                    tuple(sorted(f.decode() for f in item[b"FLAGS"] if f != b"\\Recent")),
                    item[b"INTERNALDATE"],
                )
                for item in items.values()
            )
    return result


DATE = datetime(2024, 5, 17, 8, 30, 0, tzinfo=UTC)


def make_snapshot(  # type: ignore[no-untyped-def]
    mailbox, folders: dict[str, list[tuple[bytes, list[str]]]], *, taken_at: datetime | None = None
):
    """A snapshot written as a backup run would, without a mail server: for unit tests.

    Each call is one more snapshot; the messages of the previous one leave the "server"."""
    from django.utils import timezone

    from backups import crypto, services
    from backups.browse import display_block
    from backups.manifest import Entry, Folder, Manifest, message_id, write_manifest
    from backups.models import Blob, Pack, Repository, Snapshot, StoredMessage
    from backups.packs import build_pack, pack_key
    from backups.store import get_store

    repository = services.repository_for(mailbox)
    seq = repository.seq + 1
    taken_at = taken_at or timezone.now()
    store = get_store()
    to = crypto.recipients()
    StoredMessage.objects.filter(repository=repository, last_seq__isnull=True).update(
        last_seq=seq - 1
    )
    known = set(Blob.objects.filter(repository=repository).values_list("sha256", flat=True))
    new: dict[str, bytes] = {}
    manifest_folders = []
    for name, messages in folders.items():
        entries = []
        for uid, (raw, flags) in enumerate(messages, start=1):
            sha256 = hashlib.sha256(raw).hexdigest()
            if sha256 not in known:
                new[sha256] = raw
            entry = Entry(uid, sha256, len(raw), flags, DATE, message_id(raw))
            entries.append(entry)
            StoredMessage.objects.create(
                repository=repository,
                folder=name,
                uidvalidity=seq,
                uid=uid,
                sha256=sha256,
                size=len(raw),
                flags=flags,
                internal_date=DATE,
                message_id=entry.message_id,
                first_seq=seq,
            )
        manifest_folders.append(Folder(name, "/", seq, len(messages) + 1, None, entries))
    if new:
        pack, data = build_pack(
            [(sha, len(raw), crypto.seal(raw, to)) for sha, raw in new.items()], to
        )
        store.put(pack_key(str(repository.key), pack.name), data)
        store.flush()
        row = Pack.objects.create(repository=repository, name=pack.name, size=pack.size)
        Blob.objects.bulk_create(
            Blob(
                repository=repository,
                sha256=b.sha256,
                pack=row,
                offset=b.offset,
                length=b.length,
                size=b.size,
                headers=crypto.seal(display_block(new[b.sha256]), to),
            )
            for b in pack.blobs
        )
    manifest = Manifest(str(repository.key), mailbox.address, seq, taken_at, manifest_folders)
    key = write_manifest(store, manifest, to)
    snapshot = Snapshot.objects.create(
        repository=repository,
        seq=seq,
        taken_at=taken_at,
        manifest_key=key,
        folders=len(folders),
        messages=manifest.message_count,
        size_bytes=manifest.size_bytes,
    )
    Repository.objects.filter(pk=repository.pk).update(seq=seq, last_backup_at=taken_at)
    return snapshot


def backup_worker_env(backup_keys: Keys, **variables: str) -> dict[str, str]:
    """A worker process's environment for backing up into this test's store with its key."""
    from django.conf import settings

    return worker_env(
        BACKUP_ROOT=str(settings.BACKUP_ROOT), BACKUP_PUBLIC_KEY=backup_keys.public, **variables
    )


@pytest.fixture
def mailbox():  # type: ignore[no-untyped-def]
    """A mailbox of a customer whose name is not ASCII, as it shows on backup pages and in
    downloads' file names."""
    return make_mailbox("anna", domain=make_domain(make_customer("Bäckerei Müller")))
