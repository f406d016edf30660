"""The backup run: read a mailbox over IMAP as the master user, store what is new as
encrypted blobs in packs, and write the snapshot's manifest last.

Incremental by (UIDVALIDITY, UID) per folder: a folder whose STATUS (UIDVALIDITY, UIDNEXT,
HIGHESTMODSEQ, MESSAGES) matches the last run is not even selected; in a changed one only
UIDs not yet stored are fetched. A new UIDVALIDITY drops the folder's old UIDs (older
snapshots keep them) and fetches the folder again; identical content becomes no new blob.

A message above ``BACKUP_STREAM_THRESHOLD`` is never held whole: it is fetched in pieces,
hashed, compressed and encrypted on the way into a temporary file, which becomes a pack of
its own (``_fetch_large``).

Crash safety: a batch's pack is durable before the rows that point into it, each batch
commits in its own transaction, and the manifest and the snapshot row come last. A run that
dies leaves earlier snapshots as they were; the next run finds the committed rows and blobs
and fetches only what is missing.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pyrage
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop

from mailserver.errors import CommandRefused, FolderError, MailServerError, UnexpectedAnswer
from mailserver.fetch import METADATA_CHUNK, MIB, MessageInfo, batches
from mailserver.imap import MailboxSession, SelectedFolder, master_session
from provider.db import copy_rows

from . import jobs
from .browse import display_block
from .crypto import KeyMissing, SealFailed, Writer, recipients, seal, seal_stream
from .manifest import Entry, Folder, Manifest, header_block, message_id, write_manifest
from .models import (
    BackupJob,
    Blob,
    FolderState,
    JobStatus,
    Pack,
    Repository,
    Snapshot,
    StoredMessage,
)
from .packs import NewPack, build_pack, pack_key, write_pack_file
from .store import Store, StoreError, get_store, temporary_file

BATCH_BYTES = 32 * MIB  # a batch is also cut by size, so a few huge messages stay apart
# zstd releases the GIL; more threads than cores would only queue for it.
SEAL_THREADS = min(4, os.cpu_count() or 1)
MAX_PASSES = 3  # a folder that keeps changing while we read it gets this many tries
STORED_MESSAGE_FIELDS = [
    "repository",
    "folder",
    "uidvalidity",
    "uid",
    "sha256",
    "size",
    "flags",
    "internal_date",
    "message_id",
    "first_seq",
]


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
    subscribed: bool


@dataclass(frozen=True)
class Stored:
    """One fetched message as its row will record it."""

    uid: int
    sha256: str
    size: int
    flags: list[str]
    internal_date: datetime
    message_id: str


# A batch's new blobs' sealed display headers, by SHA-256 (``Blob.headers``).
Headers = dict[str, Future[bytes]]
SealedHeaders = dict[str, bytes]  # the same, once sealed


def run_backup(job_id: int) -> BackupJob | None:
    """Run (or resume) one backup job (see ``jobs.run`` for what each failure does)."""
    return jobs.run(
        BackupJob,
        job_id,
        lambda job, token: _Run(job, token).run(),
        expected=(BackupFailed, MailServerError, StoreError, KeyMissing, SealFailed),
        timed_out=gettext_noop(
            "time limit reached; what was stored is kept and the next run continues"
        ),
    )


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
            raise BackupFailed(gettext_noop("the mailbox was deleted"))
        with master_session(mailbox.mail_server, mailbox.address, timeout=300) as session:
            folders = _list_folders(session)
            changed = self._changed_folders(folders)
            forgot = self._forget_missing_folders({f.name for f in folders})
            plans = [(folder, self._plan(session, folder)) for folder in changed]
            with transaction.atomic():  # counts of this attempt (a resumed run starts over)
                jobs.heartbeat(
                    self.job,
                    self.token,
                    messages_total=sum(len(new) for _f, new in plans),
                    messages_on_server=sum(f.messages for f in folders),
                    messages_done=0,
                    bytes_fetched=0,
                    blobs_written=0,
                    bytes_written=0,
                )
            with ThreadPoolExecutor(SEAL_THREADS) as pool:
                for folder, new in plans:
                    self._sync(session, folder, new, pool)
        previous = None if changed or forgot else self._unchanged_snapshot()
        if previous is not None:
            self._commit_snapshot(
                previous.manifest_key, previous.folders, previous.messages, previous.size_bytes
            )
        else:
            self._finish(folders)

    # --- what changed -------------------------------------------------------------------

    def _changed_folders(self, folders: list[ServerFolder]) -> list[ServerFolder]:
        """Folders whose STATUS differs from the last verified run, or whose stored count
        does not match the server's MESSAGES (a folder left half done by a crash).

        A new subscription moves no STATUS value: it is saved here, stamped with this run's
        number, so the previous snapshot's manifest is not taken for this one's."""
        states = {s.name: s for s in FolderState.objects.filter(repository=self.repository)}
        resubscribed = [
            f for f in folders if f.name in states and states[f.name].subscribed != f.subscribed
        ]
        for subscribed in (True, False):
            FolderState.objects.filter(
                repository=self.repository,
                name__in=[f.name for f in resubscribed if f.subscribed == subscribed],
            ).update(subscribed=subscribed, seq=self.seq)
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

    def _forget_missing_folders(self, present: set[str]) -> bool:
        """Close the rows of folders deleted on the server; True if there were any."""
        with transaction.atomic():
            gone = self._current().exclude(folder__in=present)
            self._close(gone)
            deleted, _by_model = (
                FolderState.objects.filter(repository=self.repository)
                .exclude(name__in=present)
                .delete()
            )
        return bool(deleted)

    def _unchanged_snapshot(self) -> Snapshot | None:
        """The last snapshot, if the mailbox is still exactly as it recorded: no folder
        changed (a flag change moves HIGHESTMODSEQ), and neither did an earlier attempt of
        this run change a folder or a row. Its manifest can then serve this snapshot too."""
        previous = Snapshot.objects.filter(repository=self.repository, seq=self.seq - 1).first()
        moved = StoredMessage.objects.filter(repository=self.repository).filter(
            Q(first_seq=self.seq) | Q(last_seq=self.seq - 1)
        )
        resynced = FolderState.objects.filter(repository=self.repository, seq=self.seq)
        if previous is None or moved.exists() or resynced.exists():
            return None
        return previous

    def _plan(self, session: MailboxSession, folder: ServerFolder) -> list[MessageInfo]:
        """Bring the folder's rows in line with the server (UIDs gone, flags changed, a new
        UIDVALIDITY) and return the messages still to fetch."""
        uidvalidity = _select(session, folder.name).uidvalidity
        try:
            metadata = session.metadata()
        except (CommandRefused, UnexpectedAnswer) as exc:
            raise BackupFailed(f"folder {folder.name!r}: {exc}") from exc
        known = {
            uid: (pk, flags)
            for pk, uid, flags in self._current()
            .filter(folder=folder.name, uidvalidity=uidvalidity)
            .values_list("pk", "uid", "flags")
        }
        on_server = set(metadata)
        changed_flags = [
            StoredMessage(pk=pk, flags=metadata[uid].flags)
            for uid, (pk, flags) in known.items()
            if uid in on_server and metadata[uid].flags != flags
        ]
        gone = [pk for uid, (pk, _flags) in known.items() if uid not in on_server]
        with transaction.atomic():
            folder_rows = self._current().filter(folder=folder.name)
            self._close(folder_rows.exclude(uidvalidity=uidvalidity))
            for start in range(0, len(gone), METADATA_CHUNK):
                self._close(folder_rows.filter(pk__in=gone[start : start + METADATA_CHUNK]))
            StoredMessage.objects.bulk_update(changed_flags, ["flags"], batch_size=1000)
        return [metadata[uid] for uid in sorted(on_server) if uid not in known]

    # --- fetching -----------------------------------------------------------------------

    def _sync(
        self,
        session: MailboxSession,
        folder: ServerFolder,
        new: list[MessageInfo],
        pool: ThreadPoolExecutor,
    ) -> None:
        """Fetch what is new, then check the folder against the server until they agree."""
        for attempt in range(MAX_PASSES):
            if attempt and _unchanged_since_listed(session, folder):
                new = []  # the plan saw the folder as listed: nothing arrived or changed
            elif attempt:
                new = self._plan(session, folder)
                if new:
                    with transaction.atomic():
                        jobs.heartbeat(
                            self.job, self.token, messages_total=F("messages_total") + len(new)
                        )
            if not new and self._verify(session, folder):
                return
            uidvalidity = _select(session, folder.name).uidvalidity
            self._fetch(session, folder, uidvalidity, new, pool)
        raise BackupFailed(f"folder {folder.name!r} kept changing while it was backed up")

    def _fetch(
        self,
        session: MailboxSession,
        folder: ServerFolder,
        uidvalidity: int,
        new: list[MessageInfo],
        pool: ThreadPoolExecutor,
    ) -> None:
        """Fetch batch k+1 while the new messages of batch k are sealed by the pool and
        packed by the writer; then commit batch k. Only the bodies are fetched: flags, dates
        and sizes came with the plan, and parsing them twice costs more than the network."""
        threshold = settings.BACKUP_STREAM_THRESHOLD
        in_flight: deque[tuple[list[Stored], Future[NewPack | None], Headers]] = deque()
        pending: set[str] = set()  # blobs in packs not committed yet
        with ThreadPoolExecutor(1) as writer:
            small = [m for m in new if m.size <= threshold]
            for batch in batches(
                small, lambda m: m.size, count=settings.BACKUP_BATCH_MESSAGES, max_bytes=BATCH_BYTES
            ):
                try:
                    response = session.bodies(m.uid for m in batch)
                except (CommandRefused, UnexpectedAnswer) as exc:
                    raise BackupFailed(f"folder {folder.name!r}: {exc}") from exc
                # A UID missing from the answer was expunged meanwhile: verification sees it.
                bodies = [(m, response[m.uid]) for m in batch if m.uid in response]
                stored = [_describe(m, raw) for m, raw in bodies]
                known = pending | set(
                    Blob.objects.filter(
                        repository=self.repository, sha256__in={s.sha256 for s in stored}
                    ).values_list("sha256", flat=True)
                )
                fresh: dict[str, bytes] = {}
                for item, (_m, raw) in zip(stored, bodies, strict=True):
                    if item.sha256 not in known:
                        fresh.setdefault(item.sha256, raw)
                pending.update(fresh)
                sealing = [
                    (sha256, len(raw), pool.submit(seal, raw, self.recipients))
                    for sha256, raw in fresh.items()
                ]
                # The few header lines the browse page shows, sealed apart: browsing then
                # never decrypts a message.
                headers = {
                    sha256: pool.submit(seal, display_block(raw), self.recipients)
                    for sha256, raw in fresh.items()
                }
                in_flight.append((stored, writer.submit(self._write_pack, sealing), headers))
                if len(in_flight) > 1:
                    self._commit(folder, uidvalidity, *self._done(in_flight.popleft()))
            while in_flight:
                self._commit(folder, uidvalidity, *self._done(in_flight.popleft()))
        for message in new:
            if message.size > threshold:
                self._fetch_large(session, folder, uidvalidity, message)

    def _fetch_large(
        self, session: MailboxSession, folder: ServerFolder, uidvalidity: int, planned: MessageInfo
    ) -> None:
        """One large message, piece by piece: each piece is hashed, compressed and
        encrypted into a temporary file on its way, the display headers and Message-ID come
        from the first piece, and the file is stored as a pack of its own with ``put_file``.
        Memory holds a few pieces (``mailserver.imap.PIECE``), whatever the message weighs."""
        digest = hashlib.sha256()
        first = b""
        fetched = 0

        def pieces() -> Iterator[bytes]:
            nonlocal first, fetched
            try:
                for piece in session.body_pieces(planned.uid, planned.size):
                    first = first or piece
                    digest.update(piece)
                    fetched += len(piece)
                    with transaction.atomic():
                        jobs.heartbeat(
                            self.job, self.token, bytes_fetched=F("bytes_fetched") + len(piece)
                        )
                    yield piece
            except (CommandRefused, UnexpectedAnswer) as exc:
                raise BackupFailed(f"folder {folder.name!r}: {exc}") from exc

        def seal_blob(out: Writer) -> str:
            seal_stream(pieces(), out, self.recipients)
            return digest.hexdigest()

        with temporary_file() as (handle, path):
            pack = write_pack_file(handle, seal_blob, planned.size, self.recipients)
            if not fetched:
                return  # expunged meanwhile: verification sees it
            if fetched != planned.size:
                raise BackupFailed(
                    f"UID {planned.uid}: the server sent {fetched} bytes of a {planned.size}"
                    " byte message"
                )
            sha256 = digest.hexdigest()
            stored = Stored(
                uid=planned.uid,
                sha256=sha256,
                size=planned.size,
                flags=planned.flags,
                internal_date=planned.internal_date,
                message_id=message_id(header_block(first)),
            )
            if Blob.objects.filter(repository=self.repository, sha256=sha256).exists():
                # The same content is stored already (a copy in another folder).
                self._commit(folder, uidvalidity, [stored], None, {}, counted=planned.size)
                return
            handle.flush()
            self.store.put_file(pack_key(str(self.repository.key), pack.name), path)
        headers = {sha256: seal(display_block(first), self.recipients)}
        self._commit(folder, uidvalidity, [stored], pack, headers, counted=planned.size)

    @staticmethod
    def _done(
        item: tuple[list[Stored], Future[NewPack | None], Headers],
    ) -> tuple[list[Stored], NewPack | None, SealedHeaders]:
        return item[0], item[1].result(), {sha: f.result() for sha, f in item[2].items()}

    def _write_pack(self, sealing: list[tuple[str, int, Future[bytes]]]) -> NewPack | None:
        """Pack a batch's new blobs into one object (durable only with the next flush)."""
        if not sealing:
            return None
        pack, data = build_pack(
            [(sha, size, f.result()) for sha, size, f in sealing], self.recipients
        )
        self.store.put(pack_key(str(self.repository.key), pack.name), data)
        return pack

    def _commit(
        self,
        folder: ServerFolder,
        uidvalidity: int,
        batch: list[Stored],
        pack: NewPack | None,
        headers: SealedHeaders,
        counted: int = 0,
    ) -> None:
        """Make the batch's pack durable, then commit the rows that point into it.
        ``counted``: bytes already added to ``bytes_fetched`` while they streamed in."""
        self.store.flush()
        with transaction.atomic():
            jobs.heartbeat(
                self.job,
                self.token,
                messages_done=F("messages_done") + len(batch),
                bytes_fetched=F("bytes_fetched") + sum(s.size for s in batch) - counted,
                blobs_written=F("blobs_written") + (len(pack.blobs) if pack else 0),
                bytes_written=F("bytes_written") + (pack.size if pack else 0),
            )
            if pack is not None:
                row = Pack.objects.create(
                    repository=self.repository, name=pack.name, size=pack.size
                )
                copy_rows(
                    Blob,
                    ["repository", "sha256", "pack", "offset", "length", "size", "headers"],
                    (
                        (
                            self.repository.pk,
                            b.sha256,
                            row.pk,
                            b.offset,
                            b.length,
                            b.size,
                            headers[b.sha256],
                        )
                        for b in pack.blobs
                    ),
                )
            copy_rows(
                StoredMessage,
                STORED_MESSAGE_FIELDS,
                (
                    (
                        self.repository.pk,
                        folder.name,
                        uidvalidity,
                        s.uid,
                        s.sha256,
                        s.size,
                        s.flags,
                        s.internal_date,
                        s.message_id,
                        self.seq,
                    )
                    for s in batch
                ),
            )

    def _verify(self, session: MailboxSession, folder: ServerFolder) -> bool:
        """The folder's stored UIDs are exactly the server's, as many as its MESSAGES; then
        its state is saved so the next run can skip it while it stays unchanged."""
        info = _select(session, folder.name)
        try:
            uids = set(session.uids())
        except (CommandRefused, UnexpectedAnswer) as exc:
            raise BackupFailed(f"folder {folder.name!r}: {exc}") from exc
        stored = set(
            self._current()
            .filter(folder=folder.name, uidvalidity=info.uidvalidity)
            .values_list("uid", flat=True)
        )
        if stored != uids or len(uids) != info.exists:
            return False
        FolderState.objects.update_or_create(
            repository=self.repository,
            name=folder.name,
            defaults={
                "delimiter": folder.delimiter,
                "uidvalidity": info.uidvalidity,
                "uidnext": info.uidnext,
                "highestmodseq": info.highestmodseq,
                "messages": len(uids),
                "subscribed": folder.subscribed,
                "seq": self.seq,
            },
        )
        return True

    # --- the snapshot -------------------------------------------------------------------

    def _finish(self, folders: list[ServerFolder]) -> None:
        """Write the manifest, then commit the snapshot: the last step, all or nothing."""
        states = {s.name: s for s in FolderState.objects.filter(repository=self.repository)}
        entries: dict[str, list[Entry]] = {f.name: [] for f in folders}
        rows = (
            self._current()
            .order_by("folder", "uid")
            .values_list("folder", "uid", "sha256", "size", "flags", "internal_date", "message_id")
        )
        for folder_name, *fields in rows.iterator(chunk_size=5000):
            if folder_name in entries:
                entries[folder_name].append(Entry(*fields))
        for folder in folders:  # the count check, for skipped folders too
            if len(entries[folder.name]) != states[folder.name].messages:
                raise BackupFailed(
                    f"folder {folder.name!r}: {len(entries[folder.name])} messages stored, "
                    f"the server has {states[folder.name].messages}"
                )
        manifest = Manifest(
            repository=str(self.repository.key),
            mailbox=self.repository.address,
            seq=self.seq,
            taken_at=timezone.now(),
            folders=[
                Folder(
                    name=f.name,
                    delimiter=states[f.name].delimiter,
                    uidvalidity=states[f.name].uidvalidity,
                    uidnext=states[f.name].uidnext,
                    highestmodseq=states[f.name].highestmodseq,
                    messages=entries[f.name],
                    subscribed=f.subscribed,
                )
                for f in sorted(folders, key=lambda f: f.name)
            ],
        )
        key = write_manifest(self.store, manifest, self.recipients)
        self._commit_snapshot(key, len(folders), manifest.message_count, manifest.size_bytes)

    def _commit_snapshot(self, manifest_key: str, folders: int, messages: int, size: int) -> None:
        with transaction.atomic():
            jobs.heartbeat(self.job, self.token)
            snapshot = Snapshot.objects.create(
                repository=self.repository,
                seq=self.seq,
                taken_at=timezone.now(),
                manifest_key=manifest_key,
                folders=folders,
                messages=messages,
                size_bytes=size,
            )
            Repository.objects.filter(pk=self.repository.pk).update(
                seq=self.seq, last_backup_at=self.job.created_at
            )
            jobs.finish(self.job, self.token, JobStatus.DONE, snapshot=snapshot)


# --- IMAP helpers -----------------------------------------------------------------------


def _describe(planned: MessageInfo, raw: bytes) -> Stored:
    if len(raw) != planned.size:
        raise BackupFailed(
            f"UID {planned.uid}: the server sent {len(raw)} bytes of a {planned.size} byte message"
        )
    return Stored(
        uid=planned.uid,
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        flags=planned.flags,
        internal_date=planned.internal_date,
        message_id=message_id(header_block(raw)),
    )


def _list_folders(session: MailboxSession) -> list[ServerFolder]:
    result = []
    for listed in session.folders():
        status = session.status(listed.name)
        result.append(
            ServerFolder(
                name=listed.name,
                delimiter=listed.delimiter,
                messages=status.messages,
                uidnext=status.uidnext,
                uidvalidity=status.uidvalidity,
                highestmodseq=status.highestmodseq,
                subscribed=listed.subscribed,
            )
        )
    return result


def _unchanged_since_listed(session: MailboxSession, folder: ServerFolder) -> bool:
    """With CONDSTORE, any expunge, flag change or new message moves HIGHESTMODSEQ or
    UIDNEXT; equal STATUS means the folder is as it was before it was planned, so a second
    metadata FETCH of every message would only repeat what the plan read."""
    if folder.highestmodseq is None:
        return False
    status = session.status(folder.name)
    return (status.messages, status.uidnext, status.uidvalidity, status.highestmodseq) == (
        folder.messages,
        folder.uidnext,
        folder.uidvalidity,
        folder.highestmodseq,
    )


def _select(session: MailboxSession, name: str) -> SelectedFolder:
    try:
        return session.select(name)
    except FolderError as exc:  # deleted since it was listed: the next run sees it gone
        raise BackupFailed(str(exc)) from exc
