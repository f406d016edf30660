"""Quota pools, warnings, backups, restores and the audit log through the API."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from accounts.models import StaffRole
from backups.downloads import run_download
from backups.models import BackupJob, RestoreJob
from mailboxes.models import GIB, MIB, QuotaWarning
from tests.api.test_api import MAILBOXES, client_for, customer_key, hoster_key
from tests.backups.helpers import backup_keys, backup_settings, make_snapshot, message, restore_side

pytestmark = pytest.mark.django_db
__all__ = ["backup_keys", "backup_settings", "restore_side", "world"]  # fixtures

from tests.api.test_api import world  # noqa: E402


def test_a_customers_quota_pool_is_read_and_set(world: dict[str, Any]):
    customer = world["mine"]
    admin = client_for(hoster_key())
    url = f"/api/v1/customers/{customer.pk}/allowance/"
    assert admin.get(url).json() == {
        "storage_allowance_bytes": None,
        "allocated_bytes": world["my_mailbox"].quota_bytes,
        "left_bytes": None,
    }
    body = admin.put(url, {"storage_allowance_bytes": GIB}, format="json").json()
    assert body["left_bytes"] == GIB - world["my_mailbox"].quota_bytes
    too_small = admin.put(url, {"storage_allowance_bytes": MIB}, format="json")
    assert too_small.status_code == 400
    assert too_small.json()["errors"][0]["message"]
    # The customer reads its own pool, but the hoster sets it.
    own = client_for(customer_key(customer))
    assert own.get(url).json()["storage_allowance_bytes"] == GIB
    assert own.put(url, {"storage_allowance_bytes": None}, format="json").status_code == 403
    theirs = f"/api/v1/customers/{world['theirs'].pk}/allowance/"
    assert own.get(theirs).status_code == 404


def test_the_warnings_sent_for_a_mailbox(world: dict[str, Any]):
    mailbox = world["my_mailbox"]
    QuotaWarning.objects.create(
        mailbox=mailbox,
        kind="warning",
        threshold=90,
        used_bytes=mailbox.quota_bytes * 9 // 10,
        quota_bytes=mailbox.quota_bytes,
        recipient="owner@example.org",
        language="de",
    )
    body = client_for(customer_key(world["mine"])).get(f"{MAILBOXES}{mailbox.pk}/warnings/")
    assert [(w["threshold"], w["recipient"]) for w in body.json()] == [(90, "owner@example.org")]


def test_backups_are_listed_started_downloaded_and_restored(
    world: dict[str, Any], restore_side: Any, sent_tasks: list
):
    mailbox = world["my_mailbox"]
    snapshot = make_snapshot(mailbox, {"INBOX": [(message("Rechnung"), [])], "Archiv": []})
    client = client_for(customer_key(world["mine"]))

    listed = client.get("/api/v1/snapshots/", {"mailbox": mailbox.pk}).json()["results"]
    assert [(s["id"], s["messages"]) for s in listed] == [(snapshot.pk, 1)]

    started = client.post(f"{MAILBOXES}{mailbox.pk}/backup/")
    assert started.status_code == 202
    job = BackupJob.objects.get(pk=started.json()["id"])
    assert client.get(f"/api/v1/backup-jobs/{job.pk}/").json()["status"] == "queued"

    asked = client.post(f"/api/v1/snapshots/{snapshot.pk}/download/")
    assert asked.status_code == 202 and asked.json()["file"] is None
    download_id = asked.json()["id"]
    run_download(download_id)  # the worker's part (tests/integration/test_downloads.py)
    ready = client.get(f"/api/v1/download-jobs/{download_id}/").json()
    assert ready["status"] == "done" and ready["file"]
    download = client.get(ready["file"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert sorted(archive.namelist()) == ["Archiv.mbox", "INBOX.mbox"]
    assert b"Rechnung" in archive.read("INBOX.mbox")
    assert client.get(ready["file"].replace("token=", "token=x")).status_code == 404

    restore = client.post(
        f"/api/v1/snapshots/{snapshot.pk}/restore/",
        {"scope": "folder", "folder": "INBOX"},
        format="json",
    )
    assert restore.status_code == 202, restore.json()
    job = RestoreJob.objects.get(pk=restore.json()["id"])
    assert (job.scope, job.folder) == ("folder", "INBOX")
    assert client.get(f"/api/v1/restore-jobs/{job.pk}/").json()["percent"] == 0
    bad = client.post(
        f"/api/v1/snapshots/{snapshot.pk}/restore/", {"scope": "folder"}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "folder"

    # Another customer's key finds none of it.
    other = client_for(customer_key(world["theirs"]))
    assert other.get(f"/api/v1/snapshots/{snapshot.pk}/").status_code == 404
    assert other.post(f"/api/v1/snapshots/{snapshot.pk}/download/").status_code == 404
    assert other.get(f"/api/v1/download-jobs/{download_id}/").status_code == 404
    assert other.get(ready["file"]).status_code == 404
    assert other.get(f"/api/v1/restore-jobs/{job.pk}/").status_code == 404


def test_support_keys_may_not_download_mail(world: dict[str, Any], restore_side: Any):
    snapshot = make_snapshot(world["my_mailbox"], {"INBOX": [(message("Rechnung"), [])]})
    support = client_for(hoster_key(StaffRole.SUPPORT))
    assert support.get(f"/api/v1/snapshots/{snapshot.pk}/").status_code == 200
    response = support.post(f"/api/v1/snapshots/{snapshot.pk}/download/")
    assert response.status_code == 403


def test_the_audit_log_for_the_hosters_keys_only(world: dict[str, Any]):
    admin = client_for(hoster_key())
    admin.post(f"{MAILBOXES}{world['my_mailbox'].pk}/suspend/")
    auditor = client_for(hoster_key(StaffRole.AUDITOR, read_only=True))
    events = auditor.get("/api/v1/audit-events/", {"action": "mailbox.suspend"}).json()
    [event] = events["results"]
    assert event["target"].startswith("anna@") and event["actor"].startswith("api-")
    assert client_for(customer_key(world["mine"])).get("/api/v1/audit-events/").status_code == 403
    bad = auditor.get("/api/v1/audit-events/", {"since": "gestern"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "since"


def test_delete_with_a_final_backup_answers_with_the_job(world: dict[str, Any], backup_settings):
    mailbox = world["my_mailbox"]
    response = client_for(hoster_key()).delete(f"{MAILBOXES}{mailbox.pk}/?final_backup=true")
    assert response.status_code == 202
    job = BackupJob.objects.get(pk=response.json()["id"])
    assert job.delete_mailbox_after and job.repository.mailbox_id == mailbox.pk


def test_a_customers_spent_restores_and_downloads_answer_429_in_plain_words(
    world: dict[str, Any], restore_side: Any, settings: Any
):
    settings.BACKUP_RESTORES_PER_CUSTOMER = settings.BACKUP_DOWNLOADS_PER_CUSTOMER = 0
    snapshot = make_snapshot(world["my_mailbox"], {"INBOX": [(message("Rechnung"), [])]})
    client = client_for(customer_key(world["mine"]))

    restore = client.post(
        f"/api/v1/snapshots/{snapshot.pk}/restore/", {"scope": "mailbox"}, format="json"
    )
    download = client.post(f"/api/v1/snapshots/{snapshot.pk}/download/")

    assert restore.status_code == download.status_code == 429
    assert "as many restores as allowed" in restore.json()["errors"][0]["message"]
    assert "as many downloads as allowed" in download.json()["errors"][0]["message"]
    assert not RestoreJob.objects.exists()


def test_a_failed_jobs_error_is_technical_for_the_hoster_and_plain_for_the_customer(
    world: dict[str, Any], restore_side: Any
):
    snapshot = make_snapshot(world["my_mailbox"], {"INBOX": [(message("Rechnung"), [])]})
    job = RestoreJob.objects.create(
        repository=snapshot.repository,
        target_mailbox=world["my_mailbox"],
        scope="mailbox",
        requested_by="x",
        status="failed",
        error="unexpected error: OSError('/var/lib/postamt/packs')",
    )
    url = f"/api/v1/restore-jobs/{job.pk}/"

    assert "/var/lib/postamt" in client_for(hoster_key()).get(url).json()["error"]
    plain = client_for(customer_key(world["mine"])).get(url).json()["error"]
    assert plain.startswith("Something went wrong on our side")
