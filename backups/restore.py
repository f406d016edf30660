"""Restore: put a snapshot's messages back into the mailbox, with their flags and dates.

Nothing is added twice: before appending to a folder, the messages already in it are
compared with the ones to restore, first by Message-ID and size (cheap, from the server),
then, for the candidates only, by the SHA-256 of their content. Counting, not just testing
membership, keeps two identical messages of the backup as two.

Into the original folders, a restore makes the snapshot's messages look as they did then,
as a dsync backup would: the messages already there get the snapshot's flags and keywords
back, and a whole folder or mailbox gets its subscription as recorded. Into a new folder,
what is there is left alone and every folder created is subscribed. Snapshots that did not
record subscriptions (older ones) leave them as they are and subscribe what is created.

A message above ``BACKUP_STREAM_THRESHOLD`` is never held whole: it is decrypted into a
temporary file a piece at a time and checked against its hash there, before anything reaches
the server (a damaged blob must not become half a message); the APPEND then reads it back in
pieces. Comparing with what a folder holds hashes such messages in pieces too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import pyrage
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext_noop

from mailserver.errors import CommandRefused, MailServerError, OverQuota, UnexpectedAnswer
from mailserver.fetch import MIB, batches
from mailserver.imap import MailboxSession, MailFolder, master_session

from . import jobs
from .crypto import DecryptFailed, KeyMissing, identities
from .manifest import Entry, Folder, ManifestError, message_id, read_manifest
from .models import JobStatus, RestoreJob
from .packs import Location, locate, read_blob, unpack_blob
from .store import Store, StoreError, get_store, temporary_file

APPEND_MESSAGES = 100
APPEND_BYTES = 16 * MIB


class RestoreFailed(Exception):
    """The restore cannot go on; the reason is fit to show."""


def run_restore(job_id: int) -> RestoreJob | None:
    """Run (or resume) one restore job (see ``jobs.run`` for what each failure does)."""
    return jobs.run(
        RestoreJob,
        job_id,
        lambda job, token: _Restore(job, token).run(),
        expected=(
            RestoreFailed,
            MailServerError,
            StoreError,
            KeyMissing,
            DecryptFailed,
            ManifestError,
        ),
        timed_out=gettext_noop("time limit reached; run the restore again to add the rest"),
    )


class _Restore:
    def __init__(self, job: RestoreJob, token: str) -> None:
        self.job = job
        self.token = token
        self.store: Store = get_store()
        self.repository = str(job.repository.key)

    def run(self) -> None:
        mailbox = self.job.target_mailbox
        if mailbox is None:
            raise RestoreFailed(gettext_noop("the mailbox was deleted"))
        if self.job.snapshot is None:
            raise RestoreFailed(gettext_noop("the snapshot was deleted by retention"))
        keys = identities()
        manifest = read_manifest(self.store, self.job.snapshot.manifest_key, keys)
        selected = self._select(manifest.folders)
        with transaction.atomic():  # counts of this attempt (a resumed run starts over)
            jobs.heartbeat(
                self.job,
                self.token,
                messages_total=sum(len(e) for _f, e in selected),
                messages_done=0,
                messages_restored=0,
                messages_skipped=0,
                bytes_restored=0,
            )
        with master_session(mailbox.mail_server, mailbox.address, timeout=300) as session:
            existing = {f.name: f for f in session.folders()}
            with ThreadPoolExecutor(1) as opener:
                for folder, entries in selected:
                    self._restore_folder(session, existing, folder, entries, keys, opener)
        jobs.finish(self.job, self.token, JobStatus.DONE)

    def _select(self, folders: list[Folder]) -> list[tuple[Folder, list[Entry]]]:
        job = self.job
        if job.scope == RestoreJob.Scope.MAILBOX:
            return [(f, f.messages) for f in folders]
        if job.scope == RestoreJob.Scope.FOLDER:
            chosen = [(f, f.messages) for f in folders if f.name == job.folder]
            if not chosen:
                raise RestoreFailed(f"the snapshot has no folder {job.folder!r}")
            return chosen
        wanted = {(name, uidvalidity, uid) for name, uidvalidity, uid in job.messages}
        selected = [
            (f, [m for m in f.messages if (f.name, f.uidvalidity, m.uid) in wanted])
            for f in folders
        ]
        selected = [(f, entries) for f, entries in selected if entries]
        if sum(len(entries) for _f, entries in selected) != len(wanted):
            raise RestoreFailed(gettext_noop("some of the chosen messages are not in the snapshot"))
        return selected

    def _target(self, folder: Folder) -> str:
        if not self.job.target_folder:
            return folder.name
        return f"{self.job.target_folder}{folder.delimiter or '/'}{folder.name}"

    def _subscribe(self, folder: Folder, created: bool) -> bool | None:
        """Whether the target folder should be subscribed; None: leave it as it is."""
        if self.job.target_folder or folder.subscribed is None:
            return True if created else None
        if created or self.job.scope != RestoreJob.Scope.MESSAGES:
            return folder.subscribed
        return None  # chosen messages bring back messages, not their folder's subscription

    def _restore_folder(
        self,
        session: MailboxSession,
        existing: dict[str, MailFolder],
        folder: Folder,
        entries: list[Entry],
        keys: list[pyrage.x25519.Identity],
        opener: ThreadPoolExecutor,
    ) -> None:
        target = self._target(folder)
        listed = existing.get(target)
        try:
            if listed is None:
                session.create_folder(target)
                existing[target] = MailFolder(target, folder.delimiter, subscribed=False)
                present: dict[str, list[tuple[int, list[str]]]] = {}
            else:
                session.select(target)
                present = _present(session, entries)
            subscribe = self._subscribe(folder, created=listed is None)
            if subscribe is not None and subscribe != existing[target].subscribed:
                session.subscribe(target, subscribe)
                existing[target] = MailFolder(target, folder.delimiter, subscribe)
        except (CommandRefused, UnexpectedAnswer) as exc:
            raise RestoreFailed(f"cannot open or create folder {target!r}: {exc}") from exc
        todo = []
        flags: dict[int, list[str]] = {}
        for entry in entries:
            copies = present.get(entry.sha256)
            if not copies:
                todo.append(entry)
                continue
            uid, now = copies.pop(0)
            if not self.job.target_folder and now != sorted(entry.flags):
                flags[uid] = entry.flags
        if flags:  # the snapshot's flags and keywords, exactly
            try:
                session.select(target, readonly=False)
                session.set_flags(flags)
            except CommandRefused as exc:
                raise RestoreFailed(f"cannot set the flags in folder {target!r}: {exc}") from exc
        skipped = len(entries) - len(todo)
        with transaction.atomic():
            jobs.heartbeat(
                self.job,
                self.token,
                messages_done=F("messages_done") + skipped,
                messages_skipped=F("messages_skipped") + skipped,
            )
        threshold = settings.BACKUP_STREAM_THRESHOLD
        chunks = list(_append_batches([e for e in todo if e.size <= threshold]))
        locations = locate(self.job.repository_id, (e.sha256 for e in todo))
        ahead: Future[list[tuple[Entry, bytes]]] | None = None
        for number, chunk in enumerate(chunks):
            opened = ahead.result() if ahead else self._open(chunk, locations, keys)
            if number + 1 < len(chunks):  # decrypt the next chunk while this one uploads
                ahead = opener.submit(self._open, chunks[number + 1], locations, keys)
            self._append(session, target, opened)
        for entry in todo:
            if entry.size > threshold:
                self._append_large(session, target, entry, locations, keys)

    def _append_large(
        self,
        session: MailboxSession,
        target: str,
        entry: Entry,
        locations: dict[str, Location],
        keys: list[pyrage.x25519.Identity],
    ) -> None:
        with temporary_file() as (handle, _path):
            unpack_blob(self.store, self.repository, entry.sha256, locations, keys, handle)
            handle.seek(0)
            with self._appending(target):
                session.append_file(target, handle, entry.size, entry.flags, entry.internal_date)
        self._appended(1, entry.size)

    def _open(
        self,
        batch: list[Entry],
        locations: dict[str, Location],
        keys: list[pyrage.x25519.Identity],
    ) -> list[tuple[Entry, bytes]]:
        return [
            (e, read_blob(self.store, self.repository, e.sha256, locations, keys)) for e in batch
        ]

    def _append(
        self, session: MailboxSession, target: str, opened: list[tuple[Entry, bytes]]
    ) -> None:
        with self._appending(target):
            session.append(target, [(raw, e.flags, e.internal_date) for e, raw in opened])
        self._appended(len(opened), sum(len(raw) for _e, raw in opened))

    @contextmanager
    def _appending(self, target: str) -> Iterator[None]:
        try:
            yield
        except OverQuota as exc:
            raise RestoreFailed(
                gettext_noop(
                    "the mailbox is over its quota: raise the quota and run the restore"
                    " again (what was restored stays)"
                )
            ) from exc
        except CommandRefused as exc:
            raise RestoreFailed(
                f"the server refused to store messages in {target!r}: {exc}"
            ) from exc

    def _appended(self, messages: int, size: int) -> None:
        with transaction.atomic():
            jobs.heartbeat(
                self.job,
                self.token,
                messages_done=F("messages_done") + messages,
                messages_restored=F("messages_restored") + messages,
                bytes_restored=F("bytes_restored") + size,
            )


def _present(
    session: MailboxSession, entries: list[Entry]
) -> dict[str, list[tuple[int, list[str]]]]:
    """The copies of wanted messages the selected folder already holds, by content hash:
    their UIDs, in order, with their flags now."""
    heads = session.heads(["MESSAGE-ID"])
    wanted = {(e.message_id, e.size) for e in entries}
    hashes = {e.sha256 for e in entries}
    candidates = [
        (uid, head.size)
        for uid, head in sorted(heads.items())
        if (message_id(head.header), head.size) in wanted
    ]
    threshold = settings.BACKUP_STREAM_THRESHOLD
    found: dict[int, str] = {}
    small = [(uid, size) for uid, size in candidates if size <= threshold]
    for batch in batches(small, lambda c: c[1], count=APPEND_MESSAGES, max_bytes=APPEND_BYTES):
        bodies = session.bodies(uid for uid, _size in batch)
        found.update((uid, hashlib.sha256(raw).hexdigest()) for uid, raw in bodies.items())
    for uid, size in candidates:
        if size > threshold:
            content = hashlib.sha256()
            for piece in session.body_pieces(uid, size):
                content.update(piece)
            found[uid] = content.hexdigest()
    present: dict[str, list[tuple[int, list[str]]]] = {}
    for uid, sha256 in sorted(found.items()):
        if sha256 in hashes:
            present.setdefault(sha256, []).append((uid, heads[uid].flags))
    return present


def _append_batches(entries: list[Entry]) -> Iterator[list[Entry]]:
    return batches(entries, lambda e: e.size, count=APPEND_MESSAGES, max_bytes=APPEND_BYTES)
