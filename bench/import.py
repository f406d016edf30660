#!/usr/bin/env python
"""Import benchmark: a CSV file of N mailboxes with pre-hashed passwords, checked and imported.

Generates a migration-sized file (default 20,000 mailboxes, 50 per domain, one domain per
customer, every tenth domain an IDN, half IMAP and half POP3), each mailbox with its own real
``{SHA512-CRYPT}`` hash from libc's crypt (as ``doveadm pw -s SHA512-CRYPT`` makes them, with
1,000 rounds so that making the file takes seconds, not minutes), and imports it into a fresh
PostgreSQL database as ``manage.py import_csv`` does, timing all of it: reading the file,
checking every row against the rules and the database, and writing the customers, domains,
mailboxes and their audit entries in one transaction. Modoboa's ``modo import`` manages about
21 mailboxes/s on this machine. Last line: ``import mailboxes_per_s=X (target >= 1000)``.

    .venv/bin/python bench/import.py [--mailboxes N] [--per-domain M]
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import io
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from _harness import setup_django

_SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def sha512_crypt_hashes(count: int) -> list[str]:
    """``count`` distinct SHA512-CRYPT hashes, made with libc's reentrant crypt_r on every core.
    1,000 rounds (the least crypt allows): how long a hash takes to verify is Dovecot's concern
    at login; the import only reads it."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_r.restype = ctypes.c_char_p
    lib.crypt_r.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]

    def one(index: int) -> str:
        data = ctypes.create_string_buffer(32768)  # struct crypt_data
        salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
        result = lib.crypt_r(
            f"Bench-Pass-{index}".encode(), f"$6$rounds=1000${salt}".encode(), data
        )
        return "{SHA512-CRYPT}" + result.decode()

    with ThreadPoolExecutor() as pool:
        return list(pool.map(one, range(count)))


def make_file(count: int, per_domain: int) -> bytes:
    hashes = sha512_crypt_hashes(count)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        ["customer", "contact_email", "language", "domain", "mailbox", "plan", "password_hash"]
    )
    for i in range(count):
        n = i // per_domain
        domain = f"kunde-{n}.example" if n % 10 else f"bäckerei-{n}.example"
        writer.writerow(
            [
                f"Kunde {n} GmbH",
                f"inhaber{n}@contact.example",
                "de" if n % 2 else "en",
                domain,
                f"user{i}",
                "IMAP 10G" if i % 2 else "POP3 1G",
                hashes[i],
            ]
        )
    return ("\ufeff" + out.getvalue()).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=20_000)
    parser.add_argument("--per-domain", type=int, default=50)
    args = parser.parse_args()

    setup_django()
    from accounts.models import AuditEntry
    from mailboxes import imports
    from mailboxes.models import GIB, MIB, Mailbox, MailServer, Plan
    from mailboxes.passwords import verify_password

    for name in ("mx1", "mx2"):
        MailServer.objects.create(name=name)
    Plan.objects.create(
        name="IMAP 10G", allows_pop3=False, default_quota_bytes=2 * GIB, max_quota_bytes=10 * GIB
    )
    Plan.objects.create(
        name="POP3 1G", allows_imap=False, default_quota_bytes=500 * MIB, max_quota_bytes=GIB
    )
    started = time.perf_counter()
    data = make_file(args.mailboxes, args.per_domain)
    print(
        f"generated {args.mailboxes} mailboxes with their own {{SHA512-CRYPT}} hashes "
        f"({len(data) / 2**20:.1f} MB) in {time.perf_counter() - started:.1f} s (not timed)"
    )

    started = time.perf_counter()
    checked = imports.check(data)
    checked_at = time.perf_counter()
    assert not checked.problems, checked.problems[:5]
    result = imports.import_checked(checked=checked, file_name="bench.csv", actor="bench")
    finished = time.perf_counter()

    assert result.mailboxes == Mailbox.objects.count() == args.mailboxes
    assert AuditEntry.objects.filter(action="mailbox.create").count() == args.mailboxes
    sample = Mailbox.objects.get(local_part="user7")
    assert verify_password(sample.password_hash, "Bench-Pass-7"), "a hash was changed"
    seconds = finished - started
    print(
        f"check (dry run): {checked_at - started:.2f} s; write (one transaction, COPY, "
        f"audit entries): {finished - checked_at:.2f} s"
    )
    print(
        f"imported {result.customers} customers, {result.domains} domains and "
        f"{result.mailboxes} mailboxes in {seconds:.2f} s"
    )
    print(f"import mailboxes_per_s={args.mailboxes / seconds:.0f} (target >= 1000)")


if __name__ == "__main__":
    main()
