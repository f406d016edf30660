"""Backups against the real Dovecot, through a real Celery worker on Redis."""

from __future__ import annotations

import time

import pytest

from backups import services
from backups.models import BackupJob, JobStatus, RestoreJob
from tests.backups import helpers
from tests.backups.helpers import append, imap, mailbox_contents, message
from tests.factories import make_mailbox

pytestmark = pytest.mark.integration

# The fixtures the unit tests get from tests/backups/conftest.py.
backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
restore_side = helpers.restore_side

DATE = helpers.DATE


def wait(job: BackupJob | RestoreJob, timeout: float = 60) -> BackupJob | RestoreJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if not job.is_active:
            return job
        time.sleep(0.05)
    raise AssertionError(f"{job} still {job.status} after {timeout} s")


def fill(dovecot, address: str) -> None:
    with imap(dovecot, address) as client:
        client.create_folder("Projekte/Bäckerei")
        client.create_folder("Архив")
        append(client, "INBOX", message("one"), (b"\\Seen",), DATE)
        append(client, "INBOX", message("two", size=3000), (b"\\Flagged", b"$Label1"), DATE)
        append(client, "Sent", message("sent"), (b"\\Seen", b"\\Answered"), DATE)
        append(client, "Projekte/Bäckerei", message("nested"), (), DATE)
        append(
            client, "Архив", message("archived", charset_8bit=True, body="Grüße, Ärger"), (), DATE
        )


def test_round_trip_through_the_worker(
    dovecot, mail_server, celery_worker, backup_settings, backup_keys
):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    before = mailbox_contents(dovecot, anna.address)

    job = wait(services.backup_request(mailbox=anna, actor="test"))
    assert job.status == JobStatus.DONE, job.error
    snapshot = job.snapshot
    assert snapshot.messages == 5

    with imap(dovecot, anna.address) as client:
        for folder in before:
            client.select_folder(folder)
            uids = client.search()
            if uids:
                client.delete_messages(uids)
                client.expunge()
        client.delete_folder("Projekte/Bäckerei")

    backup_settings.BACKUP_IDENTITY_FILE = str(backup_keys.identity_file)
    restore = wait(services.restore_request(snapshot=snapshot, scope="mailbox", actor="test"))
    assert restore.status == JobStatus.DONE, restore.error
    assert restore.messages_restored == 5
    assert mailbox_contents(dovecot, anna.address) == before
