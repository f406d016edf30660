#!/usr/bin/env python
"""Backup benchmark: Postamt's backup and restore against mbsync and a bare APPEND loop.

Starts a private Dovecot and a Celery worker process, fills one mailbox with N messages
(default 2,000 of ~20 KB, ~40 MB, text as mail mostly is), then in the same run times:

- Postamt's full backup and its no-change incremental, through the real path (service ->
  Redis -> worker -> IMAP as master user -> zstd + age -> fsynced files + PostgreSQL),
  against ``mbsync`` pulling the same mailbox as the master user into a Maildir with its
  default ``FSync yes``, and mbsync's no-op resync;
- Postamt's restore of the snapshot into a new folder (decrypt, check, dedupe, APPEND with
  flags and dates) against a bare loop that APPENDs the same messages, already in memory,
  over one connection (with TCP_NODELAY, so it is not slowed by Nagle's algorithm).

Then the nightly pass over a fleet (``--fleet``, default 10,000 mailboxes of one message
each, on the same server): every mailbox backed up once by the scheduled pass, then 1 % of
them get new mail, and the next scheduled pass is timed from sending ``backups.run_due`` to
the last changed mailbox's snapshot, with the workers of ``make run`` (one worker, two
processes, all queues): ask the server, skip the unchanged, back up the changed, record.

With ``--large MB`` it measures only memory instead: one message of that size (default
1024: 1 GB), base64 of random bytes as an attachment is, generated into a file and APPENDed
to Dovecot in pieces, backed up and restored (into a new folder) by a worker process, whose
peak RSS (the kernel's VmHWM of the prefork child that runs the task, reset between the two)
is reported; the restored copy is compared with the original by SHA-256. Last line:
``large backup_rss_mb=X restore_rss_mb=Y (target <200)``.

Each figure is the median of ``--repeat`` runs. Last line:
``backup full=X.XX incr=Y.YY restore=Z.ZZ fleet_s=S.S (targets full<=1.00 incr<=5.00
restore>=0.80 fleet_s<=60)`` (Postamt/reference for the times, reference/Postamt for the
restore speed, seconds for the fleet pass).

With ``--fleet-imap`` the fleet pass is timed a second time as for a server without the
doveadm API (another 1 % changed; the folder states asked over IMAP), printed on its own line.

    .venv/bin/python bench/backup.py [--messages N] [--size BYTES] [--repeat R] [--fleet N]
        [--fleet-imap]
    .venv/bin/python bench/backup.py --large 1024
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import shutil
import smtplib
import socket
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postamt_backup_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")

from _harness import setup_django, start_dovecot, start_worker  # noqa: E402


def _vocabulary(size: int = 5000) -> list[str]:
    rng = random.Random(7)
    return [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 11)))
        for _ in range(size)
    ]


WORDS = _vocabulary()
# Word frequencies fall off with rank as in natural language (Zipf), so the text compresses
# about as well as real mail does (zstd: about 40 %).
WEIGHTS = [1 / rank for rank in range(1, len(WORDS) + 1)]


def make_message(number: int, size: int, rng: random.Random) -> bytes:
    header = (
        f"From: Sender {number % 50} <sender{number % 50}@example.org>\r\n"
        f"To: anna@bench.example\r\nSubject: Bench message {number}\r\n"
        f"Message-ID: <{number}.{rng.getrandbits(48)}@bench.example>\r\n"
        "Date: Mon, 03 Mar 2025 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    lines, length = [], len(header)
    while length < size:
        line = " ".join(rng.choices(WORDS, WEIGHTS, k=12))[:76]
        lines.append(line)
        length += len(line) + 2
    return (header + "\r\n".join(lines) + "\r\n").encode()


def imap_client(dovecot, address: str):  # type: ignore[no-untyped-def]
    from imapclient import IMAPClient

    from tests.factories import PASSWORD

    client = IMAPClient(dovecot.listen, port=dovecot.imap_port, ssl=False)
    client.login(address, PASSWORD)
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


def append_all(dovecot, address, folder, raws, flags, date) -> float:  # type: ignore[no-untyped-def]
    """The reference: one APPEND after the other over one connection."""
    client = imap_client(dovecot, address)
    client.create_folder(folder)
    started = time.perf_counter()
    for raw, flag in zip(raws, flags, strict=True):
        client.append(folder, raw, flags=flag, msg_time=date)
    seconds = time.perf_counter() - started
    client.logout()
    return seconds


def wait(job):  # type: ignore[no-untyped-def]
    while True:
        job.refresh_from_db()
        if not job.is_active:
            assert job.status == "done", job.error
            return job
        time.sleep(0.005)


def mbsync_config(work: Path, dovecot, address: str, password: str) -> Path:  # type: ignore[no-untyped-def]
    """mbsync pulling everything into ``work``, as the master user, with its defaults."""
    config = work / "mbsyncrc"
    config.write_text(
        f"IMAPAccount bench\nHost {dovecot.listen}\nPort {dovecot.imap_port}\n"
        f"User {address}*{dovecot.master_user}\nPass {password}\nSSLType None\n"
        "AuthMechs LOGIN\n\nIMAPStore far\nAccount bench\n\n"
        f"MaildirStore near\nPath {work}/\nInbox {work}/INBOX\n"
        "SubFolders Verbatim\n\n"
        "Channel bench\nFar :far:\nNear :near:\nPatterns *\nCreate Near\nSync Pull\n"
        "SyncState *\n"
    )
    return config


def run_mbsync(config: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["mbsync", "-q", "-c", str(config), "-a"], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=20_000, help="bytes per message")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fleet", type=int, default=10_000, help="mailboxes; 0: no fleet pass")
    parser.add_argument("--large", type=int, default=0, help="MB: measure one large message")
    parser.add_argument(
        "--fleet-imap",
        action="store_true",
        help="time the fleet pass again without the doveadm API (folder states over IMAP)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="postamt-backup-bench-", dir="/var/tmp"))
    identity_file = work / "identity.txt"
    # The worker process reads these from its environment, as in production.
    os.environ["BACKUP_ROOT"] = str(work / "store")
    setup_django()
    from backups.crypto import write_identity_file

    os.environ["BACKUP_PUBLIC_KEY"] = write_identity_file(identity_file)
    os.environ["BACKUP_IDENTITY_FILE"] = str(identity_file)
    from django.conf import settings

    settings.BACKUP_ROOT = work / "store"
    settings.BACKUP_PUBLIC_KEY = os.environ["BACKUP_PUBLIC_KEY"]
    settings.BACKUP_IDENTITY_FILE = str(identity_file)

    from backups import services
    from backups.models import Repository, RestoreJob
    from backups.tasks import restore
    from mailboxes.models import GIB, Mailbox, Plan
    from mailboxes.selectors import worker_queues
    from mailboxes.services import mail_server_register_local
    from tests.factories import make_mailbox, make_plan

    dovecot = start_dovecot()
    worker = None
    try:
        mail_server_register_local(dovecot)
        plan = make_plan(max_quota_bytes=4 * GIB)
        mailbox: Mailbox = make_mailbox("anna", plan=plan, quota_bytes=4 * GIB)
        if args.large:
            worker = start_worker("backup")
            large_message(mailbox, args.large * 1_000_000, work, worker)
            return
        rng = random.Random(2025)
        raws = [make_message(i, args.size, rng) for i in range(args.messages)]
        flags = [(b"\\Seen",) if i % 3 else () for i in range(args.messages)]
        client = imap_client(dovecot, mailbox.address)
        for start in range(0, len(raws), 200):
            client.multiappend(
                "INBOX",
                [
                    {"msg": raw, "flags": flags[start + i]}
                    for i, raw in enumerate(raws[start : start + 200])
                ],
            )
        client.logout()
        total_mb = sum(map(len, raws)) / 1e6
        print(f"mailbox: {args.messages} messages, {total_mb:.1f} MB")

        worker = start_worker(",".join(worker_queues(kind="backup")))
        postamt_full, postamt_incr, mbsync_full, mbsync_noop = [], [], [], []
        in_worker: dict[str, list[float]] = {"full": [], "incr": []}
        # Nothing is deleted while timing: ext4 allocates inodes slowly next to ones freed
        # seconds ago, which would penalise whichever side writes after a deletion.
        for round_number in range(args.repeat):
            Repository.objects.all().delete()  # a new repository: a new directory
            started = time.perf_counter()
            job = wait(services.backup_request(mailbox=mailbox, actor="bench"))
            postamt_full.append(time.perf_counter() - started)
            in_worker["full"].append((job.finished_at - job.started_at).total_seconds())
            assert job.snapshot.messages == args.messages, job.snapshot.messages
            started = time.perf_counter()
            again = wait(services.backup_request(mailbox=mailbox, actor="bench"))
            postamt_incr.append(time.perf_counter() - started)
            in_worker["incr"].append((again.finished_at - again.started_at).total_seconds())
            assert again.messages_total == 0 and again.snapshot.messages == args.messages

            maildir = work / f"maildir-{round_number}"
            maildir.mkdir()
            config = mbsync_config(
                maildir, dovecot, mailbox.address, settings.POSTAMT_MASTER_PASSWORD
            )
            mbsync_full.append(run_mbsync(config))
            # mbsync's first run after a pull waits for the Maildir's clock to move on (about
            # one second); the next one is its real no-op.
            run_mbsync(config)
            mbsync_noop.append(run_mbsync(config))
            inbox = maildir / "INBOX"
            pulled = len(list((inbox / "cur").iterdir())) + len(list((inbox / "new").iterdir()))
            assert pulled == args.messages, pulled

        snapshot = job.snapshot
        postamt_restore, append_loop = [], []
        for round_number in range(args.repeat):
            # Fresh folders each round, nothing deleted; the order alternates.
            for side in ("reference", "postamt") if round_number % 2 else ("postamt", "reference"):
                if side == "reference":
                    append_loop.append(
                        append_all(
                            dovecot,
                            mailbox.address,
                            f"Reference {round_number}",
                            raws,
                            flags,
                            snapshot.taken_at,
                        )
                    )
                    continue
                restore_job = RestoreJob.objects.create(
                    repository=snapshot.repository,
                    snapshot=snapshot,
                    target_mailbox=mailbox,
                    scope=RestoreJob.Scope.MAILBOX,
                    target_folder=f"Restored {round_number}",
                    requested_by="bench",
                )
                started = time.perf_counter()
                restore.apply_async((restore_job.pk,), queue=settings.BACKUP_RESTORE_QUEUE)
                restore_job = wait(restore_job)
                postamt_restore.append(time.perf_counter() - started)
                assert restore_job.messages_restored == args.messages

        report("postamt full backup", postamt_full)
        report("  of which the task", in_worker["full"])
        report("mbsync full pull", mbsync_full)
        report("postamt incremental", postamt_incr)
        report("  of which the task", in_worker["incr"])
        report("mbsync no-op resync", mbsync_noop)
        report("postamt restore", postamt_restore)
        report("bare APPEND loop", append_loop)
        repository_dir = work / "store" / str(snapshot.repository.key)
        stored = sum(f.stat().st_size for f in repository_dir.rglob("*") if f.is_file())
        print(f"stored: {stored / 1e6:.1f} MB for {total_mb:.1f} MB of mail (zstd + age)")
        median = statistics.median
        full = median(postamt_full) / median(mbsync_full)
        incr = median(postamt_incr) / median(mbsync_noop)
        restore_ratio = median(append_loop) / median(postamt_restore)
        worker.terminate()
        worker.wait(30)
        worker = None
        fleet = ""
        if args.fleet:
            worker = start_worker(",".join(worker_queues()), concurrency=2)  # make run's
            # The fleet alone is due: the mailbox above, with its restored folders, is not.
            Plan.objects.filter(pk=plan.pk).update(backup_enabled=False)
            fleet = f" fleet_s={fleet_pass(dovecot, args.fleet, make_plan(), args.fleet_imap):.1f}"
        print(
            f"backup full={full:.2f} incr={incr:.2f} restore={restore_ratio:.2f}{fleet} "
            "(targets full<=1.00 incr<=5.00 restore>=0.80 fleet_s<=60)"
        )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        dovecot.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(dovecot.root, ignore_errors=True)  # with --large, 2 GB of mail


def fleet_pass(dovecot, count: int, plan, imap_pass: bool) -> float:  # type: ignore[no-untyped-def]
    """Seconds of the scheduled pass over ``count`` mailboxes of which 1 % changed; with
    ``imap_pass``, the same pass again as for a server without the doveadm API (printed)."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import Customer
    from backups.models import ACTIVE, BackupJob, JobStatus, Repository
    from backups.tasks import run_due
    from mailboxes.models import MIB, Domain, Mailbox, MailServer
    from mailboxes.passwords import hash_password

    server = MailServer.objects.get()
    customer = Customer.objects.create(name="fleet", contact_email="fleet@example.org")
    domain = Domain.objects.create(name="fleet.example", customer=customer, mail_server=server)
    password_hash = hash_password("Bench-Password-1")  # one hash: argon2 10,000 times is slow
    Mailbox.objects.bulk_create(
        [
            Mailbox(
                domain=domain,
                local_part=f"u{i}",
                address=f"u{i}@fleet.example",
                protocol="imap",
                plan=plan,
                mail_server=server,
                quota_bytes=100 * MIB,
                password_hash=password_hash,
                storage_path=f"fleet.example/u{i}",
            )
            for i in range(count)
        ],
        batch_size=2000,
    )
    addresses = [f"u{i}@fleet.example" for i in range(count)]
    started = time.perf_counter()
    deliver(dovecot, addresses, "welcome")
    print(
        f"fleet: {count} mailboxes, one message each, delivered in "
        f"{time.perf_counter() - started:.1f} s"
    )

    def scheduled_pass() -> tuple[float, list[int]]:
        """Make every mailbox due, send the beat task, wait until each is backed up or
        found unchanged."""
        hours = plan.backup_interval_hours + 1
        fleet = Repository.objects.filter(mailbox__plan=plan)
        fleet.update(last_backup_at=timezone.now() - timedelta(hours=hours))
        began = timezone.now()
        started = time.perf_counter()
        sent = run_due.delay().get(timeout=3600)
        while (
            BackupJob.objects.filter(pk__in=sent, status__in=ACTIVE).exists()
            or fleet.filter(last_backup_at__lt=began).exists()
        ):
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        failed = BackupJob.objects.filter(pk__in=sent).exclude(status=JobStatus.DONE).count()
        assert not failed, f"{failed} backups failed"
        return seconds, sent

    # The first backups are written straight into the database from the server's state (a
    # snapshot row and its folder states, no messages stored): backing up 10,000 mailboxes
    # for real would take most of an hour here, and only the state matters to the pass. A
    # changed mailbox's backup then fetches its whole INBOX, more than a real incremental.
    if imap_pass:
        # A mailbox's first IMAP login creates Dovecot's special-use folders; a real first
        # backup has logged in. The seeded snapshots must see them too, or the pass over IMAP
        # would find every mailbox changed.
        from django.conf import settings

        from mailserver.imap import imap_folder_states

        started = time.perf_counter()
        imap_folder_states(server, addresses, connections=settings.BACKUP_STATUS_CONNECTIONS)
        print(
            f"fleet: first IMAP login of {count} mailboxes, folder states read: "
            f"{time.perf_counter() - started:.1f} s"
        )
    seed_snapshots(server, plan)
    changed = addresses[::100]  # 1 %
    deliver(dovecot, changed, "news")
    seconds, sent = scheduled_pass()
    assert len(sent) == len(changed), (len(sent), len(changed))
    print(
        f"fleet: scheduled pass, {len(changed)} of {count} changed "
        f"({len(sent)} backed up, {count - len(sent)} skipped unopened): {seconds:.1f} s"
    )
    if imap_pass:
        # The same pass for a server without the doveadm API: the folder states over IMAP,
        # one session per due mailbox (``BACKUP_STATUS_CONNECTIONS`` at a time).
        port = server.doveadm_port
        MailServer.objects.filter(pk=server.pk).update(doveadm_port=None)
        changed = addresses[1::100]
        deliver(dovecot, changed, "more news")
        try:
            imap_seconds, sent = scheduled_pass()
        finally:
            MailServer.objects.filter(pk=server.pk).update(doveadm_port=port)
        assert len(sent) == len(changed), (len(sent), len(changed))
        print(
            f"fleet over IMAP (no doveadm API): scheduled pass, {len(changed)} of {count} "
            f"changed: {imap_seconds:.1f} s ({imap_seconds / seconds:.1f}x the doveadm pass)"
        )
    return seconds


def seed_snapshots(server, plan) -> None:  # type: ignore[no-untyped-def]
    from django.utils import timezone

    from backups.models import FolderState, Repository, Snapshot
    from mailboxes.models import Mailbox
    from mailserver.doveadm import doveadm_folder_states

    states, subscribed = doveadm_folder_states(server)
    now = timezone.now()
    mailboxes = list(Mailbox.objects.filter(plan=plan).select_related("domain"))
    repositories = Repository.objects.bulk_create(
        [
            Repository(
                mailbox=m,
                address=m.address,
                customer_id=m.domain.customer_id,
                seq=1,
                last_backup_at=now,
            )
            for m in mailboxes
        ],
        batch_size=2000,
    )
    Snapshot.objects.bulk_create(
        [
            Snapshot(
                repository=r,
                seq=1,
                taken_at=now,
                manifest_key="bench-seeded",
                folders=len(states[r.address]),
                messages=0,
                size_bytes=0,
            )
            for r in repositories
        ],
        batch_size=2000,
    )
    FolderState.objects.bulk_create(
        [
            FolderState(
                repository=r,
                name=name,
                delimiter="/",
                uidvalidity=uidvalidity,
                uidnext=uidnext,
                messages=messages,
                highestmodseq=modseq,
                subscribed=name in subscribed.get(r.address, set()),
                seq=1,
            )
            for r in repositories
            for name, (uidvalidity, uidnext, messages, modseq) in states[r.address].items()
        ],
        batch_size=2000,
    )


def deliver(dovecot, addresses: list[str], subject: str) -> None:  # type: ignore[no-untyped-def]
    """One small message to each address over LMTP, four connections at once (smtplib reads
    one answer to DATA, so one recipient a transaction)."""
    from concurrent.futures import ThreadPoolExecutor

    def send(share: list[str]) -> None:
        with smtplib.LMTP(dovecot.listen, dovecot.lmtp_port) as lmtp:
            for address in share:
                lmtp.sendmail(
                    "s@example.org",
                    [address],
                    f"Subject: {subject}\r\nMessage-ID: <{subject}.{address}>\r\n\r\n"
                    f"{'x' * 2000}\r\n",
                )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, [addresses[i::4] for i in range(4)]))


def large_message(mailbox, size: int, work: Path, worker) -> None:  # type: ignore[no-untyped-def]
    """Back up and restore one message of ``size`` bytes; print the worker's peak RSS."""
    from backups import services
    from backups.models import RestoreJob
    from mailserver.imap import master_session

    started = time.perf_counter()
    path = work / "large.eml"
    with path.open("wb") as out:
        out.write(
            b"From: Big <big@example.org>\r\nTo: anna@bench.example\r\n"
            b"Subject: a large attachment\r\nMessage-ID: <large@bench.example>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
        )
        while out.tell() < size:
            text = base64.b64encode(os.urandom(57 * 10_000))
            out.write(b"".join(text[i : i + 76] + b"\r\n" for i in range(0, len(text), 76)))
    length = path.stat().st_size
    server = mailbox.mail_server
    with master_session(server, mailbox.address, timeout=600) as session, path.open("rb") as raw:
        session.append_file("INBOX", raw, length, [], datetime.now(UTC))
    print(f"large message: {length / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s")

    child = task_process(worker.pid)
    started = time.perf_counter()
    job = wait(services.backup_request(mailbox=mailbox, actor="bench"))
    backup_s, backup_rss = time.perf_counter() - started, peak_rss(child)
    Path(f"/proc/{child}/clear_refs").write_text("5")  # the peak starts again from here
    started = time.perf_counter()
    target = services.restored_folder_name(job.snapshot, "en")
    restoring = RestoreJob.objects.create(
        repository=job.repository,
        snapshot=job.snapshot,
        target_mailbox=mailbox,
        scope="mailbox",
        target_folder=target,
        requested_by="bench",
    )
    from backups.tasks import restore

    restore.delay(restoring.pk)
    wait(restoring)
    restore_s, restore_rss = time.perf_counter() - started, peak_rss(child)
    print(f"backup:  {backup_s:.1f} s, worker peak RSS {backup_rss:.0f} MB")
    print(f"restore: {restore_s:.1f} s, worker peak RSS {restore_rss:.0f} MB")
    original = hashlib.sha256()
    with path.open("rb") as raw:
        while piece := raw.read(1 << 20):
            original.update(piece)
    with master_session(server, mailbox.address, timeout=600) as session:
        # The snapshot also has the empty folders Dovecot creates (Sent, Trash, ...).
        folder = next(f.name for f in session.folders() if f.name == f"{target}{f.delimiter}INBOX")
        session.select(folder)
        (uid,) = session.uids()
        restored = hashlib.sha256()
        for piece in session.body_pieces(uid, length):
            restored.update(piece)
    assert restored.hexdigest() == original.hexdigest(), "the restored message differs"
    print("the restored message is byte-identical")
    print(f"large backup_rss_mb={backup_rss:.0f} restore_rss_mb={restore_rss:.0f} (target <200)")


def task_process(worker_pid: int) -> int:
    """The prefork child that runs the tasks (concurrency 1: there is one)."""
    (child,) = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    return int(child)


def peak_rss(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmHWM for process {pid}")


def report(label: str, seconds: list[float]) -> None:
    runs = ", ".join(f"{s:.3f}" for s in seconds)
    print(f"{label + ':':22} {statistics.median(seconds):.3f} s  (runs: {runs})")


if __name__ == "__main__":
    main()
