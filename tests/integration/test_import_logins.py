"""Imported mailboxes log in over real IMAP and POP3 with the passwords their hashes came from,
and a large file is imported by a real worker from the staff page."""

from __future__ import annotations

import csv
import io
import subprocess

import pytest
from argon2 import PasswordHasher
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import User
from mailboxes import imports
from mailboxes.models import GIB, ImportJob, Mailbox, MailServer
from mailserver.dovecot import DovecotInstance
from tests.factories import make_plan
from tests.integration.test_dovecot_logins import imap_can_login, pop3_can_login
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

COLUMNS = ["customer", "contact_email", "domain", "mailbox", "plan", "password", "password_hash"]


def doveadm_pw(scheme: str, password: str) -> str:
    """The hash Dovecot's own tool makes, as a migration from another Dovecot brings it."""
    return subprocess.run(
        ["doveadm", "pw", "-s", scheme, "-p", password], capture_output=True, text=True, check=True
    ).stdout.strip()


def csv_file(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode()


def test_imported_hashes_log_in_with_their_passwords(
    dovecot: DovecotInstance, mail_server: MailServer
) -> None:
    make_plan(name="IMAP 10G", default_quota_bytes=GIB, max_quota_bytes=10 * GIB)
    make_plan(protocol="pop3", name="POP3 1G")
    django_argon2 = PasswordHasher(memory_cost=19 * 1024, parallelism=8).hash("Argon-Pass-77")
    rows = [
        ["Müller", "m@example.org", "müller.example", "sha", "IMAP 10G", "", ""],
        ["Müller", "", "müller.example", "blf", "IMAP 10G", "", ""],
        ["Müller", "", "müller.example", "argon", "IMAP 10G", "", "{ARGON2ID}" + django_argon2],
        ["Müller", "", "müller.example", "pop", "POP3 1G", "", ""],
        ["Müller", "", "müller.example", "klartext", "IMAP 10G", "Clear-Pass-2041", ""],
        ["Müller", "", "müller.example", "made", "IMAP 10G", "", ""],
    ]
    rows[0][6] = doveadm_pw("SHA512-CRYPT", "Sha-Pass-512")
    rows[1][6] = doveadm_pw("BLF-CRYPT", "Blf-Pass-2y")
    rows[3][6] = doveadm_pw("SHA512-CRYPT", "Pop-Pass-3")

    checked = imports.check(csv_file(rows))
    assert checked.problems == []
    result = imports.import_checked(checked=checked, file_name="migration.csv", actor="test")

    login = "{}@xn--mller-kva.example".format
    assert Mailbox.objects.get(address=login("sha")).password_hash == rows[0][6]
    assert imap_can_login(dovecot, login("sha"), "Sha-Pass-512")
    assert not imap_can_login(dovecot, login("sha"), "Sha-Pass-513")
    assert imap_can_login(dovecot, login("blf"), "Blf-Pass-2y")
    assert imap_can_login(dovecot, login("argon"), "Argon-Pass-77")
    assert pop3_can_login(dovecot, login("pop"), "Pop-Pass-3")
    assert not imap_can_login(dovecot, login("pop"), "Pop-Pass-3")  # POP3 only
    assert imap_can_login(dovecot, login("klartext"), "Clear-Pass-2041")
    [(_shown, made_login, made_password)] = result.generated
    assert made_login == login("made")
    assert imap_can_login(dovecot, made_login, made_password)


def test_a_large_upload_is_imported_by_a_real_worker_and_logs_in(
    dovecot: DovecotInstance, mail_server: MailServer, celery_worker: object
) -> None:
    make_plan(name="IMAP 10G", default_quota_bytes=GIB, max_quota_bytes=10 * GIB)
    staff = User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    client = Client()
    client.force_login(staff)
    password_hash = doveadm_pw("SHA512-CRYPT", "Many-Pass-2041")
    count = imports.INLINE_MAX_ROWS + 500
    rows = [
        [f"Kunde {i // 100}", f"k{i // 100}@example.org", f"k{i // 100}.example", f"u{i}"]
        + ["IMAP 10G", "", password_hash]
        for i in range(count)
    ]
    upload = SimpleUploadedFile("gross.csv", csv_file(rows), content_type="text/csv")

    response = client.post(reverse("staff:import_start"), {"file": upload})
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("staff:import_job", args=[job.pk])
    client.post(reverse("staff:import_run", args=[job.pk]))

    def finished() -> ImportJob | None:
        job.refresh_from_db()
        return job if job.status in ("done", "failed") else None

    wait_for(finished, "the worker to import the file", timeout=120)
    assert (job.status, job.mailboxes) == ("done", count), (job.error, job.problems)
    assert Mailbox.objects.count() == count
    page = client.get(reverse("staff:import_job", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert page.status_code == 286
    assert imap_can_login(dovecot, f"u{count - 1}@k{(count - 1) // 100}.example", "Many-Pass-2041")
