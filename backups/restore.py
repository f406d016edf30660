"""Restore: put a snapshot's messages back into the mailbox, with their flags and dates.

Nothing is added twice: before appending to a folder, the messages already in it are
compared with the ones to restore, first by Message-ID and size (cheap, from the server),
then, for the candidates only, by the SHA-256 of their content. Counting, not just testing
membership, keeps two identical messages of the backup as two.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pyrage
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
from .packs import Location, locate, read_blob
from .store import Store, StoreError, get_store

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
        try:
            if target not in existing:
                session.create_folder(target)
                session.subscribe(target)
                existing[target] = MailFolder(target, folder.delimiter, subscribed=True)
                present: Counter[str] = Counter()
            else:
                session.select(target)
                present = _present(session, entries)
        except (CommandRefused, UnexpectedAnswer) as exc:
            raise RestoreFailed(f"cannot open or create folder {target!r}: {exc}") from exc
        todo = []
        for entry in entries:
            if present[entry.sha256] > 0:
                present[entry.sha256] -= 1
            else:
                todo.append(entry)
        skipped = len(entries) - len(todo)
        with transaction.atomic():
            jobs.heartbeat(
                self.job,
                self.token,
                messages_done=F("messages_done") + skipped,
                messages_skipped=F("messages_skipped") + skipped,
            )
        chunks = list(_append_batches(todo))
        locations = locate(self.job.repository_id, (e.sha256 for e in todo))
        ahead: Future[list[tuple[Entry, bytes]]] | None = None
        for number, chunk in enumerate(chunks):
            opened = ahead.result() if ahead else self._open(chunk, locations, keys)
            if number + 1 < len(chunks):  # decrypt the next chunk while this one uploads
                ahead = opener.submit(self._open, chunks[number + 1], locations, keys)
            self._append(session, target, opened)

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
        try:
            session.append(target, [(raw, e.flags, e.internal_date) for e, raw in opened])
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
        with transaction.atomic():
            jobs.heartbeat(
                self.job,
                self.token,
                messages_done=F("messages_done") + len(opened),
                messages_restored=F("messages_restored") + len(opened),
                bytes_restored=F("bytes_restored") + sum(len(raw) for _e, raw in opened),
            )


def _present(session: MailboxSession, entries: list[Entry]) -> Counter[str]:
    """How many copies of each wanted message the selected folder already holds."""
    heads = session.heads(["MESSAGE-ID"])
    wanted = {(e.message_id, e.size) for e in entries}
    hashes = {e.sha256 for e in entries}
    candidates = [
        (uid, head.size)
        for uid, head in heads.items()
        if (message_id(head.header), head.size) in wanted
    ]
    present: Counter[str] = Counter()
    for batch in batches(candidates, lambda c: c[1], count=APPEND_MESSAGES, max_bytes=APPEND_BYTES):
        for raw in session.bodies(uid for uid, _size in batch).values():
            digest = hashlib.sha256(raw).hexdigest()
            if digest in hashes:
                present[digest] += 1
    return present


def _append_batches(entries: list[Entry]) -> Iterator[list[Entry]]:
    return batches(entries, lambda e: e.size, count=APPEND_MESSAGES, max_bytes=APPEND_BYTES)
