"""The backup run: read a mailbox over IMAP as the master user, store what is new as
encrypted blobs, and write the snapshot's manifest last.

Incremental by (UIDVALIDITY, UID) per folder: a folder whose STATUS (UIDVALIDITY, UIDNEXT,
HIGHESTMODSEQ, MESSAGES) matches the last run is not even selected; in a changed one only
UIDs not yet stored are fetched. A new UIDVALIDITY drops the folder's old UIDs (older
snapshots keep them) and fetches the folder again; identical content becomes no new blob.

Crash safety: blobs are written before the rows that name them, each batch of rows commits
in its own transaction, and the manifest and the snapshot row come last. A run that dies
leaves earlier snapshots as they were; the next run finds the committed rows and the blobs
already written, and fetches only what is missing.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pyrage
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailboxes.mailserver import MailServerError, MailServerUnavailable, master_imap

from . import jobs
from .crypto import KeyMissing, recipients, seal
from .imap import METADATA_CHUNK, MIB, batches, tune
from .manifest import Entry, Folder, Manifest, blob_key, header_block, message_id, write_manifest
from .models import BackupJob, FolderState, JobStatus, Repository, Snapshot, StoredMessage
from .store import Store, StoreError, get_store

BATCH_BYTES = 32 * MIB  # a batch is also cut by size, so a few huge messages stay apart
# Hashing, gzip and fsync release the GIL; parallel fsyncs share journal commits.
STORE_THREADS = 16
MAX_PASSES = 3  # a folder that keeps changing while we read it gets this many tries
STATUS_ITEMS = [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY", b"HIGHESTMODSEQ"]


class BackupFailed(Exception):
    """The run cannot produce a trustworthy snapshot; the reason is fit to show to staff."""


@dataclass(frozen=True)
class ServerFolder:
    name: str
    delimiter: str
    messages: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int | None


@dataclass(frozen=True)
class Stored:
    """One fetched message, hashed and (if its blob was missing) written."""

    uid: int
    sha256: str
    size: int
    flags: list[str]
    internal_date: datetime
    message_id: str
    written_bytes: int  # 0: the blob was already there


def run_backup(job_id: int) -> BackupJob | None:
    """Run (or resume) one backup job. Raises ``jobs.Busy`` while someone else holds it and
    ``MailServerUnavailable`` for a retry; other failures end the job as failed."""
    claimed = jobs.claim(BackupJob, job_id)
    if claimed is None:
        return None
    job, token = claimed
    try:
        _Run(job, token).run()
    except jobs.Superseded:
        return None
    except MailServerUnavailable as exc:
        jobs.requeue(job, token, str(exc))
        raise
    except SoftTimeLimitExceeded:
        jobs.finish(
            job,
            token,
            JobStatus.FAILED,
            "time limit reached; what was stored is kept and the next run continues",
        )
        raise
    except (BackupFailed, MailServerError, StoreError, KeyMissing) as exc:
        jobs.finish(job, token, JobStatus.FAILED, str(exc))
    except Exception as exc:
        jobs.finish(job, token, JobStatus.FAILED, f"unexpected error: {exc!r}")
        raise
    job.refresh_from_db()
    return job


class _Run:
    def __init__(self, job: BackupJob, token: str) -> None:
        self.job = job
        self.token = token
        self.repository: Repository = job.repository
        self.seq = self.repository.seq + 1  # the snapshot this run builds
        self.store: Store = get_store()
        self.recipients: list[pyrage.x25519.Recipient] = recipients()

    def run(self) -> None:
        mailbox = self.repository.mailbox
        if mailbox is None:
            raise BackupFailed("the mailbox was deleted")
        with master_imap(mailbox.mail_server, mailbox.address, timeout=300) as client:
            tune(client)
            folders = _list_folders(client)
            changed = self._changed_folders(folders)
            self._forget_missing_folders({f.name for f in folders})
            plans = [(folder, self._plan(client, folder)) for folder in changed]
            with transaction.atomic():
                jobs.heartbeat(
                    self.job,
                    self.token,
                    messages_total=sum(len(new) for _f, new in plans),
                    messages_on_server=sum(f.messages for f in folders),
                )
            with ThreadPoolExecutor(STORE_THREADS) as pool:
                for folder, new in plans:
                    self._sync(client, folder, new, pool)
        self._finish(folders)

    # --- what changed -------------------------------------------------------------------

    def _changed_folders(self, folders: list[ServerFolder]) -> list[ServerFolder]:
        """Folders whose STATUS differs from the last verified run, or whose stored count
        does not match the server's MESSAGES (a folder left half done by a crash)."""
        states = {s.name: s for s in FolderState.objects.filter(repository=self.repository)}
        counts = dict(
            self._current().values("folder").annotate(n=Count("pk")).values_list("folder", "n")
        )
        changed = []
        for folder in folders:
            state = states.get(folder.name)
            same = state is not None and (
                state.uidvalidity,
                state.uidnext,
                state.highestmodseq,
                state.messages,
            ) == (folder.uidvalidity, folder.uidnext, folder.highestmodseq, folder.messages)
            if not same or counts.get(folder.name, 0) != folder.messages:
                changed.append(folder)
        return changed

    def _current(self) -> QuerySet[StoredMessage]:
        return StoredMessage.objects.filter(repository=self.repository, last_seq__isnull=True)

    def _close(self, records: QuerySet[StoredMessage]) -> None:
        """These messages left the server: the last snapshot that has them is the previous
        one, or none if they were only seen by this unfinished run."""
        records.filter(first_seq=self.seq).delete()
        records.update(last_seq=self.seq - 1)

    def _forget_missing_folders(self, present: set[str]) -> None:
        with transaction.atomic():
            gone = self._current().exclude(folder__in=present)
            self._close(gone)
            FolderState.objects.filter(repository=self.repository).exclude(
                name__in=present
            ).delete()

    def _plan(self, client: IMAPClient, folder: ServerFolder) -> list[tuple[int, int]]:
        """Bring the folder's rows in line with the server (UIDs gone, flags changed, a new
        UIDVALIDITY) and return the (uid, size) of the messages still to fetch."""
        info = _select(client, folder.name)
        uidvalidity = info[b"UIDVALIDITY"]
        uids = client.search()
        metadata = _fetch_metadata(client, uids)
        known = {
            uid: (pk, flags)
            for pk, uid, flags in self._current()
            .filter(folder=folder.name, uidvalidity=uidvalidity)
            .values_list("pk", "uid", "flags")
        }
        on_server = set(metadata)
        changed_flags = [
            StoredMessage(pk=pk, flags=_flags(metadata[uid][b"FLAGS"]))
            for uid, (pk, flags) in known.items()
            if uid in on_server and _flags(metadata[uid][b"FLAGS"]) != flags
        ]
        gone = [pk for uid, (pk, _flags) in known.items() if uid not in on_server]
        with transaction.atomic():
            folder_rows = self._current().filter(folder=folder.name)
            self._close(folder_rows.exclude(uidvalidity=uidvalidity))
            for start in range(0, len(gone), METADATA_CHUNK):
                self._close(folder_rows.filter(pk__in=gone[start : start + METADATA_CHUNK]))
            StoredMessage.objects.bulk_update(changed_flags, ["flags"], batch_size=1000)
        return [
            (uid, metadata[uid][b"RFC822.SIZE"]) for uid in sorted(on_server) if uid not in known
        ]

    # --- fetching -----------------------------------------------------------------------

    def _sync(
        self,
        client: IMAPClient,
        folder: ServerFolder,
        new: list[tuple[int, int]],
        pool: ThreadPoolExecutor,
    ) -> None:
        """Fetch what is new, then check the folder against the server until they agree."""
        for attempt in range(MAX_PASSES):
            if attempt:
                new = self._plan(client, folder)
                if new:
                    with transaction.atomic():
                        jobs.heartbeat(
                            self.job, self.token, messages_total=F("messages_total") + len(new)
                        )
            if not new and self._verify(client, folder):
                return
            info = _select(client, folder.name)
            self._fetch(client, folder, info[b"UIDVALIDITY"], new, pool)
        raise BackupFailed(f"folder {folder.name!r} kept changing while it was backed up")

    def _fetch(
        self,
        client: IMAPClient,
        folder: ServerFolder,
        uidvalidity: int,
        new: list[tuple[int, int]],
        pool: ThreadPoolExecutor,
    ) -> None:
        """Fetch batch k+1 while the messages of batch k are hashed, sealed and written by
        the pool; then commit batch k's rows."""
        in_flight: deque[list[Future[Stored]]] = deque()
        for batch in batches(
            new, lambda item: item[1], count=settings.BACKUP_BATCH_MESSAGES, max_bytes=BATCH_BYTES
        ):
            response = client.fetch(
                [uid for uid, _size in batch],
                [b"BODY.PEEK[]", b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"],
            )
            # A UID missing from the answer was expunged meanwhile: verification sees it.
            in_flight.append(
                [pool.submit(self._keep, uid, response[uid]) for uid, _ in batch if uid in response]
            )
            if len(in_flight) > 1:
                self._commit(folder, uidvalidity, [f.result() for f in in_flight.popleft()])
        while in_flight:
            self._commit(folder, uidvalidity, [f.result() for f in in_flight.popleft()])

    def _keep(self, uid: int, item: dict[bytes, object]) -> Stored:
        """Hash one message and store its blob unless the repository has it already."""
        raw = item[b"BODY[]"]
        assert isinstance(raw, bytes)
        if len(raw) != item[b"RFC822.SIZE"]:
            raise BackupFailed(
                f"UID {uid}: the server sent {len(raw)} bytes of a {item[b'RFC822.SIZE']}"
                " byte message"
            )
        sha256 = hashlib.sha256(raw).hexdigest()
        key = blob_key(str(self.repository.key), sha256)
        # A blob written by an earlier run (even one that crashed before committing) is
        # complete: objects appear only whole.
        written = 0
        if not self.store.exists(key):
            data = seal(raw, self.recipients)
            self.store.put(key, data)
            written = len(data)
        return Stored(
            uid=uid,
            sha256=sha256,
            size=len(raw),
            flags=_flags(item[b"FLAGS"]),
            internal_date=item[b"INTERNALDATE"],  # type: ignore[arg-type]
            message_id=message_id(header_block(raw)),
            written_bytes=written,
        )

    def _commit(self, folder: ServerFolder, uidvalidity: int, batch: list[Stored]) -> None:
        self.store.flush()  # the blobs are durable before the rows that name them
        with transaction.atomic():
            jobs.heartbeat(
                self.job,
                self.token,
                messages_done=F("messages_done") + len(batch),
                bytes_fetched=F("bytes_fetched") + sum(s.size for s in batch),
                blobs_written=F("blobs_written") + sum(1 for s in batch if s.written_bytes),
                bytes_written=F("bytes_written") + sum(s.written_bytes for s in batch),
            )
            StoredMessage.objects.bulk_create(
                StoredMessage(
                    repository=self.repository,
                    folder=folder.name,
                    uidvalidity=uidvalidity,
                    uid=s.uid,
                    sha256=s.sha256,
                    size=s.size,
                    flags=s.flags,
                    internal_date=s.internal_date,
                    message_id=s.message_id,
                    first_seq=self.seq,
                )
                for s in batch
            )

    def _verify(self, client: IMAPClient, folder: ServerFolder) -> bool:
        """The folder's stored UIDs are exactly the server's, as many as its MESSAGES; then
        its state is saved so the next run can skip it while it stays unchanged."""
        info = _select(client, folder.name)
        uids = set(client.search())
        stored = set(
            self._current()
            .filter(folder=folder.name, uidvalidity=info[b"UIDVALIDITY"])
            .values_list("uid", flat=True)
        )
        if stored != uids or len(uids) != info[b"EXISTS"]:
            return False
        FolderState.objects.update_or_create(
            repository=self.repository,
            name=folder.name,
            defaults={
                "delimiter": folder.delimiter,
                "uidvalidity": info[b"UIDVALIDITY"],
                "uidnext": info[b"UIDNEXT"],
                "highestmodseq": info.get(b"HIGHESTMODSEQ"),
                "messages": len(uids),
            },
        )
        return True

    # --- the snapshot -------------------------------------------------------------------

    def _finish(self, folders: list[ServerFolder]) -> None:
        """Write the manifest, then commit the snapshot: the last step, all or nothing."""
        states = {s.name: s for s in FolderState.objects.filter(repository=self.repository)}
        entries: dict[str, list[Entry]] = {f.name: [] for f in folders}
        for row in self._current().order_by("folder", "uid").iterator(chunk_size=5000):
            if row.folder in entries:
                entries[row.folder].append(
                    Entry(
                        uid=row.uid,
                        sha256=row.sha256,
                        size=row.size,
                        flags=row.flags,
                        internal_date=row.internal_date,
                        message_id=row.message_id,
                    )
                )
        for folder in folders:  # the count check, for skipped folders too
            if len(entries[folder.name]) != states[folder.name].messages:
                raise BackupFailed(
                    f"folder {folder.name!r}: {len(entries[folder.name])} messages stored, "
                    f"the server has {states[folder.name].messages}"
                )
        taken_at = timezone.now()
        manifest = Manifest(
            repository=str(self.repository.key),
            mailbox=self.repository.address,
            seq=self.seq,
            taken_at=taken_at,
            folders=[
                Folder(
                    name=f.name,
                    delimiter=states[f.name].delimiter,
                    uidvalidity=states[f.name].uidvalidity,
                    uidnext=states[f.name].uidnext,
                    highestmodseq=states[f.name].highestmodseq,
                    messages=entries[f.name],
                )
                for f in sorted(folders, key=lambda f: f.name)
            ],
        )
        key = write_manifest(self.store, manifest, self.recipients)
        with transaction.atomic():
            jobs.heartbeat(self.job, self.token)
            snapshot = Snapshot.objects.create(
                repository=self.repository,
                seq=self.seq,
                taken_at=taken_at,
                manifest_key=key,
                folders=len(folders),
                messages=manifest.message_count,
                size_bytes=manifest.size_bytes,
            )
            Repository.objects.filter(pk=self.repository.pk).update(
                seq=self.seq, last_backup_at=self.job.created_at
            )
            jobs.finish(self.job, self.token, JobStatus.DONE, snapshot=snapshot)


# --- IMAP helpers -----------------------------------------------------------------------


def _list_folders(client: IMAPClient) -> list[ServerFolder]:
    result = []
    for flags, delimiter, name in client.list_folders():
        if b"\\Noselect" in flags or b"\\NonExistent" in flags:
            continue
        status = client.folder_status(name, STATUS_ITEMS)
        result.append(
            ServerFolder(
                name=name,
                delimiter=(delimiter or b"").decode(),
                messages=status[b"MESSAGES"],
                uidnext=status[b"UIDNEXT"],
                uidvalidity=status[b"UIDVALIDITY"],
                highestmodseq=status.get(b"HIGHESTMODSEQ"),
            )
        )
    return result


def _select(client: IMAPClient, name: str) -> dict[bytes, int]:
    try:
        return client.select_folder(name, readonly=True)
    except IMAPClientError as exc:  # deleted since it was listed: the next run sees it gone
        raise BackupFailed(f"cannot open folder {name!r}: {exc}") from exc


def _fetch_metadata(client: IMAPClient, uids: Sequence[int]) -> dict[int, dict[bytes, object]]:
    metadata: dict[int, dict[bytes, object]] = {}
    for start in range(0, len(uids), METADATA_CHUNK):
        chunk = uids[start : start + METADATA_CHUNK]
        metadata.update(client.fetch(chunk, [b"FLAGS", b"RFC822.SIZE"]))
    return metadata


def _flags(flags: object) -> list[str]:
    """Flags as text, without \\Recent (a session flag no client can set)."""
    assert isinstance(flags, tuple)
    names = (f.decode() if isinstance(f, bytes) else str(f) for f in flags)
    return sorted(name for name in names if name.lower() != "\\recent")
