"""Reads for the backup views, and who may see what.

Staff see every backup; a customer's user sees those of the customer's own mailboxes
(and of its deleted ones) but, by default, not those of a suspended one
(``BACKUP_SUSPENDED_ACCESS``); anyone else sees nothing, and gets a 404 rather than a 403.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

from django.conf import settings
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from accounts.models import Customer, User
from mailboxes.models import Mailbox, Plan
from mailboxes.selectors import customer_mailboxes

from . import policy
from .models import (
    INTERRUPTED,
    BackupJob,
    DownloadJob,
    Job,
    JobStatus,
    Repository,
    RestoreJob,
    Snapshot,
    dead_before,
)
from .services import snapshot_messages

RECENT_JOBS = 5


def _own_repositories(user: User) -> Q:
    """The repositories a user may reach, as a filter on ``Repository``: a customer's user
    not those of a suspended mailbox, unless ``BACKUP_SUSPENDED_ACCESS`` says "customer"."""
    if user.is_staff:
        return Q()
    if user.customer_id:
        existing = Q(mailbox__domain__customer=user.customer_id)
        if settings.BACKUP_SUSPENDED_ACCESS != "customer":
            existing &= Q(mailbox__status=Mailbox.Status.ACTIVE)
        return existing | Q(mailbox__isnull=True, customer=user.customer_id)
    return Q(pk__in=[])


def backups_withheld(user: User, mailbox: Mailbox) -> bool:
    """Whether the user sees the mailbox but not its backups: a customer's user, while the
    mailbox is suspended (``BACKUP_SUSPENDED_ACCESS``)."""
    return (
        not user.is_staff
        and not mailbox.is_active
        and settings.BACKUP_SUSPENDED_ACCESS != "customer"
    )


def mailboxes_for(user: User) -> QuerySet[Mailbox]:
    if user.is_staff:
        return Mailbox.objects.select_related("domain__customer", "plan")
    if user.customer_id:
        return customer_mailboxes(user.customer_id)
    return Mailbox.objects.none()


def repositories_for(user: User) -> QuerySet[Repository]:
    return Repository.objects.filter(_own_repositories(user)).select_related("customer")


def deleted_mailbox_backups(customer_id: int) -> QuerySet[Repository]:
    """The backups of the customer's deleted mailboxes that still hold a snapshot (they
    are kept for ``BACKUP_KEEP_DELETED_DAYS``)."""
    return Repository.objects.filter(
        customer=customer_id, mailbox__isnull=True, snapshots__isnull=False
    ).distinct()


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


def download_jobs_for(user: User) -> QuerySet[DownloadJob]:
    """The downloads whose progress a user may follow: staff all (with the technical error),
    a customer's users those their customer's users asked for."""
    jobs = DownloadJob.objects.filter(
        repository__in=Repository.objects.filter(_own_repositories(user))
    ).select_related("snapshot", "repository__mailbox", "repository__customer")
    return jobs if user.is_staff else jobs.filter(for_staff=False)


def downloads_to_fetch_for(user: User) -> QuerySet[DownloadJob]:
    """A download's file is for the audience that asked only: staff's for staff, a customer's
    users' for the customer's users (while they may reach the mailbox's backups)."""
    return download_jobs_for(user).filter(for_staff=user.is_staff)


@dataclass
class MailboxBackups:
    repository: Repository | None
    snapshots: list[Snapshot] = field(default_factory=list)
    backup_jobs: list[BackupJob] = field(default_factory=list)
    restore_jobs: list[RestoreJob] = field(default_factory=list)


def mailbox_overview(mailbox: Mailbox) -> MailboxBackups:
    return repository_overview(Repository.objects.filter(mailbox=mailbox).first())


def repository_overview(repository: Repository | None) -> MailboxBackups:
    if repository is None:
        return MailboxBackups(None)
    return MailboxBackups(
        repository,
        list(repository.snapshots.all()),
        list(BackupJob.objects.filter(repository=repository)[:RECENT_JOBS]),
        list(
            RestoreJob.objects.filter(repository=repository).select_related(
                "snapshot", "repository", "target_mailbox__domain"
            )[:RECENT_JOBS]
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


@dataclass(frozen=True)
class Attention:
    """A backup that staff should look at, for the overview."""

    address: str
    mailbox: Mailbox | None  # None: the mailbox was deleted, its backups are kept
    customer: Customer | None
    kind: str  # "failed", "overdue", "check", "interrupted" or "running long"
    since: datetime | None
    detail: str = ""
    problems: list[str] = field(default_factory=list)
    job: Job | None = None  # the interrupted or long-running job
    job_kind: str = ""  # its kind: "backup" or "restore"


OVERDUE_AFTER_INTERVALS = 2  # a day late on a daily plan: the worker or the schedule is off
RUNNING_LONG = "running long"


# Overdue mailboxes grow with the fleet (a new hoster's first night: all of them); the page
# shows this many, oldest first by address, and says how many there are.
OVERDUE_SHOWN = 50


@dataclass(frozen=True)
class NeedingAttention:
    items: list[Attention]
    overdue_total: int = 0

    @property
    def overdue_not_shown(self) -> int:
        return self.overdue_total - sum(1 for a in self.items if a.kind == "overdue")

    def __bool__(self) -> bool:
        return bool(self.items)


def needing_attention(
    now: datetime | None = None, *, overdue_shown: int | None = None
) -> NeedingAttention:
    """Mailboxes whose last backup failed, that are overdue (no snapshot for twice their
    plan's interval, or none at all that long after they were created: a backup queue
    nobody consumes fails no job), backups and restores that were interrupted (their worker
    died) or have been running for longer than ``BACKUP_LONG_RUNNING_MINUTES``, and
    repositories in which the scheduled check found problems; of the overdue ones the first
    ``overdue_shown`` by address, and how many there are."""
    now = now or timezone.now()
    found: list[Attention] = []
    last_job = BackupJob.objects.filter(repository=OuterRef("pk")).order_by("-created_at", "-pk")
    failed = (
        Repository.objects.annotate(
            last_status=Subquery(last_job.values("status")[:1]),
            last_error=Subquery(last_job.values("error")[:1]),
            last_finished=Subquery(last_job.values("finished_at")[:1]),
        )
        .filter(last_status=JobStatus.FAILED)
        .select_related("mailbox__domain", "customer")
    )
    found += [_about(r, "failed", r.last_finished, detail=r.last_error) for r in failed]

    late = []
    for plan in Plan.objects.filter(backup_enabled=True):
        cutoff = now - OVERDUE_AFTER_INTERVALS * timedelta(hours=plan.backup_interval_hours)
        late.append(
            Q(plan=plan)
            & (
                Q(backup_repository__last_backup_at__lt=cutoff)
                | Q(backup_repository__last_backup_at__isnull=True, created_at__lt=cutoff)
            )
        )
    overdue_total = 0
    if late:
        overdue = (
            policy.backed_up_mailboxes()
            .filter(reduce(operator.or_, late))
            .exclude(backup_repository__in=[r.pk for r in failed])
        )
        overdue_total = overdue.count()
        limit = OVERDUE_SHOWN if overdue_shown is None else overdue_shown
        shown = overdue.select_related("domain__customer", "backup_repository")
        for mailbox in shown.order_by("address")[:limit]:
            repository = getattr(mailbox, "backup_repository", None)
            since = repository.last_backup_at if repository else None
            found.append(
                Attention(mailbox.address, mailbox, mailbox.domain.customer, "overdue", since)
            )

    found += _troubled_jobs(now)

    checked = Repository.objects.exclude(check_problems=[]).select_related(
        "mailbox__domain", "customer"
    )
    found += [_about(r, "check", r.checked_at, problems=r.check_problems) for r in checked]
    return NeedingAttention(sorted(found, key=lambda a: a.address), overdue_total)


def _about(repository: Repository, kind: str, since: datetime | None, **more: Any) -> Attention:
    return Attention(
        repository.address, repository.mailbox, repository.customer, kind, since, **more
    )


def _troubled_jobs(now: datetime) -> list[Attention]:
    """Running jobs whose worker died, and those running for longer than they should."""
    dead = dead_before(now)
    long_ago = now - timedelta(minutes=settings.BACKUP_LONG_RUNNING_MINUTES)
    troubled = Q(status=JobStatus.RUNNING) & (Q(heartbeat_at__lt=dead) | Q(started_at__lt=long_ago))
    related = ("repository__mailbox__domain", "repository__customer")
    found = []
    for job_kind, running in (
        ("backup", list(BackupJob.objects.filter(troubled).select_related(*related))),
        ("restore", list(RestoreJob.objects.filter(troubled).select_related(*related))),
    ):
        job: Job
        for job in running:
            died = job.heartbeat_at is not None and job.heartbeat_at < dead
            kind = INTERRUPTED if died else RUNNING_LONG
            since = job.heartbeat_at if died else job.started_at
            found.append(_about(job.repository, kind, since, job=job, job_kind=job_kind))
    return found
