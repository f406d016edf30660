"""Claiming jobs: one run at a time, takeover of dead runs, and a cap on attempts."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from backups import jobs, services
from backups.models import (
    INTERRUPTED,
    BackupJob,
    JobStatus,
    Repository,
    RestoreJob,
    interrupted,
)
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


def silence(job: BackupJob, seconds: float) -> None:
    """As if the job's run had not beaten for ``seconds``."""
    BackupJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_a_running_job_without_a_heartbeat_for_a_minute_is_interrupted(job, settings):
    assert settings.BACKUP_DEAD_SECONDS == 60  # the default: within about a minute
    jobs.claim(BackupJob, job.pk)

    silence(job, 50)
    job.refresh_from_db()
    assert not job.is_interrupted and job.state == JobStatus.RUNNING
    assert not BackupJob.objects.filter(interrupted()).exists()

    silence(job, 61)
    job.refresh_from_db()
    assert job.is_interrupted and job.state == INTERRUPTED
    assert job.get_state_display() == "interrupted" and job.status == JobStatus.RUNNING
    assert list(BackupJob.objects.filter(interrupted())) == [job]

    BackupJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    job.refresh_from_db()
    assert not job.is_interrupted and job.state == JobStatus.FAILED  # over: nothing to resume


def test_a_queued_job_is_never_interrupted(job):
    silence(job, 3600)  # waiting for a worker, or its task was lost: ``stale_jobs`` sends it
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and not job.is_interrupted
    assert not jobs.resume(BackupJob, job.pk)


def test_an_interrupted_run_is_taken_over_at_once_and_cannot_write_any_more(job, settings):
    dead, dead_token = jobs.claim(BackupJob, job.pk)
    silence(job, settings.BACKUP_DEAD_SECONDS - 10)
    with pytest.raises(jobs.Busy):
        jobs.claim(BackupJob, job.pk)  # alive: a second delivery waits
    # Its lease on the repository has not run out: it goes with the job it belonged to.
    silence(job, settings.BACKUP_DEAD_SECONDS + 1)

    successor, token = jobs.claim(BackupJob, job.pk)

    assert successor.attempts == 2 and token != dead_token
    assert Repository.objects.get().lease_owner == token
    with pytest.raises(jobs.Superseded), transaction.atomic():
        jobs.heartbeat(dead, dead_token, messages_done=5)
    jobs.heartbeat(successor, token, messages_done=5)
    assert BackupJob.objects.get().messages_done == 5


def test_resume_hands_an_interrupted_job_back_to_the_queue_once(job, settings):
    dead, dead_token = jobs.claim(BackupJob, job.pk)
    BackupJob.objects.filter(pk=job.pk).update(messages_total=100, messages_done=21)

    assert not jobs.resume(BackupJob, job.pk)  # alive: nothing to resume
    silence(job, settings.BACKUP_DEAD_SECONDS + 1)
    assert jobs.resume(BackupJob, job.pk)
    assert not jobs.resume(BackupJob, job.pk)  # the second resumer sends nothing

    job.refresh_from_db()
    assert (job.status, job.claim, job.attempts) == (JobStatus.QUEUED, "", 1)
    assert job.messages_done == 21 and not job.is_interrupted
    assert Repository.objects.get().lease_owner == ""  # the dead run's lease is released
    with pytest.raises(jobs.Superseded), transaction.atomic():
        jobs.heartbeat(dead, dead_token)  # the dead run, should it wake up, stops
    successor, _token = jobs.claim(BackupJob, job.pk)
    assert successor.attempts == 2


def test_attempts_are_capped(job):
    BackupJob.objects.filter(pk=job.pk).update(attempts=settings.JOB_MAX_ATTEMPTS)
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


# --- Heartbeats from a thread, and resumers racing: these need committed rows ------------


@pytest.fixture
def committed_job(transactional_db, backup_settings):  # type: ignore[no-untyped-def]
    repository = services.repository_for(make_mailbox("anna"))
    return BackupJob.objects.create(repository=repository, requested_by="test")


def test_a_live_run_keeps_beating_while_one_step_takes_long(committed_job, settings):
    settings.BACKUP_DEAD_SECONDS = 0.6  # a beat every 0.1 s
    seen = []

    def one_long_step(job: BackupJob, token: str) -> None:
        # No heartbeat of its own, for well over the dead threshold.
        started = time.monotonic()
        while time.monotonic() - started < 4 * settings.BACKUP_DEAD_SECONDS:
            row = BackupJob.objects.get(pk=job.pk)
            seen.append((row.is_interrupted, row.heartbeat_at))
            time.sleep(0.05)

    jobs.run(BackupJob, committed_job.pk, one_long_step, expected=(), timed_out="")

    assert not any(dead for dead, _at in seen)
    beats = sorted({at for _dead, at in seen})
    assert len(beats) >= 10  # every sixth of the threshold
    assert BackupJob.objects.get().claim  # and the run still held it to the end


def test_two_resumers_at_once_send_the_job_once(committed_job, settings):
    jobs.claim(BackupJob, committed_job.pk)
    silence(committed_job, settings.BACKUP_DEAD_SECONDS + 1)
    start = threading.Barrier(6)
    results = []

    def resumer() -> None:
        try:
            start.wait()
            results.append(jobs.resume(BackupJob, committed_job.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=resumer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] * 5 + [True]
    assert BackupJob.objects.get().status == JobStatus.QUEUED
