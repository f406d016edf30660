"""Celery entry points for backups: thin, ids only; the work lives in ``engine``, ``restore``
and ``services``. All run on the ``backup`` queue (restores on ``BACKUP_RESTORE_QUEUE``).

Backup and restore runs are idempotent and resumable, so they ack late and are requeued if
their worker dies; the job row caps the attempts (``JOB_MAX_ATTEMPTS``) and its claim keeps
a second delivery from running the same job twice at once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from mailserver.errors import MailServerUnavailable
from provider.celery import LongTaskOptions, RetryOptions

from . import check, downloads, engine, jobs, services
from . import restore as restore_engine

RETRY: RetryOptions = {
    "autoretry_for": (MailServerUnavailable,),
    "retry_backoff": 30,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 5,
}
# Work on a whole repository or store; safe to run again, so a lost one is redelivered.
LONG_SCAN: LongTaskOptions = {
    "acks_late": True,
    "soft_time_limit": 50 * 60,
    "time_limit": 55 * 60,
}
LONG_RUN: LongTaskOptions = {**LONG_SCAN, "reject_on_worker_lost": True}
BUSY_RETRY_SECONDS = 60


def _again_later(task: Task, exc: jobs.Busy) -> Any:
    """Someone else holds the job or the repository: come back once they may be done, or,
    if it is a dead run that holds the job, once it shows as dead and may be taken over."""
    countdown = min(BUSY_RETRY_SECONDS, settings.BACKUP_DEAD_SECONDS)
    return task.retry(exc=exc, countdown=countdown, max_retries=60)


@shared_task(name="backups.run_due", acks_late=True)
def run_due() -> list[int]:
    for job_id in services.pending_final_deletions():  # their worker died after the backup
        services.delete_after_final_backup(job_id)
    return services.schedule_due()


@shared_task(name="backups.resume_interrupted")
def resume_interrupted() -> dict[str, list[int]]:
    """For beat, every few seconds: cheap, and a job whose worker died goes on within about a
    minute instead of waiting for the next scheduled run."""
    return services.resume_interrupted()


@shared_task(name="backups.backup_mailbox", bind=True, **LONG_RUN, **RETRY)
def backup_mailbox(self: Task, job_id: int) -> int | None:
    try:
        job = engine.run_backup(job_id)
    except jobs.Busy as exc:
        raise _again_later(self, exc) from exc
    if job is not None and job.delete_mailbox_after:
        services.delete_after_final_backup(job.pk)
    return job.snapshot_id if job else None


@shared_task(name="backups.restore", bind=True, **LONG_RUN, **RETRY)
def restore(self: Task, job_id: int) -> int | None:
    try:
        job = restore_engine.run_restore(job_id)
    except jobs.Busy as exc:
        raise _again_later(self, exc) from exc
    return job.messages_restored if job else None


@shared_task(name="backups.download", bind=True, **LONG_RUN)
def download(self: Task, job_id: int) -> int | None:
    try:
        job = downloads.run_download(job_id)
    except jobs.Busy as exc:
        raise _again_later(self, exc) from exc
    return job.size_bytes if job else None


@shared_task(name="backups.expire_downloads")
def expire_downloads() -> int:
    return downloads.expire()


@shared_task(name="backups.prune", **LONG_SCAN)
def prune() -> dict[str, int]:
    result = services.prune()
    return dataclasses.asdict(result)


@shared_task(name="backups.check_all", acks_late=True)
def check_all() -> int:
    """For beat: one check per repository, so a big one does not hold up the others."""
    ids = check.repositories_to_check()
    for repository_id in ids:
        check_stored.delay(repository_id)
    return len(ids)


@shared_task(name="backups.check_stored", **LONG_SCAN)
def check_stored(repository_id: int) -> int | None:
    result = check.record_check(repository_id)
    return len(result.problems) if result else None
