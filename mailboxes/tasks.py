"""Celery entry points: thin, ids only; the work lives in services and the adapter.

Poll tasks are idempotent (samples are unique per mailbox and run), so they ack late and are
requeued if their worker dies; ``PollRun.attempts`` caps how often that can happen.
"""

from __future__ import annotations

import smtplib

from celery import shared_task

from mailserver.errors import MailServerUnavailable
from provider.celery import POLL, RetryOptions, server_queue

from . import imports, moves, password_notices, polling, quota_warnings, usage
from .models import PollRun

MAX_POLL_ATTEMPTS = 8
RETRY: RetryOptions = {
    "autoretry_for": (MailServerUnavailable,),
    "retry_backoff": 15,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(name="mailboxes.poll_all", acks_late=True)
def poll_all() -> list[int]:
    """Fan out: one task per server, on that server's poll queue."""
    runs = usage.schedule_polls()
    for run in runs:
        poll_server.apply_async((run.pk,), queue=server_queue(POLL, run.server.name))
    return [run.pk for run in runs]


@shared_task(
    name="mailboxes.poll_server",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=50 * 60,
    time_limit=55 * 60,
    **RETRY,
)
def poll_server(run_id: int) -> int | None:
    if PollRun.objects.filter(pk=run_id, attempts__gte=MAX_POLL_ATTEMPTS).update(
        status=PollRun.Status.FAILED, error="gave up after repeated attempts"
    ):
        return None
    run = polling.poll_server(run_id)
    return None if run is None else run.mailboxes_done


@shared_task(
    name="mailboxes.refresh_usage", acks_late=True, soft_time_limit=60, time_limit=90, **RETRY
)
def refresh_usage(mailbox_id: int) -> int | None:
    """Measure one mailbox now; idempotent, so a redelivery only measures again."""
    mailbox = polling.refresh_mailbox(mailbox_id)
    return None if mailbox is None else mailbox.used_bytes


@shared_task(name="mailboxes.refresh_pending", acks_late=True)
def refresh_pending() -> int:
    """The backstop of "Refresh now" requests whose task was lost."""
    ids = usage.pending_refreshes()
    for mailbox_id in ids:
        refresh_usage.delay(mailbox_id)
    return len(ids)


@shared_task(name="mailboxes.thin_usage_history", acks_late=True)
def thin_usage_history() -> int:
    return usage.thin_history()


@shared_task(name="mailboxes.purge_storage", acks_late=True)
def purge_storage(purge_id: int) -> bool:
    return usage.purge_deleted_mailbox(purge_id)


@shared_task(name="mailboxes.purge_pending_storage", acks_late=True)
def purge_pending_storage() -> int:
    """The backstop for purges whose task was never queued or failed."""
    return sum(usage.purge_deleted_mailbox(pk) for pk in usage.pending_purges())


@shared_task(name="mailboxes.evaluate_warnings", acks_late=True)
def evaluate_warnings(mailbox_ids: list[int] | None = None, server_id: int | None = None) -> int:
    return len(quota_warnings.evaluate(mailbox_ids=mailbox_ids, server_id=server_id))


@shared_task(
    name="mailboxes.send_quota_warnings",
    acks_late=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=30,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=8,
)
def send_quota_warnings(warning_ids: list[int]) -> int:
    """Send each warning at most once; on an SMTP error the rest are retried with backoff."""
    return sum(quota_warnings.send(pk) for pk in warning_ids)


@shared_task(name="mailboxes.send_pending_warnings", acks_late=True)
def send_pending_warnings() -> int:
    ids = quota_warnings.pending_warning_ids()
    if ids:
        send_quota_warnings.delay(ids)
    return len(ids)


@shared_task(name="mailboxes.send_staff_digest", acks_late=True)
def send_staff_digest() -> int:
    return quota_warnings.send_staff_digest()


@shared_task(
    name="mailboxes.run_import",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=60 * 60,
    time_limit=65 * 60,
)
def run_import(job_id: int) -> int | None:
    """A confirmed CSV import; claimed first, so a second delivery does nothing."""
    job = imports.run_job(job_id)
    return None if job is None else job.mailboxes


@shared_task(name="mailboxes.resume_imports", acks_late=True)
def resume_imports() -> int:
    """The backstop of imports whose task was lost or whose worker died; forgets what was
    kept too long (unconfirmed files, passwords never downloaded)."""
    ids = imports.pending_jobs()
    for job_id in ids:
        run_import.delay(job_id)
    return len(ids)


@shared_task(
    name="mailboxes.send_password_notice",
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=30,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=8,
)
def send_password_notice(mailbox_id: int) -> bool:
    """Claimed by a conditional UPDATE: a redelivered task sends nothing twice."""
    return password_notices.send(mailbox_id)


@shared_task(name="mailboxes.send_pending_password_notices")
def send_pending_password_notices() -> int:
    """The backstop of notices that could not be queued when the password was changed."""
    ids = password_notices.pending()
    for mailbox_id in ids:
        send_password_notice.delay(mailbox_id)
    return len(ids)


@shared_task(
    name="mailboxes.move_mailbox",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=50 * 60,
    time_limit=55 * 60,
    **RETRY,
)
def move_mailbox(move_id: int) -> None:
    """The next steps of a move; after the switch it comes back once more to catch up."""
    wait = moves.run_move(move_id)
    if wait is not None:
        move_mailbox.apply_async((move_id,), countdown=wait)


@shared_task(name="mailboxes.resume_stalled_moves", acks_late=True)
def resume_stalled_moves() -> int:
    """The backstop of moves whose task was lost or whose worker died (capped by
    ``MailboxMove.attempts``)."""
    ids = moves.stalled_moves()
    for move_id in ids:
        move_mailbox.delay(move_id)
    return len(ids)
