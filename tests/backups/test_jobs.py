"""Claiming jobs: one run at a time, takeover of dead runs, and a cap on attempts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from backups import jobs, services
from backups.models import BackupJob, JobStatus, Repository, RestoreJob
from tests.factories import make_mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(backup_settings):  # type: ignore[no-untyped-def]
    repository = services.repository_for(make_mailbox("anna"))
    return BackupJob.objects.create(repository=repository, requested_by="test")


def test_a_job_is_claimed_once(job):
    claimed, token = jobs.claim(BackupJob, job.pk)
    assert claimed.status == JobStatus.RUNNING and claimed.attempts == 1

    with pytest.raises(jobs.Busy):
        jobs.claim(BackupJob, job.pk)  # a second delivery while the first runs

    jobs.finish(claimed, token, JobStatus.DONE)
    assert jobs.claim(BackupJob, job.pk) is None  # done: nothing left to do
    assert Repository.objects.get().lease_owner == ""


def test_a_dead_run_is_taken_over_and_cannot_write_any_more(job, settings):
    dead, dead_token = jobs.claim(BackupJob, job.pk)
    stale = timezone.now() - timedelta(seconds=settings.BACKUP_STALE_SECONDS + 1)
    BackupJob.objects.filter(pk=job.pk).update(heartbeat_at=stale)
    Repository.objects.update(lease_until=stale)

    successor, token = jobs.claim(BackupJob, job.pk)

    assert successor.attempts == 2 and token != dead_token
    with pytest.raises(jobs.Superseded), transaction.atomic():
        jobs.heartbeat(dead, dead_token, messages_done=5)
    jobs.heartbeat(successor, token, messages_done=5)
    assert BackupJob.objects.get().messages_done == 5


def test_attempts_are_capped(job):
    BackupJob.objects.filter(pk=job.pk).update(attempts=jobs.MAX_ATTEMPTS)
    assert jobs.claim(BackupJob, job.pk) is None
    failed = BackupJob.objects.get()
    assert failed.status == JobStatus.FAILED and "gave up" in failed.error


def test_one_job_at_a_time_per_repository(job):
    restore = RestoreJob.objects.create(
        repository=job.repository, requested_by="test", scope="mailbox"
    )
    _claimed, token = jobs.claim(BackupJob, job.pk)

    with pytest.raises(jobs.Busy):
        jobs.claim(RestoreJob, restore.pk)
    restore.refresh_from_db()
    assert (restore.status, restore.attempts) == (JobStatus.QUEUED, 0)  # no attempt spent

    jobs.finish(job, token, JobStatus.DONE)
    assert jobs.claim(RestoreJob, restore.pk) is not None
