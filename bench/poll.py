#!/usr/bin/env python
"""Poll benchmark: Postamt's full poll of N mailboxes against ``doveadm quota get -A``.

Starts a private Dovecot and a Celery worker process, provisions N mailboxes (default 10,000;
every 20th gets mail) and runs full polls through the real path (beat task -> Redis -> worker ->
IMAP as master user -> PostgreSQL). The first poll after provisioning is timed but not compared:
Dovecot creates each mailbox's folders and indexes on its first login. The next polls are the
steady state every interval sees, timed on both of Postamt's paths: the doveadm HTTP API
(used where the server offers it; ``POSTAMT_POLL_DOVEADM_REQUESTS`` requests at once) and the
portable IMAP path (a master login per mailbox). ``doveadm -f json quota get -A`` is timed on
the same server in the same state, alternating with Postamt's, the best of ``--rounds`` each.
Postamt's doveadm requests are also timed alone, split by user mask and as one request for
all, alternated: what Dovecot
takes, the rest being Postamt's storing. Postamt
measures more than doveadm does (every folder's size and message count, not only the quota
totals) and stores it all. Last line: ``poll ratio=X.XX (target >= 1.0)``.

    .venv/bin/python bench/poll.py [--mailboxes N] [--concurrency C] [--rounds R] [--skip-imap]
"""

from __future__ import annotations

import argparse
import json
import smtplib
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from _harness import setup_django, start_dovecot, start_worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8, help="IMAP sessions per server")
    parser.add_argument("--rounds", type=int, default=3, help="timed polls on each side")
    parser.add_argument(
        "--skip-imap", action="store_true", help="do not time the portable IMAP path"
    )
    args = parser.parse_args()

    setup_django()
    from django.conf import settings
    from django.utils import timezone

    from accounts.models import Customer
    from mailboxes.models import GIB, MIB, Domain, Mailbox, MailServer, Plan, PollRun
    from mailboxes.passwords import hash_password
    from mailboxes.selectors import worker_queues
    from mailboxes.services import mail_server_register_local
    from mailboxes.tasks import poll_all
    from mailboxes.usage import Outcome, _store, user_masks
    from mailserver.doveadm import doveadm_folders_matching
    from mailserver.usage import Usage

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

        worker = start_worker(",".join(["default", *worker_queues(kind="poll")]))

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
        imap_seconds = None if args.skip_imap else full_poll()
        MailServer.objects.filter(pk=server.pk).update(doveadm_port=dovecot.doveadm_port)

        def doveadm_quota_all() -> float:
            started = time.perf_counter()
            out = subprocess.run(
                ["doveadm", "-c", str(dovecot.config_file), "-f", "json", "quota", "get", "-A"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            seconds = time.perf_counter() - started
            users = {row["username"] for row in json.loads(out)}
            assert len(users) == args.mailboxes, len(users)
            return seconds

        def requests_alone(requests: int) -> float:
            """Postamt's doveadm requests without storing anything: Dovecot's share."""
            masks = user_masks([f"u{i}@bench.example" for i in range(args.mailboxes)], requests)
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=requests) as pool:
                list(pool.map(lambda mask: doveadm_folders_matching(server, mask[0]), masks))
            return time.perf_counter() - started

        # Alternated, best of each: the machine may be shared, and noise only slows things.
        doveadm_quota_all()  # its first run may recount a fresh quota
        postamt_runs, doveadm_runs = [], []
        for _ in range(args.rounds):
            postamt_runs.append(full_poll())
            doveadm_runs.append(doveadm_quota_all())
        postamt_seconds, doveadm_seconds = min(postamt_runs), min(doveadm_runs)
        requests = settings.POSTAMT_POLL_DOVEADM_REQUESTS
        split_runs, one_runs = [], []
        for _ in range(args.rounds):
            split_runs.append(requests_alone(requests))
            one_runs.append(requests_alone(1))
        split_seconds, one_seconds = min(split_runs), min(one_runs)

        def storing_alone() -> float:
            """Postamt's storing of one poll's answers, in its chunks, without measuring."""
            measured = doveadm_folders_matching(server, "*")
            empty = Usage(used_bytes=0, message_count=0, limit_bytes=None)
            outcomes = [
                Outcome(pk, usage=measured.get(address, empty))
                for pk, address in Mailbox.objects.values_list("pk", "address")
            ]
            run = PollRun.objects.create(server=server, slot=timezone.now() - timedelta(days=1))
            chunk = settings.POSTAMT_POLL_CHUNK
            started = time.perf_counter()
            for start in range(0, len(outcomes), chunk):
                _store(run, outcomes[start : start + chunk])
            return time.perf_counter() - started

        store_seconds = storing_alone()
        postamt_rate = args.mailboxes / postamt_seconds
        doveadm_rate = args.mailboxes / doveadm_seconds
        print(
            f"postamt, doveadm HTTP ({requests} requests at once): {args.mailboxes} mailboxes in "
            f"{postamt_seconds:.2f} s = {postamt_rate:.0f} mailboxes/s (totals + every folder, "
            f"stored with history; runs: {', '.join(f'{s:.2f}' for s in postamt_runs)} s)"
        )
        print(
            f"  its doveadm requests alone: {split_seconds:.2f} s (split by user mask, {requests} "
            f"at once; runs: {', '.join(f'{s:.2f}' for s in split_runs)}), {one_seconds:.2f} s "
            f"(one request for all; runs: {', '.join(f'{s:.2f}' for s in one_runs)}); "
            f"the rest is storing: {store_seconds:.2f} s alone, "
            f"in chunks of {settings.POSTAMT_POLL_CHUNK}"
        )
        if imap_seconds is not None:
            print(
                f"postamt, portable IMAP path ({args.concurrency} sessions): {imap_seconds:.2f} s"
                f" = {args.mailboxes / imap_seconds:.0f} mailboxes/s (ratio "
                f"{args.mailboxes / imap_seconds / doveadm_rate:.2f})"
            )
        print(
            f"doveadm quota get -A: {doveadm_seconds:.2f} s = {doveadm_rate:.0f} mailboxes/s "
            f"(runs: {', '.join(f'{s:.2f}' for s in doveadm_runs)} s)"
        )
        print(f"poll ratio={postamt_rate / doveadm_rate:.2f} (target >= 1.0)")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        dovecot.stop()


if __name__ == "__main__":
    main()
