"""Claiming and holding jobs, so that a task delivered twice or redelivered after a crash
does its work once.

A run claims its job with a conditional UPDATE (queued, or running with a stale heartbeat)
and then leases the repository, so that one backup, restore or prune touches a repository
at a time. Both are renewed together by every heartbeat; a dead run stops renewing and,
after ``BACKUP_STALE_SECONDS``, another run may take over where it stopped.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from mailserver.errors import MailServerUnavailable

from .models import BackupJob, Job, JobStatus, Repository, RestoreJob

MAX_ATTEMPTS = 5

J = TypeVar("J", BackupJob, RestoreJob)


class Busy(Exception):
    """Another live run holds the job or the repository: try again later."""


class Superseded(Exception):
    """This run lost its claim (it was taken for dead): stop without writing more."""


def _stale_before() -> Any:
    return timezone.now() - timedelta(seconds=settings.BACKUP_STALE_SECONDS)


def acquire_lease(repository_id: int, owner: str) -> bool:
    now = timezone.now()
    return bool(
        Repository.objects.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=owner),
            pk=repository_id,
        ).update(
            lease_owner=owner,
            lease_until=now + timedelta(seconds=settings.BACKUP_STALE_SECONDS),
        )
    )


def release_lease(repository_id: int, owner: str) -> None:
    Repository.objects.filter(pk=repository_id, lease_owner=owner).update(
        lease_owner="", lease_until=None
    )


def claim(model: type[J], job_id: int) -> tuple[J, str] | None:
    """Take the job for this run and return it with the run's token; None when there is
    nothing (left) to do.

    Raises ``Busy`` while another live run holds the job or its repository.
    """
    now = timezone.now()
    token = secrets.token_hex(16)
    taken = (
        model.objects.filter(pk=job_id)
        .filter(
            Q(status=JobStatus.QUEUED)
            | Q(status=JobStatus.RUNNING, heartbeat_at__lt=_stale_before())
        )
        .update(
            status=JobStatus.RUNNING,
            claim=token,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            started_at=Coalesce("started_at", now),
        )
    )
    job = model.objects.select_related("repository").filter(pk=job_id).first()
    if job is None or not job.is_active:
        return None
    if not taken:
        raise Busy(f"job {job_id} is running elsewhere")
    if job.attempts > MAX_ATTEMPTS:
        model.objects.filter(pk=job.pk, claim=token).update(
            status=JobStatus.FAILED,
            finished_at=now,
            error=f"gave up after {MAX_ATTEMPTS} attempts; last error: {job.error}"[:2000],
        )
        return None
    if not acquire_lease(job.repository_id, token):
        # Put it back as it was: this was no attempt.
        model.objects.filter(pk=job.pk, claim=token).update(
            status=JobStatus.QUEUED, claim="", attempts=F("attempts") - 1
        )
        raise Busy(f"repository {job.repository} is in use")
    return job, token


def heartbeat(job: Job, token: str, **changes: Any) -> None:
    """Record progress and renew the claim and the lease; call inside the chunk's transaction.

    Raises ``Superseded`` when another run has taken the job over meanwhile.
    """
    now = timezone.now()
    claimed = type(job)._default_manager.filter(pk=job.pk, claim=token)
    updated = claimed.update(heartbeat_at=now, **changes)
    if not updated:
        raise Superseded(f"job {job.pk} was taken over by another run")
    Repository.objects.filter(pk=job.repository_id, lease_owner=token).update(
        lease_until=now + timedelta(seconds=settings.BACKUP_STALE_SECONDS)
    )


def finish(job: Job, token: str, status: str, error: str = "", **changes: Any) -> None:
    with transaction.atomic():
        type(job)._default_manager.filter(pk=job.pk, claim=token).update(
            status=status, finished_at=timezone.now(), error=error[:2000], **changes
        )
        release_lease(job.repository_id, token)


def requeue(job: Job, token: str, error: str) -> None:
    """Give the job back after a transient failure; the task's retry picks it up again."""
    with transaction.atomic():
        type(job)._default_manager.filter(pk=job.pk, claim=token).update(
            status=JobStatus.QUEUED, claim="", error=error[:2000]
        )
        release_lease(job.repository_id, token)


def stale_jobs(model: type[J]) -> list[J]:
    """Active jobs nobody has touched for a while: their task was lost or their run died."""
    return list(
        model.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        .filter(Q(heartbeat_at__lt=_stale_before()) | Q(heartbeat_at__isnull=True))
        .filter(created_at__lt=_stale_before())
    )


def run(
    model: type[J],
    job_id: int,
    work: Callable[[J, str], None],
    *,
    expected: tuple[type[Exception], ...],
    timed_out: str,
) -> J | None:
    """Claim a job and do its work, leaving the row in a state the user can read.

    Raises ``Busy`` while someone else holds it and ``MailServerUnavailable`` for a retry;
    the ``expected`` failures end the job as failed with their message; anything else too,
    and is raised so it reaches the logs.
    """
    claimed = claim(model, job_id)
    if claimed is None:
        return None
    job, token = claimed
    try:
        work(job, token)
    except Superseded:
        return None
    except MailServerUnavailable as exc:
        requeue(job, token, str(exc))
        raise
    except SoftTimeLimitExceeded:
        finish(job, token, JobStatus.FAILED, timed_out)
        raise
    except expected as exc:
        finish(job, token, JobStatus.FAILED, str(exc))
    except Exception as exc:
        finish(job, token, JobStatus.FAILED, f"unexpected error: {exc!r}")
        raise
    job.refresh_from_db()
    return job
