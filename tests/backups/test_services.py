"""Scheduling, retention and restore requests, without a mail server."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import OperationalError
from django.utils import timezone

from accounts.models import AuditEntry
from backups import crypto, jobs, services, tasks
from backups.models import (
    BackupJob,
    Blob,
    DownloadJob,
    JobStatus,
    Repository,
    RestoreJob,
    Snapshot,
    StoredMessage,
)
from backups.packs import locate, read_blob
from backups.store import StoreError, get_store
from mailboxes.services import mailbox_delete, mailbox_suspend
from tests.backups.helpers import make_snapshot, message
from tests.factories import make_domain, make_mailbox, make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(sent_tasks):  # type: ignore[no-untyped-def]
    """The backup job ids handed to the worker so far (no broker needed)."""
    return lambda: [args[0] for name, args, _kw in sent_tasks if name == "backups.backup_mailbox"]


def test_run_due_schedules_each_due_mailbox_once(
    backup_settings, sent, django_capture_on_commit_callbacks
):
    domain = make_domain()
    new = make_mailbox("new", domain=domain)
    recent = make_mailbox("recent", domain=domain, plan=make_plan(backup_interval_hours=24))
    old = make_mailbox("old", domain=domain, plan=make_plan(backup_interval_hours=6))
    make_mailbox("pop", domain=domain, protocol="pop3", plan=make_plan(protocol="pop3"))
    now = timezone.now()
    services.repository_for(recent)
    Repository.objects.filter(mailbox=recent).update(last_backup_at=now - timedelta(hours=5))
    services.repository_for(old)
    Repository.objects.filter(mailbox=old).update(last_backup_at=now - timedelta(hours=7))

    with django_capture_on_commit_callbacks(execute=True):
        first = services.schedule_due(now)
    with django_capture_on_commit_callbacks(execute=True):
        second = services.schedule_due(now)

    jobs = BackupJob.objects.all()
    assert {j.repository.mailbox for j in jobs} == {new, old}
    assert sorted(first) == sorted(j.pk for j in jobs) == sorted(sent())
    assert second == []  # their jobs are still queued: nothing twice


def test_run_due_sends_jobs_whose_task_was_lost_again(
    backup_settings, sent, settings, django_capture_on_commit_callbacks
):
    mailbox = make_mailbox("anna")
    stuck = BackupJob.objects.create(
        repository=services.repository_for(mailbox),
        requested_by="schedule",
        status=JobStatus.RUNNING,
        heartbeat_at=timezone.now() - timedelta(hours=2),
    )
    BackupJob.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(hours=2))

    with django_capture_on_commit_callbacks(execute=True):
        assert services.schedule_due() == [stuck.pk]
    assert sent() == [stuck.pk]
    assert BackupJob.objects.get().status == JobStatus.QUEUED  # until the worker claims it


def dead_job(mailbox, settings, model=BackupJob, **fields):  # type: ignore[no-untyped-def]
    """A job whose run claimed it, stored part of it, and died."""
    job = model.objects.create(
        repository=services.repository_for(mailbox), requested_by="schedule", **fields
    )
    jobs.claim(model, job.pk)
    model.objects.filter(pk=job.pk).update(
        messages_total=100,
        messages_done=21,
        heartbeat_at=timezone.now() - timedelta(seconds=settings.BACKUP_DEAD_SECONDS + 1),
    )
    return job


def test_back_up_now_resumes_an_interrupted_backup_at_once_and_sends_it_once(
    backup_settings, sent, django_capture_on_commit_callbacks
):
    mailbox = make_mailbox("anna")
    dead = dead_job(mailbox, backup_settings)

    with django_capture_on_commit_callbacks(execute=True):
        job = services.backup_request(mailbox=mailbox, actor="test")
    with django_capture_on_commit_callbacks(execute=True):
        again = services.backup_request(mailbox=mailbox, actor="test")

    assert job.pk == again.pk == dead.pk  # the same job: what it stored is not fetched again
    assert (job.request_outcome, again.request_outcome) == (services.RESUMED, services.UNDER_WAY)
    assert job.status == JobStatus.QUEUED and not job.is_interrupted
    assert sent() == [dead.pk]
    details = [e.details for e in AuditEntry.objects.filter(action="backup.request").order_by("pk")]
    assert [d.get("resumed") for d in details] == [True, None]


def test_back_up_now_leaves_a_live_backup_alone(
    backup_settings, sent, django_capture_on_commit_callbacks
):
    mailbox = make_mailbox("anna")
    with django_capture_on_commit_callbacks(execute=True):
        first = services.backup_request(mailbox=mailbox, actor="test")
    jobs.claim(BackupJob, first.pk)
    with django_capture_on_commit_callbacks(execute=True):
        again = services.backup_request(mailbox=mailbox, actor="test")

    assert first.request_outcome == services.STARTED
    assert again.request_outcome == services.UNDER_WAY and again.status == JobStatus.RUNNING
    assert sent() == [first.pk]


def test_beat_resumes_interrupted_backups_restores_and_downloads_once(
    restore_side, sent_tasks, django_capture_on_commit_callbacks
):
    anna, bert = make_mailbox("anna"), make_mailbox("bert")
    backup = dead_job(anna, restore_side)
    snapshot = make_snapshot(bert, {"INBOX": [(message("one"), [])]})
    restore = dead_job(bert, restore_side, RestoreJob, snapshot=snapshot, scope="mailbox")
    dora = make_mailbox("dora")
    download = dead_job(
        dora, restore_side, DownloadJob, snapshot=make_snapshot(dora, {"INBOX": []})
    )
    alive = BackupJob.objects.create(
        repository=services.repository_for(make_mailbox("carl")), requested_by="schedule"
    )
    jobs.claim(BackupJob, alive.pk)

    with django_capture_on_commit_callbacks(execute=True):
        first = tasks.resume_interrupted()
    with django_capture_on_commit_callbacks(execute=True):
        second = tasks.resume_interrupted()

    assert first == {"backup": [backup.pk], "restore": [restore.pk], "download": [download.pk]}
    assert second == {"backup": [], "restore": [], "download": []}
    assert sorted((name, args) for name, args, _kw in sent_tasks) == [
        ("backups.backup_mailbox", (backup.pk,)),
        ("backups.download", (download.pk,)),
        ("backups.restore", (restore.pk,)),
    ]
    assert BackupJob.objects.get(pk=alive.pk).status == JobStatus.RUNNING


def test_beat_looks_for_interrupted_jobs_twice_a_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["backups-resume-interrupted"]
    assert entry["task"] == "backups.resume_interrupted"
    assert entry["schedule"] <= 30 and entry["options"]["expires"] <= entry["schedule"]


def test_one_mailboxs_error_does_not_stop_the_others_or_the_stuck_jobs(
    backup_settings, sent, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    """run_due died on SQLite's "database is locked" in one repository_for; the other
    mailboxes and the jobs waiting to be sent again were left behind."""
    domain = make_domain()
    first, locked, last = (make_mailbox(name, domain=domain) for name in ("a", "locked", "z"))
    stuck = BackupJob.objects.create(
        repository=services.repository_for(make_mailbox("stuck", domain=domain)),
        requested_by="schedule",
        status=JobStatus.RUNNING,
        heartbeat_at=timezone.now() - timedelta(hours=2),
    )
    BackupJob.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(hours=2))
    repository_for = services.repository_for

    def locked_for_one(mailbox):  # type: ignore[no-untyped-def]
        if mailbox == locked:
            raise OperationalError("database is locked")
        return repository_for(mailbox)

    monkeypatch.setattr(services, "repository_for", locked_for_one)

    with django_capture_on_commit_callbacks(execute=True):
        scheduled = services.schedule_due()

    jobs = BackupJob.objects.exclude(pk=stuck.pk)
    assert {job.repository.mailbox for job in jobs} == {first, last}
    assert sorted(scheduled) == sorted([*(job.pk for job in jobs), stuck.pk]) == sorted(sent())
    assert "locked@" in caplog.text and "database is locked" in caplog.text
    monkeypatch.setattr(services, "repository_for", repository_for)
    # The next run catches up with it.
    again = services.schedule_due()
    assert BackupJob.objects.get(pk__in=again, repository__mailbox=locked)


def test_restore_requests_are_checked_against_the_snapshot(restore_side):
    mailbox = make_mailbox("anna")
    snapshot = make_snapshot(mailbox, {"INBOX": [(message("one"), [])]})

    with pytest.raises(ValidationError, match="no messages in that folder"):
        services.restore_request(snapshot=snapshot, scope="folder", folder="Nope", actor="t")
    with pytest.raises(ValidationError, match="not in this backup"):
        services.restore_request(
            snapshot=snapshot, scope="messages", messages=[("INBOX", 1, 99)], actor="t"
        )
    job = services.restore_request(
        snapshot=snapshot, scope="messages", messages=[("INBOX", snapshot.seq, 1)], actor="t"
    )
    assert job.messages == [["INBOX", snapshot.seq, 1]] and job.target_folder == ""


def test_the_restored_folder_is_named_after_the_snapshots_day(restore_side, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    mailbox = make_mailbox("anna")
    taken = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
    snapshot = make_snapshot(mailbox, {"INBOX": []}, taken_at=taken)
    assert services.restored_folder_name(snapshot, "en") == "Restored 2025-03-02"


def stored(repository: Repository) -> set[str]:
    """The messages the store gives back, each read and checked; the pack files in the store
    are exactly those the database knows."""
    store = get_store()
    hashes = Blob.objects.filter(repository=repository).values_list("sha256", flat=True)
    locations = locate(repository.pk, hashes)
    for sha256 in locations:
        read_blob(store, str(repository.key), sha256, locations, crypto.identities())
    files = {key.rsplit("/", 1)[1] for key in store.list(f"{repository.key}/packs")}
    assert files == {f"{name}.pack" for name in repository.packs.values_list("name", flat=True)}
    return set(locations)


def test_prune_keeps_what_retention_keeps_and_deleted_mail_until_then(restore_side, settings):
    settings.TIME_ZONE = "UTC"
    mailbox = make_mailbox("anna", plan=make_plan(keep_daily=2, keep_weekly=0, keep_monthly=0))
    now = timezone.now()
    kept_mail, deleted_mail = message("kept"), message("deleted later")
    day = timedelta(days=1)
    old = make_snapshot(
        mailbox, {"INBOX": [(kept_mail, []), (deleted_mail, [])]}, taken_at=now - 3 * day
    )
    make_snapshot(mailbox, {"INBOX": [(kept_mail, []), (deleted_mail, [])]}, taken_at=now - 2 * day)
    make_snapshot(mailbox, {"INBOX": [(kept_mail, [])]}, taken_at=now - day)
    make_snapshot(mailbox, {"INBOX": [(kept_mail, [])]}, taken_at=now)
    repository = Repository.objects.get(mailbox=mailbox)
    store = get_store()
    (store.root / str(repository.key) / "packs" / "leftover.tmp-123").write_bytes(b"x")
    assert len(stored(repository)) == 2 and repository.packs.count() == 1

    result = services.prune(now)

    assert [s.taken_at for s in Snapshot.objects.all()] == [now, now - day]
    assert result.snapshots == 2 and result.blobs == 1
    # The deleted mail went; its pack was mostly dead and was rewritten without it.
    assert stored(repository) == {hashlib.sha256(kept_mail).hexdigest()}
    assert result.packs == 1 and repository.packs.count() == 1
    assert set(StoredMessage.objects.values_list("sha256", flat=True)) == stored(repository)
    with pytest.raises(StoreError):
        store.get(old.manifest_key)
    assert not any("tmp-" in p.name for p in (store.root / str(repository.key)).rglob("*"))
    assert services.prune(now).snapshots == 0  # idempotent


def test_prune_keeps_deleted_mail_while_a_kept_snapshot_has_it(restore_side):
    mailbox = make_mailbox("anna", plan=make_plan(keep_daily=7))
    now = timezone.now()
    deleted_mail = message("deleted later")
    make_snapshot(mailbox, {"INBOX": [(deleted_mail, [])]}, taken_at=now - timedelta(days=1))
    make_snapshot(mailbox, {"INBOX": []}, taken_at=now)
    repository = Repository.objects.get(mailbox=mailbox)

    services.prune(now)

    assert Snapshot.objects.count() == 2
    assert stored(repository) == {hashlib.sha256(deleted_mail).hexdigest()}


def test_a_deleted_mailboxs_backups_stay_for_the_grace_period(restore_side, settings):
    settings.BACKUP_KEEP_DELETED_DAYS = 30
    mailbox = make_mailbox("anna")
    now = timezone.now()
    make_snapshot(mailbox, {"INBOX": [(message("one"), [])]}, taken_at=now - timedelta(days=40))
    make_snapshot(mailbox, {"INBOX": [(message("one"), [])]}, taken_at=now - timedelta(days=10))
    repository = Repository.objects.get(mailbox=mailbox)
    mailbox_delete(mailbox=mailbox, actor="test")

    services.prune(now)
    assert Snapshot.objects.count() == 2  # still restorable, and downloadable
    assert Repository.objects.get().address == repository.address

    services.prune(now + timedelta(days=21))
    assert not Repository.objects.exists()
    assert not (get_store().root / str(repository.key)).exists()


def test_prune_leaves_a_repository_in_use_alone(restore_side):
    mailbox = make_mailbox("anna", plan=make_plan(keep_daily=1, keep_weekly=0, keep_monthly=0))
    now = timezone.now()
    make_snapshot(mailbox, {"INBOX": []}, taken_at=now - timedelta(days=1))
    make_snapshot(mailbox, {"INBOX": []}, taken_at=now)
    Repository.objects.update(lease_owner="someone", lease_until=now + timedelta(minutes=5))

    assert services.prune(now).snapshots == 0
    assert Snapshot.objects.count() == 2


def test_a_mailbox_whose_backup_failed_waits_before_the_next_try(backup_settings, sent):
    mailbox = make_mailbox("anna")
    now = timezone.now()
    BackupJob.objects.create(
        repository=services.repository_for(mailbox),
        requested_by="schedule",
        status=JobStatus.FAILED,
        finished_at=now - timedelta(minutes=10),
        error="broken",
    )

    assert services.schedule_due(now) == []
    assert len(services.schedule_due(now + timedelta(hours=2))) == 1


def test_suspended_mailboxes_are_neither_backed_up_nor_restored_into(restore_side):
    mailbox = make_mailbox("anna")
    snapshot = make_snapshot(mailbox, {"INBOX": [(message("one"), [])]})
    mailbox_suspend(mailbox=mailbox, actor="test")

    with pytest.raises(ValidationError, match="suspended"):
        services.backup_request(mailbox=mailbox, actor="test")
    with pytest.raises(ValidationError, match="Reactivate"):
        services.restore_request(snapshot=snapshot, scope="mailbox", actor="test")
