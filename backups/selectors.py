"""Reads for the backup views, and who may see what.

Staff see every backup; a customer's user sees those of the customer's own mailboxes
(and of its deleted ones); anyone else sees nothing, and gets a 404 rather than a 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from accounts.models import User
from mailboxes.models import Mailbox

from .models import BackupJob, Repository, RestoreJob, Snapshot
from .services import snapshot_messages

RECENT_JOBS = 5


def _own_repositories(user: User) -> Q:
    """The repositories a user may reach, as a filter on ``Repository``."""
    if user.is_staff:
        return Q()
    if user.customer_id:
        return Q(mailbox__domain__customer=user.customer_id) | Q(
            mailbox__isnull=True, customer=user.customer_id
        )
    return Q(pk__in=[])


def mailboxes_for(user: User) -> QuerySet[Mailbox]:
    mailboxes = Mailbox.objects.select_related("domain__customer", "plan")
    if user.is_staff:
        return mailboxes
    return (
        mailboxes.filter(domain__customer=user.customer_id)
        if user.customer_id
        else mailboxes.none()
    )


def snapshots_for(user: User) -> QuerySet[Snapshot]:
    allowed = Repository.objects.filter(_own_repositories(user))
    return Snapshot.objects.select_related("repository__mailbox__domain__customer").filter(
        repository__in=allowed
    )


def backup_jobs_for(user: User) -> QuerySet[BackupJob]:
    return BackupJob.objects.filter(
        repository__in=Repository.objects.filter(_own_repositories(user))
    )


def restore_jobs_for(user: User) -> QuerySet[RestoreJob]:
    return RestoreJob.objects.filter(
        repository__in=Repository.objects.filter(_own_repositories(user))
    ).select_related("snapshot")


@dataclass
class MailboxBackups:
    repository: Repository | None
    snapshots: list[Snapshot] = field(default_factory=list)
    backup_jobs: list[BackupJob] = field(default_factory=list)
    restore_jobs: list[RestoreJob] = field(default_factory=list)


def mailbox_overview(mailbox: Mailbox) -> MailboxBackups:
    repository = Repository.objects.filter(mailbox=mailbox).first()
    if repository is None:
        return MailboxBackups(None)
    return MailboxBackups(
        repository,
        list(repository.snapshots.all()),
        list(BackupJob.objects.filter(repository=repository)[:RECENT_JOBS]),
        list(
            RestoreJob.objects.filter(repository=repository).select_related("snapshot")[
                :RECENT_JOBS
            ]
        ),
    )


def snapshot_folders(snapshot: Snapshot) -> list[tuple[str, int]]:
    """The folders a snapshot holds messages in, with their counts (from the database: the
    web side need not decrypt the manifest to offer them)."""
    return list(
        snapshot_messages(snapshot)
        .values("folder")
        .annotate(n=Count("pk"))
        .order_by("folder")
        .values_list("folder", "n")
    )
