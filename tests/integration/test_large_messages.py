"""Large messages against the real Dovecot, through a real Celery worker process: backed up
and restored in pieces, with the worker's memory bounded, and safe to kill mid-stream."""

from __future__ import annotations

import base64
import io
import os
import signal
import smtplib
import subprocess
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from backups import jobs, services
from backups.models import BackupJob, Blob, JobStatus, Pack, RestoreJob, Snapshot
from backups.packs import pack_key
from backups.store import get_store
from backups.tasks import backup_mailbox, restore
from mailboxes.models import MIB
from mailserver.errors import OverQuota
from mailserver.imap import PIECE, master_session
from tests.backups import helpers
from tests.backups.helpers import append, imap, mailbox_contents, message
from tests.factories import make_mailbox
from tests.integration.test_backups import empty, wait
from tests.workers import start_worker_process, stop_workers

pytestmark = pytest.mark.integration

backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
restore_side = helpers.restore_side

LARGE = 50 * MIB
# The worker's resident memory may grow by this much above what it held before a task: a
# few pieces of ``mailserver.imap.PIECE`` (1 MiB) in flight and what the allocator keeps of
# them (measured: 7.4 MiB backing up, 3.9 MiB restoring). Holding the message whole would
# take at least its 50 MiB.
MEMORY_BOUND = 16 * MIB


def large_message(size: int, tag: str) -> bytes:
    """Base64 of random bytes in 76-column lines: what an attachment looks like, and zstd
    cannot shrink it to nothing (a bound met only by compression would prove little)."""
    head = (
        f"From: Big Sender <big@example.org>\r\nTo: anna@example.org\r\n"
        f"Subject: the {tag} attachment\r\nMessage-ID: <{tag}@example.org>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    lines = size * 3 // 4 // 57
    body = b"".join(base64.b64encode(os.urandom(57)) + b"\r\n" for _ in range(lines))
    return head + body


def deliver_large(dovecot, address: str, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    with smtplib.LMTP(dovecot.listen, dovecot.lmtp_port) as lmtp:
        assert lmtp.sendmail("big@example.org", [address], raw) == {}


def append_small(dovecot, address: str, subject: str) -> None:  # type: ignore[no-untyped-def]
    with imap(dovecot, address) as client:
        append(client, "INBOX", message(subject), (b"\\Seen",), helpers.DATE)


def large_worker_env(backup_keys) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return helpers.backup_worker_env(
        backup_keys, BACKUP_IDENTITY_FILE=str(backup_keys.identity_file), BACKUP_DEAD_SECONDS="3"
    )


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _colon, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def growth_while(worker: subprocess.Popen[bytes], run) -> int:  # type: ignore[no-untyped-def]
    """How far above its resident memory before ``run`` the worker's peak went during it.
    Writing 5 to clear_refs resets the kernel's peak (VmHWM) to the current RSS, so the
    start-up of the worker and earlier tasks do not count."""
    before = memory(worker.pid)["VmRSS"]
    Path(f"/proc/{worker.pid}/clear_refs").write_text("5")
    run()
    return memory(worker.pid)["VmHWM"] - before


def backup_through(worker_queue: str, mailbox) -> BackupJob:  # type: ignore[no-untyped-def]
    job = BackupJob.objects.create(repository=services.repository_for(mailbox), requested_by="t")
    backup_mailbox.apply_async((job.pk,), queue=worker_queue)
    return wait(job, timeout=300)


def restore_whole(job, mailbox) -> RestoreJob:  # type: ignore[no-untyped-def]
    """A restore of the whole mailbox from what ``job`` backed up (to be sent to a worker)."""
    return RestoreJob.objects.create(
        repository=job.repository,
        snapshot=job.snapshot,
        target_mailbox=mailbox,
        scope="mailbox",
        requested_by="t",
    )


def test_a_50_mb_message_is_backed_up_and_restored_byte_identically_in_bounded_memory(
    dovecot, mail_server, restore_side, backup_keys
):
    anna = make_mailbox("anna")
    append_small(dovecot, anna.address, "small")
    queue = f"large-{os.getpid()}"
    worker = start_worker_process(queue, large_worker_env(backup_keys))
    try:
        warm = backup_through(queue, anna)  # imports, connections: not what is measured
        assert warm.status == JobStatus.DONE, warm.error
        deliver_large(dovecot, anna.address, large_message(LARGE, "fifty"))
        before = mailbox_contents(dovecot, anna.address)

        jobs: list[BackupJob | RestoreJob] = []
        backup_growth = growth_while(worker, lambda: jobs.append(backup_through(queue, anna)))
        job = jobs[0]
        assert job.status == JobStatus.DONE, job.error
        big = Blob.objects.get(repository=job.repository, size__gt=LARGE)
        assert Pack.objects.get(blobs=big).blobs.count() == 1  # a pack of its own

        empty(dovecot, anna.address)
        restoring = restore_whole(job, anna)

        def run_restore() -> None:
            restore.apply_async((restoring.pk,), queue=queue)
            jobs.append(wait(restoring, timeout=300))

        restore_growth = growth_while(worker, run_restore)
        assert jobs[1].status == JobStatus.DONE, jobs[1].error
    finally:
        stop_workers(worker)

    assert mailbox_contents(dovecot, anna.address) == before  # byte for byte, flags, dates
    assert jobs[1].messages_restored == 2
    print(
        f"peak RSS growth: backup {backup_growth / MIB:.1f}, restore {restore_growth / MIB:.1f} MiB"
    )
    assert max(backup_growth, restore_growth) < MEMORY_BOUND


def test_a_worker_killed_while_streaming_a_large_message_leaves_a_restorable_chain(
    dovecot, mail_server, restore_side, backup_keys, settings
):
    anna = make_mailbox("anna")
    for number in range(3):
        append_small(dovecot, anna.address, f"small {number}")
    settings.BACKUP_DEAD_SECONDS = 3  # as the worker has it: interrupted 3 s after the kill
    queue = f"large-kill-{os.getpid()}"
    env = large_worker_env(backup_keys)
    first = start_worker_process(queue, env)
    second = None
    try:
        earlier = backup_through(queue, anna)
        assert earlier.status == JobStatus.DONE, earlier.error
        deliver_large(dovecot, anna.address, large_message(LARGE, "killed"))
        append_small(dovecot, anna.address, "after the big one")
        before = mailbox_contents(dovecot, anna.address)

        job = BackupJob.objects.create(repository=earlier.repository, requested_by="t")
        backup_mailbox.apply_async((job.pk,), queue=queue)
        deadline = time.monotonic() + 120
        # The small messages weigh a few KiB; the large one is counted a piece at a time.
        while job.bytes_fetched < PIECE:
            assert time.monotonic() < deadline and job.is_active, "the stream did not start"
            time.sleep(0.01)
            job.refresh_from_db()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING and job.bytes_fetched < LARGE
        assert Snapshot.objects.filter(repository=job.repository).count() == 1
        # What the killed run was writing is not in the store (the file had no name).
        prefix = str(job.repository.key)
        listed = set(get_store().list(f"{prefix}/packs"))
        recorded = {pack_key(prefix, name) for name in Pack.objects.values_list("name", flat=True)}
        assert listed == recorded

        second = start_worker_process(queue, env)
        while not jobs.resume(BackupJob, job.pk):  # what "Back up now" does once interrupted
            assert time.monotonic() < deadline, "the killed run was not seen as interrupted"
            time.sleep(0.1)
        backup_mailbox.apply_async((job.pk,), queue=queue)
        job = wait(job, timeout=300)
        assert job.status == JobStatus.DONE, job.error

        empty(dovecot, anna.address)
        restoring = restore_whole(job, anna)
        restore.apply_async((restoring.pk,), queue=queue)
        restoring = wait(restoring, timeout=300)
    finally:
        stop_workers(first, second)

    assert restoring.status == JobStatus.DONE, restoring.error
    assert mailbox_contents(dovecot, anna.address) == before  # every message, byte for byte
    listed = set(get_store().list(f"{prefix}/packs"))
    assert listed == {
        pack_key(prefix, name) for name in Pack.objects.values_list("name", flat=True)
    }
    report = io.StringIO()
    call_command("backup_check", anna.address, "--read-data", stdout=report)
    assert report.getvalue().rstrip().endswith(": OK"), report.getvalue()


def test_the_adapter_writes_and_reads_a_message_in_pieces_and_reports_a_full_mailbox(
    dovecot, mail_server
):
    anna = make_mailbox("anna", quota_bytes=4 * MIB)
    raw = large_message(5 * PIECE // 2, "pieces")  # three pieces, the last one half

    with master_session(anna.mail_server, anna.address) as session:
        session.append_file("INBOX", io.BytesIO(raw), len(raw), ["\\Seen"], helpers.DATE)
        session.select("INBOX")
        (uid,) = session.uids()
        pieces = list(session.body_pieces(uid, len(raw)))
        with pytest.raises(OverQuota):
            session.append_file("INBOX", io.BytesIO(raw), len(raw), [], helpers.DATE)
        assert session.uids() == [uid]  # the session goes on after the refusal

    assert [len(piece) for piece in pieces] == [PIECE, PIECE, len(raw) - 2 * PIECE]
    assert b"".join(pieces) == raw
    assert mailbox_contents(dovecot, anna.address)["INBOX"][0][1] == ("\\Seen",)
