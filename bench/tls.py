#!/usr/bin/env python
"""TLS benchmark: what implicit TLS costs the workers' unit of work, a fresh connection with a
master login and GETQUOTAROOT (the portable poll path does one per mailbox).

Starts a private Dovecot (TLS as in production, a private CA's ECDSA P-256 certificate), then
runs the same session over plain IMAP on loopback (which Dovecot allows only there) and over
IMAPS with the certificate verified, in alternating rounds so that load on the machine hits both
alike. Last line: ``tls ratio=X.XX`` (IMAPS sessions/s over plain sessions/s).

    .venv/bin/python bench/tls.py [--sessions N] [--rounds R]
"""

from __future__ import annotations

import argparse
import time

from _harness import setup_django, start_dovecot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200, help="sessions per round and mode")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    setup_django()
    from django.conf import settings
    from imapclient import IMAPClient

    from accounts.models import Customer
    from mailboxes.models import GIB, MIB, Domain, Mailbox, Plan
    from mailboxes.passwords import hash_password
    from mailboxes.services import mail_server_register_local
    from mailserver.tls import client_context

    dovecot = start_dovecot()
    try:
        server = mail_server_register_local(dovecot)
        plan = Plan.objects.create(name="bench", default_quota_bytes=100 * MIB, max_quota_bytes=GIB)
        customer = Customer.objects.create(name="bench", contact_email="bench@example.org")
        domain = Domain.objects.create(name="bench.example", customer=customer, mail_server=server)
        Mailbox.objects.create(
            domain=domain,
            local_part="u",
            address="u@bench.example",
            protocol="imap",
            plan=plan,
            mail_server=server,
            quota_bytes=100 * MIB,
            password_hash=hash_password("Bench-Password-1"),
            storage_path="bench.example/u",
        )
        login = (
            f"u@bench.example*{settings.POSTAMT_MASTER_USER}",
            settings.POSTAMT_MASTER_PASSWORD,
        )

        def session(tls: bool) -> None:
            if tls:
                port, context = dovecot.imaps_port, client_context()
            else:
                port, context = dovecot.imap_port, None
            client = IMAPClient(dovecot.listen, port=port, ssl=tls, ssl_context=context)
            client._imap.debug = 0
            client.login(*login)
            client.get_quota_root("INBOX")
            client.logout()

        session(True)  # the mailbox's folders and indexes are made on its first login
        seconds = {False: 0.0, True: 0.0}
        for _round in range(args.rounds):
            for tls in (False, True):
                start = time.perf_counter()
                for _ in range(args.sessions):
                    session(tls)
                seconds[tls] += time.perf_counter() - start
        count = args.sessions * args.rounds
        rates = {tls: count / seconds[tls] for tls in seconds}
        print(f"plain IMAP (loopback only): {rates[False]:.0f} sessions/s")
        print(f"IMAPS, certificate verified: {rates[True]:.0f} sessions/s")
        print(f"tls ratio={rates[True] / rates[False]:.2f}")
    finally:
        dovecot.stop()


if __name__ == "__main__":
    main()
