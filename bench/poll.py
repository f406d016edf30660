#!/usr/bin/env python
"""Poll benchmark: Postamt's full poll of N mailboxes against ``doveadm quota get -A``.

Starts a private Dovecot and a Celery worker process, provisions N mailboxes (default 10,000;
every 20th gets mail) and runs full polls through the real path (beat task -> Redis -> worker ->
IMAP as master user -> PostgreSQL). The first poll after provisioning is timed but not compared:
Dovecot creates each mailbox's folders and indexes on its first login. The second poll is the
steady state every interval sees, timed on both of Postamt's paths: the doveadm HTTP API batch
(used where the server offers it) and the portable IMAP path (a master login per mailbox).
``doveadm -f json quota get -A`` is timed on the same server in the same state. Postamt
measures more than doveadm does (every folder's size and message count, not only the quota
totals) and stores it all. Last line: ``poll ratio=X.XX (target >= 0.50)``.

    .venv/bin/python bench/poll.py [--mailboxes N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import json
import smtplib
import subprocess
import time

from _harness import setup_django, start_dovecot, start_worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8, help="IMAP sessions per server")
    args = parser.parse_args()

    setup_django()
    from accounts.models import Customer
    from mailboxes.models import GIB, MIB, Domain, Mailbox, MailServer, Plan, PollRun
    from mailboxes.passwords import hash_password
    from mailboxes.services import mail_server_register_local
    from mailboxes.tasks import poll_all

    dovecot = start_dovecot()
    worker = None
    try:
        server = mail_server_register_local(dovecot)
        server.poll_concurrency = args.concurrency
        server.save()
        plan = Plan.objects.create(name="bench", default_quota_bytes=100 * MIB, max_quota_bytes=GIB)
        customer = Customer.objects.create(name="bench", contact_email="bench@example.org")
        domain = Domain.objects.create(name="bench.example", customer=customer, mail_server=server)
        # One hash for all: argon2 for each of 10,000 mailboxes would take minutes.
        password_hash = hash_password("Bench-Password-1")
        Mailbox.objects.bulk_create(
            [
                Mailbox(
                    domain=domain,
                    local_part=f"u{i}",
                    address=f"u{i}@bench.example",
                    protocol="imap",
                    plan=plan,
                    mail_server=server,
                    quota_bytes=100 * MIB,
                    password_hash=password_hash,
                    storage_path=f"bench.example/u{i}",
                )
                for i in range(args.mailboxes)
            ],
            batch_size=2000,
        )
        with smtplib.LMTP(dovecot.listen, dovecot.lmtp_port) as lmtp:
            for i in range(0, args.mailboxes, 20):
                lmtp.sendmail(
                    "s@example.org",
                    [f"u{i}@bench.example"],
                    f"Subject: bench {i}\r\n\r\n{'x' * 5000}\r\n",
                )
        print(f"provisioned {args.mailboxes} mailboxes, {args.mailboxes // 20} with mail")

        worker = start_worker("default,poll")

        def full_poll() -> float:
            PollRun.objects.all().delete()  # a new interval slot
            started = time.perf_counter()
            poll_all.delay().get(timeout=60)
            run = PollRun.objects.get()
            while run.status not in (PollRun.Status.DONE, PollRun.Status.FAILED):
                time.sleep(0.05)
                run.refresh_from_db()
            assert run.status == PollRun.Status.DONE, run.error
            assert run.mailboxes_done == args.mailboxes, run.mailboxes_done
            return time.perf_counter() - started

        MailServer.objects.filter(pk=server.pk).update(doveadm_port=None)
        cold_seconds = full_poll()
        print(
            f"first poll over IMAP (Dovecot creates every mailbox's folders): "
            f"{cold_seconds:.2f} s = {args.mailboxes / cold_seconds:.0f} mailboxes/s"
        )
        imap_seconds = full_poll()
        MailServer.objects.filter(pk=server.pk).update(doveadm_port=dovecot.doveadm_port)
        postamt_seconds = full_poll()

        doveadm_seconds = float("inf")
        for _ in range(2):  # the better of two: its first run may recount a fresh quota
            started = time.perf_counter()
            out = subprocess.run(
                ["doveadm", "-c", str(dovecot.config_file), "-f", "json", "quota", "get", "-A"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            doveadm_seconds = min(doveadm_seconds, time.perf_counter() - started)
        users = {row["username"] for row in json.loads(out)}
        assert len(users) == args.mailboxes, len(users)

        postamt_rate = args.mailboxes / postamt_seconds
        doveadm_rate = args.mailboxes / doveadm_seconds
        print(
            f"postamt, doveadm HTTP batch: {args.mailboxes} mailboxes in {postamt_seconds:.2f} s"
            f" = {postamt_rate:.0f} mailboxes/s (totals + every folder, stored with history)"
        )
        print(
            f"postamt, portable IMAP path ({args.concurrency} sessions): {imap_seconds:.2f} s = "
            f"{args.mailboxes / imap_seconds:.0f} mailboxes/s (ratio "
            f"{args.mailboxes / imap_seconds / doveadm_rate:.2f})"
        )
        print(f"doveadm quota get -A: {doveadm_seconds:.2f} s = {doveadm_rate:.0f} mailboxes/s")
        print(f"poll ratio={postamt_rate / doveadm_rate:.2f} (target >= 0.50)")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        dovecot.stop()


if __name__ == "__main__":
    main()
