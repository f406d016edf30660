"""Downloads: built by a worker, served by the web without the backup identity.

A worker that holds the identity writes the snapshot's zip (``archive``) sealed to a fresh
age key of this download alone into a short-lived object of the store (so it works the same
when the store is S3 and web and workers are different machines); the key stays in the job's
row. The web checks a signed, expiring link, reads the object back in pieces and opens it
with that key: it never holds the backup identity, never decrypts a snapshot, and never holds
the download whole. Expired downloads are deleted by ``expire``.
"""

from __future__ import annotations

import hashlib
import queue
import secrets
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pyrage
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from . import jobs
from .archive import archive_name, snapshot_archive
from .crypto import DecryptFailed, KeyMissing, identities
from .manifest import ManifestError
from .models import ACTIVE, DownloadJob, JobStatus
from .store import StoreError, get_store

PREFIX = "downloads"
TOKEN_SALT = "backups.download"
# Decrypted bytes handed to the response at a time, and how many such pieces may wait.
PIECE = 256 * 1024
PIECES_WAITING = 4
PROGRESS_STEPS = 100


class DownloadFailed(Exception):
    """The download could not be built, or its object could not be read back."""


class LinkInvalid(Exception):
    """The link's signature does not match: tampered with, or not for this download."""


class LinkExpired(Exception):
    """The link, or the download it leads to, has expired (or was never ready)."""


# --- Worker side --------------------------------------------------------------------------


def run_download(job_id: int) -> DownloadJob | None:
    """Build (or build again, after a dead run) one download (see ``jobs.run``)."""
    return jobs.run(
        DownloadJob,
        job_id,
        _build,
        expected=(DownloadFailed, StoreError, KeyMissing, DecryptFailed, ManifestError),
        timed_out=gettext_noop("time limit reached; please ask for the download again"),
        lease=False,  # it only reads: a backup of the same mailbox may run meanwhile
    )


def _build(job: DownloadJob, token: str) -> None:
    snapshot = job.snapshot
    if snapshot is None:
        raise DownloadFailed(gettext_noop("the snapshot was deleted by retention"))
    identities()  # fail before anything is written when this worker cannot open backups
    key = f"{PREFIX}/{secrets.token_hex(16)}.zip.age"
    with transaction.atomic():  # named before it is written: ``expire`` spares it
        jobs.heartbeat(
            job, token, object_key=key, messages_total=snapshot.messages, messages_done=0
        )
    done = 0
    step = max(1, snapshot.messages // PROGRESS_STEPS)

    def one_more() -> None:
        nonlocal done
        done += 1
        if done % step == 0:
            jobs.heartbeat(job, token, messages_done=done)

    personal = pyrage.x25519.Identity.generate()
    zipped = _Reader(snapshot_archive(snapshot, one_more))
    store = get_store()
    with tempfile.TemporaryDirectory(prefix="postamt-download-") as directory:
        sealed = Path(directory) / "download.zip.age"
        with sealed.open("wb") as out:  # only sealed bytes ever touch the disk
            pyrage.encrypt_io(zipped, out, [personal.to_public()])
        store.put_file(key, sealed)
        store.flush()
    jobs.finish(
        job,
        token,
        JobStatus.DONE,
        secret=str(personal),
        size_bytes=zipped.size,
        messages_done=done,
        expires_at=timezone.now() + timedelta(hours=settings.BACKUP_DOWNLOAD_HOURS),
    )


class _Reader:
    """A readable file over an iterator of byte strings, for ``pyrage.encrypt_io``/``decrypt_io``
    (which read 8 KiB at a time: a large piece is sliced, never copied whole again)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self.pieces = pieces
        self.current = memoryview(b"")
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        parts = []
        wanted = n if n >= 0 else None
        while wanted is None or wanted > 0:
            if not self.current:
                piece = next(self.pieces, None)
                if piece is None:
                    break
                self.current = memoryview(piece)
                continue
            part = self.current[:wanted] if wanted is not None else self.current
            self.current = self.current[len(part) :]
            parts.append(part)
            if wanted is not None:
                wanted -= len(part)
        data = b"".join(parts)
        self.size += len(data)
        return data


# --- Web side -----------------------------------------------------------------------------


def link_token(job: DownloadJob) -> str:
    """The signed part of a download's link: names the job, valid until it expires."""
    return signing.dumps({"job": job.pk, "of": _object_mark(job)}, salt=TOKEN_SALT)


def _object_mark(job: DownloadJob) -> str:
    """Ties a link to this build of the download, without showing where it is stored."""
    return hashlib.sha256(job.object_key.encode()).hexdigest()[:16]


def check_link(job: DownloadJob, token: str) -> None:
    """Raise ``LinkInvalid`` unless ``token`` was made for this download, ``LinkExpired``
    once it (or the download) expired."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=settings.BACKUP_DOWNLOAD_HOURS * 3600)
    except signing.SignatureExpired:
        raise LinkExpired from None
    except signing.BadSignature:
        raise LinkInvalid from None
    if not isinstance(data, dict) or data.get("job") != job.pk:
        raise LinkInvalid
    if not job.is_ready or data.get("of") != _object_mark(job):
        raise LinkExpired


def file_name(job: DownloadJob) -> str:
    """``anna@example.org-2025-03-01-0200.zip``; the address alone once the snapshot is gone."""
    return archive_name(job.snapshot) if job.snapshot else f"{job.repository.address}.zip"


def opened(job: DownloadJob) -> Iterator[bytes]:
    """The download's zip, decrypted piece by piece with its own key (no backup identity).
    Raises ``LinkExpired`` here, before any byte, if its object is gone."""
    store = get_store()
    size = store.size(job.object_key)
    if size is None:
        raise LinkExpired
    identity = pyrage.x25519.Identity.from_str(job.secret)
    return _decrypted(store.iter_range(job.object_key, 0, size), identity)


def _decrypted(sealed: Iterator[bytes], identity: pyrage.x25519.Identity) -> Iterator[bytes]:
    """``pyrage.decrypt_io`` turned into an iterator: it runs in a thread that hands pieces
    over a short queue, and stops when the client goes away (the generator is closed)."""
    pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=PIECES_WAITING)
    gone = threading.Event()
    writer = _Writer(pieces, gone)

    def work() -> None:
        try:
            pyrage.decrypt_io(_Reader(sealed), writer, [identity])
            writer.close()
        except _Gone:
            return
        except (pyrage.DecryptError, OSError, StoreError) as exc:  # the reader raises it
            try:
                writer.hand_over(exc)
            except _Gone:
                return

    thread = threading.Thread(target=work, name="download-decrypt", daemon=True)
    thread.start()
    try:
        while (item := pieces.get()) is not None:
            if isinstance(item, BaseException):
                raise DownloadFailed(str(item) or item.__class__.__name__) from item
            yield item
    finally:
        gone.set()
        thread.join(timeout=5)


class _Gone(Exception):
    """The reader stopped: the client went away."""


class _Writer:
    def __init__(self, pieces: queue.Queue[bytes | BaseException | None], gone: threading.Event):
        self.pieces = pieces
        self.gone = gone
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= PIECE:
            self.hand_over(bytes(self.buffer))
            self.buffer.clear()
        return len(data)

    def flush(self) -> None:
        """Pieces go out whole (``write``, ``close``)."""

    def close(self) -> None:
        if self.buffer:
            self.hand_over(bytes(self.buffer))
            self.buffer.clear()
        self.hand_over(None)

    def hand_over(self, item: bytes | BaseException | None) -> None:
        while not self.gone.is_set():
            try:
                self.pieces.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Gone


# --- Expiry -------------------------------------------------------------------------------


def expire(now: datetime | None = None) -> int:
    """For beat: delete the objects of expired downloads (their key goes too) and any that
    no live download names (left by a failed or dead run). Returns the objects deleted."""
    now = now or timezone.now()
    store = get_store()
    deleted = 0
    for job in DownloadJob.objects.filter(expires_at__lte=now).exclude(object_key=""):
        store.delete(job.object_key)
        DownloadJob.objects.filter(pk=job.pk, object_key=job.object_key).update(
            object_key="", secret=""
        )
        deleted += 1
    # Listed before the rows are read: a run names its object before it writes it.
    stored = list(store.list(PREFIX))
    live = set(
        DownloadJob.objects.filter(status__in=[*ACTIVE, JobStatus.DONE])
        .exclude(object_key="")
        .values_list("object_key", flat=True)
    )
    for key in stored:
        if key not in live:
            store.delete(key)
            deleted += 1
    DownloadJob.objects.filter(status=JobStatus.FAILED).exclude(object_key="").update(
        object_key="", secret=""
    )
    if not DownloadJob.objects.filter(status__in=ACTIVE).exists():
        store.discard_incomplete(PREFIX)
    return deleted
