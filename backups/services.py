"""Backup actions: request a backup or a restore, schedule what is due, prune, download.

Requests by people are audited in the same transaction; the work itself is enqueued after
commit and done by the tasks (``engine``, ``restore``), never inside a transaction.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts import audit, roles, throttle
from accounts.audit import Actor
from mailboxes.models import Mailbox
from mailboxes.services import mailbox_delete
from mailserver.fetch import batches
from provider.celery import BACKUP, enqueue_after_commit, server_queue

from . import browse, crypto, downloads, jobs, policy
from .models import (
    ACTIVE,
    BackupJob,
    Blob,
    DownloadJob,
    JobStatus,
    Pack,
    Repository,
    RestoreJob,
    Snapshot,
    StoredMessage,
    interrupted,
)
from .packs import build_pack, pack_key
from .store import Store, get_store
from .unchanged import unchanged_repositories

log = logging.getLogger(__name__)

FAILED_RETRY_AFTER = timedelta(hours=1)
BROWSE_PAGE_SIZE = 50
# A pack less than half alive is rewritten by prune, in new packs of at most REPACK_BYTES.
REPACK_BELOW = 0.5
REPACK_BYTES = 64 * 1024 * 1024


def repository_for(mailbox: Mailbox) -> Repository:
    repository, _created = Repository.objects.get_or_create(
        mailbox=mailbox, defaults={"address": mailbox.address, "customer": mailbox.customer}
    )
    return repository


# What ``backup_request`` did, on the job it returns (``BackupJob.request_outcome``).
STARTED = "started"
UNDER_WAY = "under way"
RESUMED = "resumed"


def _enqueue_backup(repository: Repository, requested_by: str) -> BackupJob:
    """The repository's active job, resumed at once if its worker died, or a new one sent to
    the worker after commit."""
    active = BackupJob.objects.filter(repository=repository, status__in=ACTIVE).first()
    if active is not None:
        active.request_outcome = UNDER_WAY
        if _resume(BackupJob, active.pk):
            active.refresh_from_db()
            active.request_outcome = RESUMED
        return active
    try:
        with transaction.atomic():
            job = BackupJob.objects.create(repository=repository, requested_by=requested_by)
    except IntegrityError:  # a concurrent request won: one active job per repository
        job = BackupJob.objects.get(repository=repository, status__in=ACTIVE)
        job.request_outcome = UNDER_WAY
        return job
    server = repository.mailbox.mail_server.name if repository.mailbox else None
    _send_backup(job.pk, server)
    job.request_outcome = STARTED
    return job


def _send_backup(job_id: int, server_name: str | None = None) -> None:
    """Send a backup job to its mailbox's server's queue (``backup.<server>``), whose workers
    cap how many backups that server serves at once."""
    if server_name is None:
        server_name = (
            BackupJob.objects.filter(pk=job_id)
            .values_list("repository__mailbox__mail_server__name", flat=True)
            .first()
        )
    # A job whose mailbox is gone has nothing to read: any backup worker may end it.
    queue = server_queue(BACKUP, server_name) if server_name else BACKUP
    enqueue_after_commit("backups.backup_mailbox", job_id, queue=queue)


def _resume(model: type[BackupJob] | type[RestoreJob] | type[DownloadJob], job_id: int) -> bool:
    """Send an interrupted job's task again, if this caller is the one that resumed it."""
    if model is DownloadJob:
        if not jobs.resume(DownloadJob, job_id):
            return False
        enqueue_after_commit("backups.download", job_id, queue=settings.BACKUP_RESTORE_QUEUE)
    elif model is RestoreJob:
        if not jobs.resume(RestoreJob, job_id):
            return False
        enqueue_after_commit("backups.restore", job_id, queue=settings.BACKUP_RESTORE_QUEUE)
    else:
        if not jobs.resume(BackupJob, job_id):
            return False
        _send_backup(job_id)
    return True


@transaction.atomic
def backup_request(*, mailbox: Mailbox, actor: Actor, ip: str | None = None) -> BackupJob:
    """Back a mailbox up now, whatever its schedule says. A backup already under way is
    returned as it is, one whose worker died is resumed (``job.request_outcome`` says
    which)."""
    roles.authorize(actor, "backup.request", customer_id=mailbox.domain.customer_id)
    if not policy.covers(mailbox.plan, mailbox.protocol):
        raise ValidationError(_("The plan of this mailbox does not include backups."))
    if not mailbox.is_active:
        raise ValidationError(_("A suspended mailbox cannot be backed up."))
    job = _enqueue_backup(repository_for(mailbox), audit.actor_label(actor))
    audit.record(
        "backup.request",
        mailbox,
        actor=actor,
        ip=ip,
        customer=mailbox.customer,
        job=job.pk,
        **({"resumed": True} if job.request_outcome == RESUMED else {}),
    )
    return job


@transaction.atomic
def mailbox_delete_after_backup(
    *, mailbox: Mailbox, actor: Actor, ip: str | None = None
) -> BackupJob:
    """Delete a mailbox only after one last backup of it: the job's snapshot is kept as the
    backups of deleted mailboxes are (``BACKUP_KEEP_DELETED_DAYS``), to download or restore
    into another mailbox. If the backup fails, the mailbox stays, and the failure shows where
    every failed backup does. Mail that arrives between the backup and the deletion is lost,
    as with any deletion."""
    roles.authorize(actor, "mailbox.delete")
    if not policy.covers(mailbox.plan, mailbox.protocol):
        raise ValidationError(
            _("The plan of this mailbox does not include backups: delete it without one.")
        )
    if not mailbox.is_active:
        raise ValidationError(
            _(
                "A suspended mailbox cannot be backed up: reactivate it first, or delete it "
                "without a backup."
            )
        )
    job = _enqueue_backup(repository_for(mailbox), audit.actor_label(actor))
    BackupJob.objects.filter(pk=job.pk).update(delete_mailbox_after=True)
    job.delete_mailbox_after = True
    audit.record(
        "mailbox.delete_after_backup",
        mailbox,
        actor=actor,
        ip=ip,
        customer=mailbox.customer,
        job=job.pk,
    )
    return job


def delete_after_final_backup(job_id: int) -> bool:
    """Once a final backup is stored, delete its mailbox; False if there is nothing to do
    (not a final backup, not done, or deleted already). Safe to call twice."""
    with transaction.atomic():
        job = (
            BackupJob.objects.select_related("repository")
            .select_for_update(of=("self",))
            .get(pk=job_id)
        )
        mailbox_id = job.repository.mailbox_id
        if not job.delete_mailbox_after or job.status != JobStatus.DONE or mailbox_id is None:
            return False
        mailbox = Mailbox.objects.select_related("domain__customer").filter(pk=mailbox_id).first()
        if mailbox is None:
            return False
        mailbox_delete(mailbox=mailbox, actor=f"final backup ({job.requested_by})")
    return True


def pending_final_deletions() -> list[int]:
    """Final backups that are done while their mailbox still exists: the worker died between
    the two. The due check finishes them."""
    return list(
        BackupJob.objects.filter(
            delete_mailbox_after=True,
            status=JobStatus.DONE,
            repository__mailbox__isnull=False,
        ).values_list("pk", flat=True)
    )


def resume_interrupted() -> dict[str, list[int]]:
    """For beat: send every job whose worker died again, each once however many resumers run
    (see ``jobs.resume``); the new run continues where the dead one stopped. Returns the ids."""
    resumed: dict[str, list[int]] = {"backup": [], "restore": [], "download": []}
    models: tuple[tuple[str, type[BackupJob] | type[RestoreJob] | type[DownloadJob]], ...] = (
        ("backup", BackupJob),
        ("restore", RestoreJob),
        ("download", DownloadJob),
    )
    for kind, model in models:
        for job_id in model.objects.filter(interrupted()).values_list("pk", flat=True):
            if _resume(model, job_id):
                resumed[kind].append(job_id)
    return resumed


def schedule_due(now: datetime | None = None) -> list[int]:
    """For beat: a job for every backed-up mailbox whose last backup is older than its
    plan's interval and that changed since, the jobs whose task was lost sent again and the
    interrupted ones resumed. Returns the ids of the backup jobs sent.

    Whether a due mailbox changed is asked of each server once, for all its mailboxes
    (``unchanged``); one found as its last snapshot recorded it is not opened, and counts as
    backed up now (``Repository.checked_unchanged_at``). A server without the doveadm API is
    asked over IMAP, one short session per due mailbox.

    A mailbox whose last job failed waits ``FAILED_RETRY_AFTER`` before the next try, so a
    broken one does not get a new failing job every quarter of an hour."""
    now = now or timezone.now()
    busy = BackupJob.objects.filter(repository__mailbox=OuterRef("pk")).filter(
        Q(status__in=ACTIVE) | Q(status=JobStatus.FAILED, finished_at__gt=now - FAILED_RETRY_AFTER)
    )
    candidates = (
        policy.backed_up_mailboxes()
        .exclude(Exists(busy))
        .select_related("plan", "backup_repository", "domain__customer", "mail_server")
    )
    due: list[tuple[Mailbox, Repository | None]] = []
    for mailbox in candidates.iterator(chunk_size=2000):
        repository = getattr(mailbox, "backup_repository", None)
        last = repository.last_backup_at if repository else None
        if policy.is_due(last, mailbox.plan, now):
            due.append((mailbox, repository))
    skipped = _unchanged_since_last_snapshot(due)
    if skipped:
        Repository.objects.filter(pk__in=skipped).update(
            last_backup_at=now, checked_unchanged_at=now
        )
    log.info("backups due: %d, found unchanged: %d", len(due), len(skipped))
    sent = []
    # One mailbox's or job's error (a locked database, a broker away) is logged and skipped:
    # the others, and the stuck jobs after them, are still sent; the next run tries it again.
    for mailbox, repository in due:
        if repository is not None and repository.pk in skipped:
            continue
        try:
            sent.append(_enqueue_backup(repository or repository_for(mailbox), "schedule").pk)
        except Exception:
            log.exception("backup of %s not scheduled", mailbox.address)
    sent += resume_interrupted()["backup"]
    for job in jobs.stale_jobs(BackupJob):
        _send_backup(job.pk)
        sent.append(job.pk)
    for restore_job in jobs.stale_jobs(RestoreJob):
        enqueue_after_commit("backups.restore", restore_job.pk, queue=settings.BACKUP_RESTORE_QUEUE)
    for download_job in jobs.stale_jobs(DownloadJob):
        enqueue_after_commit(
            "backups.download", download_job.pk, queue=settings.BACKUP_RESTORE_QUEUE
        )
    return sent


def _unchanged_since_last_snapshot(due: list[tuple[Mailbox, Repository | None]]) -> set[int]:
    """The repositories of ``due`` whose mailbox is as their last snapshot: one question to
    each server (never inside a transaction: it talks to the mail server)."""
    by_server: dict[int, list[tuple[Repository, str]]] = {}
    servers = {}
    for mailbox, repository in due:
        if repository is not None and repository.seq > 0:
            servers[mailbox.mail_server_id] = mailbox.mail_server
            by_server.setdefault(mailbox.mail_server_id, []).append((repository, mailbox.address))
    found: set[int] = set()
    for server_id, repositories in by_server.items():
        found |= unchanged_repositories(servers[server_id], repositories)
    return found


def restored_folder_name(snapshot: Snapshot, language: str) -> str:
    """``Restored 2025-03-01``: named after the snapshot's day, in the customer's language,
    so that restoring the same snapshot again lands in the same folder (and adds nothing)."""
    day = timezone.localtime(snapshot.taken_at).date().isoformat()
    with translation.override(language):
        return _("Restored %(date)s") % {"date": day}


class TryLater(Exception):
    """A restore or download refused for now, with a message for the person who asked:
    ``status`` 429 when the customer's fair use is spent, 503 when it cannot be counted."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _fair_use(actor: Actor, customer_id: int | None, what: str) -> None:
    """Count one restore or download of a customer's users against their fair use
    (``throttle.backup_use_allowed``), or raise ``TryLater``. Staff and the system are not
    counted. Fails closed: without the counters nothing is started."""
    if customer_id is None or roles.kind(actor) != roles.CUSTOMER:
        return
    try:
        allowed = throttle.backup_use_allowed(customer_id, what)
    except throttle.Unavailable:
        raise TryLater(
            _("This is not possible for a moment. Please try again in a few minutes."), 503
        ) from None
    if allowed:
        return
    minutes = throttle.backup_window_minutes()
    if what == "restore":
        message = _(
            "You have started as many restores as allowed within %(minutes)d minutes. "
            "Please try again later."
        )
    else:
        message = _(
            "You have started as many downloads as allowed within %(minutes)d minutes. "
            "Please try again later."
        )
    raise TryLater(message % {"minutes": minutes}, 429)


# What ``restore_request`` did, on the job it returns (``RestoreJob.request_outcome``).
JOINED = "joined"


def _same_restore(job: RestoreJob, wanted: dict[str, object]) -> bool:
    return all(getattr(job, name) == value for name, value in wanted.items())


def _active_restore(mailbox: Mailbox, wanted: dict[str, object]) -> RestoreJob | None:
    """The restore under way into ``mailbox``, if it is the one asked for (the request joins
    it); a ValidationError if another one is."""
    active = RestoreJob.objects.filter(target_mailbox=mailbox, status__in=ACTIVE).first()
    if active is None:
        return None
    if not _same_restore(active, wanted):
        raise ValidationError(
            _(
                "A restore into this mailbox is already under way. Please wait until it is "
                "done, then start this one."
            )
        )
    active.request_outcome = JOINED
    return active


def snapshot_messages(snapshot: Snapshot) -> QuerySet[StoredMessage]:
    """The rows of the messages a snapshot holds (its manifest lists the same)."""
    return StoredMessage.objects.filter(
        Q(last_seq__isnull=True) | Q(last_seq__gte=snapshot.seq),
        repository=snapshot.repository_id,
        first_seq__lte=snapshot.seq,
    )


@transaction.atomic
def restore_request(
    *,
    snapshot: Snapshot,
    scope: str,
    folder: str = "",
    messages: Iterable[tuple[str, int, int]] = (),
    into_new_folder: bool = False,
    into_mailbox: Mailbox | None = None,
    actor: Actor,
    ip: str | None = None,
) -> RestoreJob:
    """Restore a whole snapshot, one folder of it, or chosen messages ``(folder,
    uidvalidity, uid)``, into the original folders or into a "Restored <date>" folder.

    Fair use: one restore at a time into a mailbox (the same request again returns the job
    under way, ``job.request_outcome == JOINED``; another raises ValidationError), and a
    customer's users start at most ``BACKUP_RESTORES_PER_CUSTOMER`` per window (``TryLater``).

    The messages go into the backup's own mailbox, or ``into_mailbox``: for the backup of a
    deleted mailbox, another mailbox of the same customer (never another customer's)."""
    roles.authorize(actor, "backup.restore", customer_id=snapshot.repository.customer_id)

    repository = snapshot.repository
    mailbox = into_mailbox or repository.mailbox
    if mailbox is None:
        raise ValidationError(
            {"into_mailbox": _("This backup's mailbox was deleted: choose where to restore it.")}
        )
    if repository.customer_id is None or mailbox.domain.customer_id != repository.customer_id:
        raise ValidationError(
            {"into_mailbox": _("A backup can only be restored into a mailbox of its customer.")}
        )
    if not mailbox.is_active:
        raise ValidationError(_("Reactivate the mailbox before restoring into it."))
    chosen = [[name, int(validity), int(uid)] for name, validity, uid in messages]
    contents = snapshot_messages(snapshot)
    if scope == RestoreJob.Scope.FOLDER and not contents.filter(folder=folder).exists():
        raise ValidationError({"folder": _("This backup has no messages in that folder.")})
    if scope == RestoreJob.Scope.MESSAGES:
        found = Q(pk__in=[])
        for name, validity, uid in chosen:
            found |= Q(folder=name, uidvalidity=validity, uid=uid)
        if not chosen or contents.filter(found).count() != len(chosen):
            raise ValidationError(_("Some of the chosen messages are not in this backup."))
    target = restored_folder_name(snapshot, mailbox.customer.language) if into_new_folder else ""
    wanted: dict[str, object] = {
        "snapshot_id": snapshot.pk,
        "scope": scope,
        "folder": folder if scope == RestoreJob.Scope.FOLDER else "",
        "messages": chosen if scope == RestoreJob.Scope.MESSAGES else [],
        "target_folder": target,
    }
    # One restore at a time into a mailbox: the same one asked again joins it (and is not
    # counted again), another is refused until it is done.
    active = _active_restore(mailbox, wanted)
    if active is not None:
        if active.is_interrupted:  # its worker died: asking again resumes it at once
            _resume(RestoreJob, active.pk)
        return active
    _fair_use(actor, repository.customer_id, "restore")
    try:
        with transaction.atomic():
            job = RestoreJob.objects.create(
                repository=repository,
                target_mailbox=mailbox,
                requested_by=audit.actor_label(actor),
                **wanted,
            )
    except IntegrityError:  # a concurrent request won (restorejob_one_active_per_mailbox)
        active = _active_restore(mailbox, wanted)
        if active is None:
            raise
        return active
    job.request_outcome = STARTED
    audit.record(
        "backup.restore",
        mailbox,
        actor=actor,
        ip=ip,
        customer=mailbox.customer,
        job=job.pk,
        snapshot=snapshot.seq,
        scope=scope,
        folder=job.folder,
        messages=len(chosen),
        into_folder=target,
        **({"from_address": repository.address} if mailbox != repository.mailbox else {}),
    )
    enqueue_after_commit("backups.restore", job.pk, queue=settings.BACKUP_RESTORE_QUEUE)
    return job


@transaction.atomic
def download_request(*, snapshot: Snapshot, actor: Actor, ip: str | None = None) -> DownloadJob:
    """Have a worker build the snapshot as a zip of mbox files (``downloads``), to fetch
    through a signed link once it is ready. Audited, as a use of the customer's grant when
    support asks; a customer's users may ask for at most ``BACKUP_DOWNLOADS_PER_CUSTOMER``
    per window (``TryLater``)."""
    grant = roles.authorize(actor, "backup.download", customer_id=snapshot.repository.customer_id)
    repository = snapshot.repository
    _fair_use(actor, repository.customer_id, "download")
    job = DownloadJob.objects.create(
        repository=repository,
        snapshot=snapshot,
        requested_by=audit.actor_label(actor),
        for_staff=roles.kind(actor) != roles.CUSTOMER,
    )
    what = {"snapshot": snapshot.seq, "taken_at": snapshot.taken_at.isoformat(), "job": job.pk}
    target = repository.mailbox or repository
    if grant is None:
        audit.record(
            "backup.download", target, actor=actor, ip=ip, customer=repository.customer, **what
        )
    else:
        audit.record(
            "backup.download_with_grant",
            target,
            actor=actor,
            ip=ip,
            customer=repository.customer,
            grant=grant.pk,
            **what,
        )
    enqueue_after_commit("backups.download", job.pk, queue=settings.BACKUP_RESTORE_QUEUE)
    return job


def download_fetch(
    *, job: DownloadJob, token: str, actor: Actor, ip: str | None = None
) -> Iterator[bytes]:
    """The zip of a ready download, for the audience that asked for it, through its signed
    link (``downloads.check_link`` raises ``LinkInvalid`` or ``LinkExpired``). Staff need
    the right to download the customer's backups now (support: the customer's grant), and
    each fetch by staff is audited."""
    downloads.check_link(job, token)
    repository = job.repository
    grant = roles.authorize(actor, "backup.download", customer_id=repository.customer_id)
    zipped = downloads.opened(job)
    if roles.kind(actor) != roles.CUSTOMER:
        audit.record(
            "backup.download_fetch",
            repository.mailbox or repository,
            actor=actor,
            ip=ip,
            customer=repository.customer,
            job=job.pk,
            **({"grant": grant.pk} if grant is not None else {}),
        )
    return zipped


def browse_snapshot(
    *, snapshot: Snapshot, folder: str, page: str | None, actor: Actor, ip: str | None = None
) -> Page[browse.MessageSummary]:
    """One page of a snapshot folder's messages (``browse.MessageSummary``), newest first,
    with sender and subject where the identity is installed.

    Staff reading the senders and subjects of a customer's mail is audited, so the customer
    sees it in their activity; customers looking at their own mail are not. Support may look
    only with the customer's grant, and every page it opens is recorded as a use of it (even
    without the identity installed: the dates and sizes are the customer's too)."""
    grant = roles.authorize(actor, "backup.browse", customer_id=snapshot.repository.customer_id)
    rows = snapshot_messages(snapshot).filter(folder=folder).order_by("-internal_date", "-uid")
    try:
        keys = crypto.identities()
    except crypto.KeyMissing:
        keys = None
    messages = browse.Summaries(snapshot.repository, rows, keys)
    found = Paginator(messages, BROWSE_PAGE_SIZE).get_page(page)
    repository = snapshot.repository
    if grant is not None:
        audit.record(
            "backup.browse_with_grant",
            repository.mailbox or repository,
            actor=actor,
            ip=ip,
            customer=repository.customer,
            grant=grant.pk,
            snapshot=snapshot.seq,
            folder=folder,
            page=found.number,
        )
    elif getattr(actor, "is_staff", False) and keys is not None:
        audit.record(
            "backup.browse",
            repository.mailbox or repository,
            actor=actor,
            ip=ip,
            customer=repository.customer,
            snapshot=snapshot.seq,
            folder=folder,
            page=found.number,
        )
    return found


# --- Retention ----------------------------------------------------------------------------


@dataclass
class PruneResult:
    snapshots: int = 0
    blobs: int = 0
    packs: int = 0
    repositories: int = 0


def prune(now: datetime | None = None) -> PruneResult:
    """Apply every repository's retention; a repository in use is left for the next time."""
    result = PruneResult()
    for repository in Repository.objects.select_related("mailbox__plan"):
        prune_repository(repository, result, now or timezone.now())
    return result


def _snapshots_kept(
    repository: Repository, snapshots: list[Snapshot], now: datetime
) -> list[Snapshot]:
    mailbox = repository.mailbox
    if mailbox is not None and policy.covers(mailbox.plan, mailbox.protocol):
        plan = mailbox.plan
        return policy.snapshots_to_keep(
            snapshots,
            lambda s: s.taken_at,
            daily=plan.keep_daily,
            weekly=plan.keep_weekly,
            monthly=plan.keep_monthly,
        )
    # No more backups come (mailbox deleted, or its plan stopped them): everything stays
    # restorable for a grace period after the last one, then goes.
    grace = timedelta(days=settings.BACKUP_KEEP_DELETED_DAYS)
    if snapshots and max(s.taken_at for s in snapshots) + grace > now:
        return snapshots
    return []


def prune_repository(repository: Repository, result: PruneResult, now: datetime) -> None:
    """Drop the snapshots retention does not keep, the messages only they had, and the
    storage nothing needs any more. Database rows go first, objects after: a crash in
    between leaves unused objects, which the next prune removes, never a row that names a
    missing object."""
    owner = "prune-" + secrets.token_hex(8)
    if not jobs.acquire_lease(repository.pk, owner):
        return
    try:
        store = get_store()
        prefix = str(repository.key)
        snapshots = list(repository.snapshots.all())
        restoring = {
            *RestoreJob.objects.filter(repository=repository, status__in=ACTIVE).values_list(
                "snapshot_id", flat=True
            ),
            *DownloadJob.objects.filter(repository=repository, status__in=ACTIVE).values_list(
                "snapshot_id", flat=True
            ),
        }
        kept = _snapshots_kept(repository, snapshots, now)
        kept += [s for s in snapshots if s.pk in restoring and s not in kept]
        dropped = [s for s in snapshots if s not in kept]
        with transaction.atomic():
            Snapshot.objects.filter(pk__in=[s.pk for s in dropped]).delete()
            # A row that no kept snapshot covers and that is no longer on the server.
            covering = Snapshot.objects.filter(
                repository=repository,
                seq__gte=OuterRef("first_seq"),
                seq__lte=OuterRef("last_seq"),
            )
            StoredMessage.objects.filter(repository=repository, last_seq__isnull=False).exclude(
                Exists(covering)
            ).delete()
            named = StoredMessage.objects.filter(repository=repository, sha256=OuterRef("sha256"))
            result.blobs += (
                Blob.objects.filter(repository=repository)
                .exclude(Exists(named))
                .delete()[1]
                .get("backups.Blob", 0)
            )
        result.snapshots += len(dropped)
        if repository.mailbox_id is None and not kept:
            repository.delete()
            store.delete_prefix(prefix)
            result.repositories += 1
            return
        result.packs += _repack(repository, store)
        manifests = {s.manifest_key for s in kept}
        packs = {pack_key(prefix, name) for name in repository.packs.values_list("name", flat=True)}
        for key in [*store.list(f"{prefix}/snapshots"), *store.list(f"{prefix}/packs")]:
            if key not in manifests and key not in packs:  # left by a crash, or dropped above
                store.delete(key)
        store.discard_incomplete(prefix)
    finally:
        jobs.release_lease(repository.pk, owner)


def _repack(repository: Repository, store: Store) -> int:
    """Remove the packs no blob lives in, and rewrite those that are mostly dead so that
    deleted mail does not hold on to space: the live blobs are copied as they are (still
    encrypted: this needs no private key) into new packs. Returns the packs removed."""
    prefix = str(repository.key)
    packs = list(
        Pack.objects.filter(repository=repository).annotate(live=Coalesce(Sum("blobs__length"), 0))
    )
    sparse = [p for p in packs if 0 < p.live < REPACK_BELOW * p.size]
    blobs = list(
        Blob.objects.filter(pack__in=sparse).select_related("pack").order_by("pack_id", "offset")
    )
    to = crypto.recipients() if blobs else []
    for group in batches(blobs, lambda b: b.length, count=100_000, max_bytes=REPACK_BYTES):
        sealed = [
            (b.sha256, b.size, store.get_range(pack_key(prefix, b.pack.name), b.offset, b.length))
            for b in group
        ]
        new, data = build_pack(sealed, to)
        store.put(pack_key(prefix, new.name), data)
        store.flush()
        where = {packed.sha256: packed.offset for packed in new.blobs}
        with transaction.atomic():
            row = Pack.objects.create(repository=repository, name=new.name, size=new.size)
            for blob in group:
                blob.pack, blob.offset = row, where[blob.sha256]
            Blob.objects.bulk_update(group, ["pack", "offset"])
    gone = [p for p in packs if p.live == 0 or p in sparse]
    Pack.objects.filter(pk__in=[p.pk for p in gone]).delete()
    for pack in gone:
        store.delete(pack_key(prefix, pack.name))
    return len(gone)
