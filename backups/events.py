"""The webhook events of finished jobs (``webhooks.events``): backup.completed, backup.failed
and restore.completed, sent from ``jobs`` in the transaction that finishes the job."""

from __future__ import annotations

from typing import Any

from mailboxes.event_data import mailbox_data
from webhooks import events

from .models import BackupJob, Job, JobStatus, Repository, RestoreJob


def _repository(repository: Repository) -> dict[str, Any]:
    return {
        "id": repository.pk,
        "address": repository.address,
        "mailbox": repository.mailbox_id,
        "customer": repository.customer_id,
    }


def _job(job: Job) -> dict[str, Any]:
    return {
        "id": job.pk,
        "status": job.status,
        "requested_by": job.requested_by,
        "attempts": job.attempts,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def job_finished(model: type[Job], job_id: int) -> None:
    """Emit the event of a job that just became done or failed (a failed restore has none)."""
    if model is BackupJob:
        _backup_finished(BackupJob.objects.select_related("repository", "snapshot").get(pk=job_id))
    elif model is RestoreJob:
        restore = RestoreJob.objects.select_related("repository", "target_mailbox__domain").get(
            pk=job_id
        )
        if restore.status == JobStatus.DONE:
            _restore_completed(restore)


def _backup_finished(backup: BackupJob) -> None:
    if backup.status == JobStatus.FAILED:
        events.emit(
            events.BACKUP_FAILED,
            {
                "backup": _job(backup) | {"error": backup.error},
                "repository": _repository(backup.repository),
            },
        )
        return
    if backup.status != JobStatus.DONE:
        return
    snapshot = backup.snapshot
    events.emit(
        events.BACKUP_COMPLETED,
        {
            "backup": _job(backup)
            | {"bytes_fetched": backup.bytes_fetched, "bytes_stored": backup.bytes_written},
            "snapshot": None
            if snapshot is None
            else {
                "id": snapshot.pk,
                "number": snapshot.seq,
                "taken_at": snapshot.taken_at.isoformat(),
                "folders": snapshot.folders,
                "messages": snapshot.messages,
                "size_bytes": snapshot.size_bytes,
            },
            "repository": _repository(backup.repository),
        },
    )


def _restore_completed(restore: RestoreJob) -> None:
    target = restore.target_mailbox
    events.emit(
        events.RESTORE_COMPLETED,
        {
            "restore": _job(restore)
            | {
                "scope": restore.scope,
                "folder": restore.folder,
                "target_folder": restore.target_folder,
                "messages_restored": restore.messages_restored,
                "messages_skipped": restore.messages_skipped,
                "bytes_restored": restore.bytes_restored,
            },
            "snapshot": restore.snapshot_id,
            "repository": _repository(restore.repository),
            "mailbox": None if target is None else mailbox_data(target),
        },
    )
