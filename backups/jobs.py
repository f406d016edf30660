"""Claiming and holding jobs, so that a task delivered twice or redelivered after a crash
does its work once, and a run whose worker died is seen and resumed within a minute.

A run claims its job with a conditional UPDATE (queued, or interrupted: see
``models.interrupted``) and then leases the repository, so that one backup, restore or prune
touches a repository at a time. While it works, a thread of its own beats every sixth of
``BACKUP_DEAD_SECONDS`` (the run's own heartbeats record progress, per batch); a run whose
process is gone stops beating and, after ``BACKUP_DEAD_SECONDS``, its job shows as
interrupted and ``resume`` hands it back to the queue, once, for a new run to continue where
it stopped.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from mailserver.errors import MailServerUnavailable

from . import events
from .models import BackupJob, DownloadJob, Job, JobStatus, Repository, RestoreJob, interrupted

log = logging.getLogger(__name__)

# A live run beats this many times per BACKUP_DEAD_SECONDS: a few missed beats (a busy
# database, a pause of the process) do not make it look dead.
BEATS_PER_DEAD = 6

J = TypeVar("J", BackupJob, RestoreJob, DownloadJob)


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


def claim(model: type[J], job_id: int, *, lease: bool = True) -> tuple[J, str] | None:
    """Take the job for this run and return it with the run's token; None when there is
    nothing (left) to do. ``lease=False`` for a run that only reads the store (a download):
    it need not wait for a backup of the same mailbox.

    Raises ``Busy`` while another live run holds the job or its repository.
    """
    now = timezone.now()
    token = secrets.token_hex(16)
    # The token of the run that held the job before: if it died, its lease goes with it.
    previous = model.objects.filter(pk=job_id).values_list("claim", flat=True).first()
    taken = (
        model.objects.filter(pk=job_id)
        .filter(Q(status=JobStatus.QUEUED) | (interrupted() & Q(claim=previous)))
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
    if previous:
        release_lease(job.repository_id, previous)
    if job.attempts > settings.JOB_MAX_ATTEMPTS:
        # Its worker died or the mail server failed every time: running it again would only
        # loop (a redelivered task comes back after each death). Staff see why.
        error = (
            f"gave up after {settings.JOB_MAX_ATTEMPTS} attempts (JOB_MAX_ATTEMPTS): each run "
            "stopped before the end (a worker killed or out of memory, a lost host, or the "
            f"mail server failing); last error: {job.error or 'none recorded'}"
        )
        with transaction.atomic():
            if model.objects.filter(pk=job.pk, claim=token).update(
                status=JobStatus.FAILED, finished_at=now, error=error[:2000]
            ):
                events.job_finished(model, job.pk)
        return None
    if lease and not acquire_lease(job.repository_id, token):
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
        # Only a running job finishes, and once: its webhook event is sent once.
        running = type(job)._default_manager.filter(
            pk=job.pk, claim=token, status=JobStatus.RUNNING
        )
        if running.update(status=status, finished_at=timezone.now(), error=error[:2000], **changes):
            events.job_finished(type(job), job.pk)
        release_lease(job.repository_id, token)


def requeue(job: Job, token: str, error: str) -> None:
    """Give the job back after a transient failure; the task's retry picks it up again."""
    with transaction.atomic():
        type(job)._default_manager.filter(pk=job.pk, claim=token).update(
            status=JobStatus.QUEUED, claim="", error=error[:2000]
        )
        release_lease(job.repository_id, token)


def resume(model: type[J], job_id: int) -> bool:
    """Hand an interrupted job back to the queue, keeping what its dead run stored; True for
    the one caller that did, who then sends its task. Two callers at once (a "Back up now"
    and the beat, say) send it once: the conditional UPDATE matches only the dead run's claim.

    The dead run, should it wake up, finds its claim gone and stops (``Superseded``)."""
    found = model.objects.filter(interrupted(), pk=job_id).values_list("claim", "repository")
    dead = found.first()
    if dead is None:
        return False
    token, repository_id = dead
    with transaction.atomic():
        released = model.objects.filter(interrupted(), pk=job_id, claim=token).update(
            # heartbeat_at: when it was queued again, so stale_jobs waits before resending.
            status=JobStatus.QUEUED,
            claim="",
            heartbeat_at=timezone.now(),
        )
        if released:
            release_lease(repository_id, token)
    return bool(released)


def stale_jobs(model: type[J]) -> list[J]:
    """Queued jobs whose task has not started for a while: its message was lost. (A running
    job whose run died is ``resume``d instead.)"""
    return list(
        model.objects.filter(status=JobStatus.QUEUED)
        .filter(Q(heartbeat_at__lt=_stale_before()) | Q(heartbeat_at__isnull=True))
        .filter(created_at__lt=_stale_before())
    )


def beat_interval() -> float:
    return settings.BACKUP_DEAD_SECONDS / BEATS_PER_DEAD


def _beat(model: type[J], job_id: int, repository_id: int, token: str) -> bool:
    """One heartbeat from the keep-alive thread; False once the run no longer holds the job."""
    now = timezone.now()
    with transaction.atomic():
        # A row locked by the run itself is mid-batch, with its own heartbeat: skip it
        # rather than wait for it.
        row = (
            model.objects.select_for_update(skip_locked=True)
            .filter(pk=job_id)
            .values_list("claim", "status")
            .first()
        )
        if row is None:
            return True
        if tuple(row) != (token, JobStatus.RUNNING):
            return False
        model.objects.filter(pk=job_id).update(heartbeat_at=now)
    # Apart: this thread never holds one lock while it waits for another.
    Repository.objects.filter(pk=repository_id, lease_owner=token).update(
        lease_until=now + timedelta(seconds=settings.BACKUP_STALE_SECONDS)
    )
    return True


def _keep_beating(
    stop: threading.Event, model: type[J], job_id: int, repository_id: int, token: str
) -> None:
    try:
        while not stop.wait(beat_interval()):
            try:
                if not _beat(model, job_id, repository_id, token):
                    return
            except DatabaseError as exc:  # the next beat tries again
                log.warning("heartbeat of %s %s failed: %s", model.__name__, job_id, exc)
    finally:
        connections.close_all()  # this thread's own


@contextmanager
def kept_alive(job: J, token: str) -> Iterator[None]:
    """Beat for the run from a thread while the body runs, so that the job shows alive however
    long one step takes (planning a big folder, a batch of large messages, a slow server),
    and interrupted within ``BACKUP_DEAD_SECONDS`` once its process is gone.

    A run that hangs but lives keeps beating: the task's time limit ends it, and staff see it
    among the jobs running long (``selectors.needing_attention``)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_keep_beating,
        args=(stop, type(job), job.pk, job.repository_id, token),
        name=f"heartbeat-{type(job).__name__}-{job.pk}",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def run(
    model: type[J],
    job_id: int,
    work: Callable[[J, str], None],
    *,
    expected: tuple[type[Exception], ...],
    timed_out: str,
    lease: bool = True,
) -> J | None:
    """Claim a job and do its work, leaving the row in a state the user can read.

    Raises ``Busy`` while someone else holds it and ``MailServerUnavailable`` for a retry;
    the ``expected`` failures end the job as failed with their message; anything else too,
    and is raised so it reaches the logs.
    """
    claimed = claim(model, job_id, lease=lease)
    if claimed is None:
        return None
    job, token = claimed
    try:
        with kept_alive(job, token):
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
