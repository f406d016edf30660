"""Downloads end to end with a real Celery worker: the page asks, the worker builds and seals
the zip into the store, the web serves it through a signed link without the backup identity,
to the audience that asked only, until it expires and beat deletes it."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, StaffRole, User
from backups import crypto, downloads, tasks
from backups.archive import snapshot_archive
from backups.models import DownloadJob, JobStatus
from backups.store import get_store
from tests.backups.helpers import (
    backup_keys,
    backup_settings,
    mailbox,
    make_snapshot,
    message,
    restore_side,
)
from tests.factories import make_customer
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["backup_keys", "backup_settings", "mailbox", "restore_side"]  # fixtures

# Hostile enough to show a lossless path: 8-bit bytes, a "From " line, no final newline.
ODD = (
    b"From: =?utf-8?q?B=C3=A4cker?= <b@example.org>\r\nSubject: Br\xc3\xb6tchen\r\n\r\n"
    b"From here on\r\n>From quoted\r\n\x00\xff body without end"
)


@pytest.fixture
def snapshot(restore_side, mailbox):  # type: ignore[no-untyped-def]
    return make_snapshot(
        mailbox,
        {
            "INBOX": [(message("one", size=300_000), ["\\Seen"]), (ODD, ["\\Flagged"])],
            "Projekte/Bäckerei": [(message("two", charset_8bit=True), [])],
        },
    )


@pytest.fixture
def owner(mailbox) -> User:  # type: ignore[no-untyped-def]
    return User.objects.create_user("owner", customer=mailbox.customer)


def _ask(client: Client, mount: str, snapshot_id: int) -> DownloadJob:
    response = client.post(reverse(f"{mount}:download", args=[snapshot_id]))
    assert response.status_code == 302, response.status_code
    job = DownloadJob.objects.latest("pk")
    assert response["Location"] == reverse(f"{mount}:download_job", args=[job.pk])
    return job


def _built(job: DownloadJob) -> DownloadJob:
    def finished() -> DownloadJob | None:
        job.refresh_from_db()
        return job if job.status in (JobStatus.DONE, JobStatus.FAILED) else None

    return wait_for(finished, "the worker to build the download", timeout=30)


def _link(client: Client, mount: str, job: DownloadJob) -> str:
    """The link as the job's page shows it once the download is ready."""
    page = client.get(reverse(f"{mount}:download_job", args=[job.pk])).content.decode()
    [link] = re.findall(rf'href="([^"]*/jobs/download/{job.pk}/[^"/]+/)"', page)
    return link


def test_a_customer_asks_the_worker_builds_and_the_web_serves_without_the_identity(
    client: Client, celery_worker, snapshot, owner, settings, monkeypatch
):
    client.force_login(owner)
    job = _ask(client, "portal_backups", snapshot.pk)
    polled = client.get(reverse("portal_backups:download_job", args=[job.pk]), HTTP_HX_REQUEST="1")
    assert polled.status_code in (200, 286)

    job = _built(job)
    assert job.status == JobStatus.DONE, job.error
    assert (job.messages_done, job.messages_total) == (3, 3)
    [stored] = list(get_store().list(downloads.PREFIX))
    assert stored == job.object_key
    sealed = get_store().get(stored)
    assert sealed.startswith(b"age-encryption.org/v1") and b"Br\xc3\xb6tchen" not in sealed
    expected = b"".join(snapshot_archive(snapshot))  # what the in-request download gave
    link = _link(client, "portal_backups", job)

    # The web side: no backup identity, and nothing may even try to read one.
    settings.BACKUP_IDENTITY_FILE = ""

    def no_identity() -> None:
        raise AssertionError("the web opened the backup identity")

    monkeypatch.setattr(crypto, "identities", no_identity)
    response = client.get(link)

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    served = b"".join(response.streaming_content)
    assert served == expected and int(response["Content-Length"]) == len(served)
    archive = zipfile.ZipFile(io.BytesIO(served))
    assert sorted(archive.namelist()) == ["INBOX.mbox", "Projekte/Bäckerei.mbox"]
    inbox = archive.read("INBOX.mbox")
    assert b"\n>From here on\n>>From quoted\n\x00\xff body without end\n" in inbox
    assert not AuditEntry.objects.filter(action="backup.download_fetch").exists()  # customer


def test_the_link_is_for_the_audience_that_asked_only(
    client: Client, celery_worker, snapshot, owner, mailbox
):
    client.force_login(owner)
    job = _built(_ask(client, "portal_backups", snapshot.pk))
    link = _link(client, "portal_backups", job)
    colleague = User.objects.create_user("colleague", customer=mailbox.customer)
    client.force_login(colleague)
    assert client.get(link).status_code == 200  # the customer's users

    client.force_login(User.objects.create_user("stranger", customer=make_customer("Other")))
    assert client.get(link).status_code == 404
    assert client.get(reverse("portal_backups:download_job", args=[job.pk])).status_code == 404

    # Staff have their own downloads (audited); a customer's link is not one of them.
    admin = User.objects.create_user("ada", is_staff=True, staff_role=StaffRole.ADMIN)
    client.force_login(admin)
    token = link.rstrip("/").rsplit("/", 1)[1]
    staff_link = reverse("staff_backups:download_file", args=[job.pk, token])
    assert client.get(staff_link).status_code == 404


def test_staff_downloads_are_audited_and_not_the_customers_to_fetch(
    client: Client, celery_worker, snapshot, owner
):
    admin = User.objects.create_user("ada", is_staff=True, staff_role=StaffRole.ADMIN)
    client.force_login(admin)
    job = _built(_ask(client, "staff_backups", snapshot.pk))
    assert job.for_staff and job.status == JobStatus.DONE, job.error
    link = _link(client, "staff_backups", job)

    assert b"".join(client.get(link).streaming_content).startswith(b"PK")
    fetched = AuditEntry.objects.get(action="backup.download_fetch")
    assert (fetched.actor, fetched.details["job"]) == (admin, job.pk)
    assert AuditEntry.objects.filter(action="backup.download", actor=admin).count() == 1

    client.force_login(owner)
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert client.get(
        reverse("portal_backups:download_file", args=[job.pk, token])
    ).status_code == (404)


def test_a_tampered_or_expired_link_is_refused_and_beat_deletes_the_file(
    client: Client, celery_worker, snapshot, owner, settings
):
    client.force_login(owner)
    job = _built(_ask(client, "portal_backups", snapshot.pk))
    link = _link(client, "portal_backups", job)
    token = link.rstrip("/").rsplit("/", 1)[1]

    tampered = reverse("portal_backups:download_file", args=[job.pk, token[:-2] + "xx"])
    assert client.get(tampered).status_code == 404
    other = DownloadJob.objects.create(
        repository=job.repository, snapshot=snapshot, requested_by="x"
    )
    assert client.get(
        reverse("portal_backups:download_file", args=[other.pk, token])
    ).status_code == (404)

    DownloadJob.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = client.get(link)
    assert expired.status_code == 410 and "has expired" in expired.content.decode()

    assert tasks.expire_downloads.delay().get(timeout=30) == 1
    job.refresh_from_db()
    assert (job.object_key, job.secret) == ("", "")
    assert list(get_store().list(downloads.PREFIX)) == []
    page = client.get(reverse("portal_backups:download_job", args=[job.pk])).content.decode()
    assert "This download has expired" in page and not re.search(
        rf"/jobs/download/{job.pk}/[^\"/]+/", page
    )


def test_a_link_older_than_the_download_lifetime_is_refused(
    client: Client, celery_worker, snapshot, owner, settings
):
    client.force_login(owner)
    job = _built(_ask(client, "portal_backups", snapshot.pk))
    link = _link(client, "portal_backups", job)
    settings.BACKUP_DOWNLOAD_HOURS = 0  # the signature's own age limit, whatever the row says
    assert client.get(link).status_code == 410


def test_a_worker_without_the_identity_fails_plainly_for_the_customer(
    client: Client, celery_worker, snapshot, owner, settings
):
    settings.BACKUP_IDENTITY_FILE = ""  # the worker too: it cannot open the backup
    client.force_login(owner)
    job = _built(_ask(client, "portal_backups", snapshot.pk))
    assert job.status == JobStatus.FAILED and "BACKUP_IDENTITY_FILE" in job.error

    page = client.get(reverse("portal_backups:download_job", args=[job.pk])).content.decode()
    assert "Something went wrong on our side" in page and "BACKUP_IDENTITY_FILE" not in page
    admin = User.objects.create_user("ada", is_staff=True, staff_role=StaffRole.ADMIN)
    client.force_login(admin)
    page = client.get(reverse("staff_backups:download_job", args=[job.pk])).content.decode()
    assert "BACKUP_IDENTITY_FILE" in page
    assert list(get_store().list(downloads.PREFIX)) == []


def test_asking_counts_against_the_customers_fair_use(
    client: Client, celery_worker, snapshot, owner, settings
):
    settings.BACKUP_DOWNLOADS_PER_CUSTOMER = 1
    client.force_login(owner)
    _ask(client, "portal_backups", snapshot.pk)
    refused = client.post(reverse("portal_backups:download", args=[snapshot.pk]))
    assert refused.status_code == 429
    assert DownloadJob.objects.count() == 1
