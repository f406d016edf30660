"""Backups: one repository per mailbox, its snapshots, what was stored, and the jobs.

The storage (see ``store.py`` and docs/backups.md) holds only encrypted data. The database is
the worker's memory between runs: the workers hold only the public key and cannot read back the
manifests they wrote, so what an incremental run needs (folder states, the messages already
stored) lives here, next to the folder names the usage poll already keeps.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from accounts.models import Customer
from mailboxes.models import Mailbox


class Repository(models.Model):
    """Where one mailbox's backups live. It outlives the mailbox (see ``policy``)."""

    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    mailbox = models.OneToOneField(
        Mailbox,
        verbose_name=_("mailbox"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="backup_repository",
    )
    # Kept so a deleted mailbox's backups can still be named, found and downloaded.
    address = models.CharField(_("address"), max_length=320)
    customer = models.ForeignKey(
        Customer, verbose_name=_("customer"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Number of the last snapshot written; the running backup builds number ``seq + 1``.
    seq = models.PositiveIntegerField(default=0, editable=False)
    # When the job that made the last snapshot was scheduled, or when the scheduled pass last
    # found the mailbox exactly as that snapshot recorded it (``checked_unchanged_at``): the
    # base of the next due time, and how current the last snapshot is.
    last_backup_at = models.DateTimeField(_("last backup"), null=True, editable=False)
    # When the scheduled pass last skipped the mailbox because its folders' STATUS, read from
    # the server's doveadm API, was the last snapshot's (see ``unchanged``).
    checked_unchanged_at = models.DateTimeField(
        _("last found unchanged"), null=True, editable=False
    )
    # One writer at a time (a backup, a restore or a prune), with a lease that a dead
    # worker cannot hold for ever.
    lease_owner = models.CharField(max_length=64, blank=True, editable=False)
    lease_until = models.DateTimeField(null=True, editable=False)
    # What the scheduled check (``check.record_check``) last found in the store.
    checked_at = models.DateTimeField(_("last checked"), null=True, editable=False)
    check_problems = models.JSONField(default=list, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["address"]
        verbose_name = _("backup repository")
        verbose_name_plural = _("backup repositories")

    def __str__(self) -> str:
        return self.address


class Snapshot(models.Model):
    """One point in time of a mailbox, described by its encrypted manifest in the store."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="snapshots")
    seq = models.PositiveIntegerField(_("number"))
    taken_at = models.DateTimeField(_("taken"))
    manifest_key = models.CharField(max_length=300)
    folders = models.PositiveIntegerField(_("folders"))
    messages = models.PositiveIntegerField(_("messages"))
    size_bytes = models.BigIntegerField(_("size (bytes)"))

    class Meta:
        ordering = ["-taken_at"]
        verbose_name = _("snapshot")
        verbose_name_plural = _("snapshots")
        constraints = [
            models.UniqueConstraint(fields=["repository", "seq"], name="snapshot_unique_seq")
        ]

    def __str__(self) -> str:
        return f"{self.repository} #{self.seq} ({self.taken_at:%Y-%m-%d %H:%M})"


class FolderState(models.Model):
    """What the last run saw of one folder: where the next incremental run starts."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="folders")
    name = models.CharField(max_length=1000)
    delimiter = models.CharField(max_length=1, blank=True)
    uidvalidity = models.BigIntegerField()
    uidnext = models.BigIntegerField()
    highestmodseq = models.BigIntegerField(null=True)
    messages = models.BigIntegerField()
    # Subscriptions move no STATUS value, so the last one seen is kept to notice a change.
    # NULL: saved before subscriptions were recorded.
    subscribed = models.BooleanField(null=True)
    # The snapshot number of the run that saved this state (it may not have finished).
    seq = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["repository", "name"], name="folderstate_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Pack(models.Model):
    """One pack file in the store (see ``packs``), named by the SHA-256 of its bytes."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="packs")
    name = models.CharField(max_length=64)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="pack_unique")]

    def __str__(self) -> str:
        return self.name


class Blob(models.Model):
    """A message's content, stored once per repository and found by its SHA-256."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="blobs")
    sha256 = models.CharField(max_length=64)
    # RESTRICT: a pack is deleted only once no blob lives in it (or with its repository).
    pack = models.ForeignKey(Pack, on_delete=models.RESTRICT, related_name="blobs")
    offset = models.BigIntegerField()
    length = models.BigIntegerField()  # sealed, in the pack
    size = models.BigIntegerField()  # of the message
    # The message's From, Subject and Date lines (``browse.display_block``), sealed like a
    # blob: the browse page decrypts these few hundred bytes, not the message. NULL for
    # blobs stored before they were kept (the page then reads the message).
    headers = models.BinaryField(null=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["repository", "sha256"], name="blob_unique_sha256")
        ]

    def __str__(self) -> str:
        return self.sha256


class StoredMessage(models.Model):
    """One message of one folder as backed up, and the snapshots ``first_seq..last_seq``
    it belongs to (``last_seq`` is NULL while it is still on the server).

    Prune keeps a row while a kept snapshot falls in its range, and a ``Blob`` while a row
    names it: that is how deleted mail stays restorable until retention drops it.
    """

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="messages")
    folder = models.CharField(max_length=1000)
    uidvalidity = models.BigIntegerField()
    uid = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    flags = models.JSONField(default=list)
    internal_date = models.DateTimeField()
    message_id = models.CharField(max_length=998, blank=True)
    first_seq = models.PositiveIntegerField()
    last_seq = models.PositiveIntegerField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["repository", "folder", "uidvalidity", "uid"],
                name="storedmessage_unique_uid",
            )
        ]
        indexes = [
            models.Index(fields=["repository", "sha256"]),
            models.Index(fields=["repository", "last_seq"]),
        ]

    def __str__(self) -> str:
        return f"{self.folder} {self.uidvalidity}/{self.uid}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


ACTIVE = [JobStatus.QUEUED, JobStatus.RUNNING]
# Not a status of its own: a running job whose run stopped beating (see ``interrupted``).
INTERRUPTED = "interrupted"
INTERRUPTED_LABEL = _("interrupted")


def dead_before(now: datetime | None = None) -> datetime:
    """A run that has not beaten since then is dead (``BACKUP_DEAD_SECONDS``)."""
    return (now or timezone.now()) - timedelta(seconds=settings.BACKUP_DEAD_SECONDS)


def interrupted(now: datetime | None = None) -> Q:
    """The jobs whose run died: still running, with no heartbeat for ``BACKUP_DEAD_SECONDS``.
    Nothing writes this state: it is read from the heartbeat, so it shows as soon as it is
    true, and ends when a new run claims the job."""
    return Q(status=JobStatus.RUNNING, heartbeat_at__lt=dead_before(now))


# The job errors written for the people whose mail it is (marked with ``gettext_noop`` where
# they are raised, translated when shown). Any other error (a mail server's answer, an
# exception's ``repr()``, a path on the backup host) is for staff only: a customer sees
# ``Job.customer_error``'s plain sentence instead. tests/backups/test_fair_use.py checks that
# every ``gettext_noop`` of the engine and the restore is listed here.
PLAIN_ERRORS = frozenset(
    {
        gettext_noop("the mailbox was deleted"),
        gettext_noop("the snapshot was deleted by retention"),
        gettext_noop("some of the chosen messages are not in the snapshot"),
        gettext_noop(
            "the mailbox is over its quota: raise the quota and run the restore"
            " again (what was restored stays)"
        ),
        gettext_noop("time limit reached; run the restore again to add the rest"),
        gettext_noop("time limit reached; what was stored is kept and the next run continues"),
        gettext_noop("time limit reached; please ask for the download again"),
    }
)


class Job(models.Model):
    """What backup and restore jobs share: the row is the truth about a job's state."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(
        _("status"), max_length=8, choices=JobStatus.choices, default=JobStatus.QUEUED
    )
    requested_by = models.CharField(_("requested by"), max_length=150)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # The run that holds the job; a run that finds another token here has been replaced.
    claim = models.CharField(max_length=32, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True)
    finished_at = models.DateTimeField(_("finished"), null=True)
    messages_total = models.PositiveIntegerField(_("messages to do"), default=0)
    messages_done = models.PositiveIntegerField(_("messages done"), default=0)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_interrupted(self) -> bool:
        """See ``interrupted``: its worker died mid-run; resuming it continues the work."""
        return (
            self.status == JobStatus.RUNNING
            and self.heartbeat_at is not None
            and self.heartbeat_at < dead_before()
        )

    @property
    def state(self) -> str:
        """The status as shown: ``INTERRUPTED`` for a running job whose run died."""
        return INTERRUPTED if self.is_interrupted else self.status

    def get_state_display(self) -> str:
        return str(INTERRUPTED_LABEL) if self.is_interrupted else self.get_status_display()

    @property
    def customer_error(self) -> str:
        """The error as a customer may read it: one of ``PLAIN_ERRORS``, translated, or a
        plain sentence in place of a technical one (which staff see as it is)."""
        if not self.error:
            return ""
        if self.error in PLAIN_ERRORS:
            return gettext(self.error)
        return gettext(
            "Something went wrong on our side. Our staff see this too and will look into it; "
            "you can try again later."
        )

    @property
    def percent(self) -> int:
        if self.status == JobStatus.DONE:
            return 100
        if not self.messages_total:
            return 0
        return min(100, self.messages_done * 100 // self.messages_total)


class BackupJob(Job):
    """One backup of one mailbox; ``messages_total`` counts the messages it has to fetch."""

    messages_on_server = models.PositiveIntegerField(_("messages on the server"), default=0)
    bytes_fetched = models.BigIntegerField(_("bytes fetched"), default=0)
    blobs_written = models.PositiveIntegerField(_("new blobs"), default=0)
    bytes_written = models.BigIntegerField(_("bytes stored"), default=0)
    snapshot = models.OneToOneField(
        Snapshot, null=True, on_delete=models.SET_NULL, related_name="job"
    )
    # A final backup: the mailbox is deleted once this job has stored its snapshot, and kept
    # if it fails (``services.mailbox_delete_after_backup``).
    delete_mailbox_after = models.BooleanField(_("delete the mailbox afterwards"), default=False)
    # Not stored: what ``services.backup_request`` did to get the job it returns (started
    # it, found it under way, or resumed it after its worker died), for the caller to say.
    request_outcome = ""

    class Meta(Job.Meta):
        verbose_name = _("backup job")
        verbose_name_plural = _("backup jobs")
        constraints = [
            models.UniqueConstraint(
                fields=["repository"],
                condition=Q(status__in=ACTIVE),
                name="backupjob_one_active",
            )
        ]

    def __str__(self) -> str:
        return f"backup {self.repository} ({self.status})"


class RestoreJob(Job):
    """Puts a snapshot's messages (all, one folder, or chosen ones) back into the mailbox."""

    class Scope(models.TextChoices):
        MAILBOX = "mailbox", _("whole mailbox")
        FOLDER = "folder", _("one folder")
        MESSAGES = "messages", _("chosen messages")

    snapshot = models.ForeignKey(
        Snapshot, null=True, on_delete=models.SET_NULL, related_name="restores"
    )
    scope = models.CharField(_("what"), max_length=8, choices=Scope.choices)
    folder = models.CharField(_("folder"), max_length=1000, blank=True)
    # [[folder, uidvalidity, uid], ...] for ``Scope.MESSAGES``.
    messages = models.JSONField(default=list, blank=True)
    # The mailbox the messages go into: the backup's own, or, for the backup of a deleted
    # mailbox, another of the same customer's. None once that mailbox is deleted.
    target_mailbox = models.ForeignKey(
        Mailbox,
        verbose_name=_("into mailbox"),
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Empty: into the original folders; else the name of the folder they go under.
    target_folder = models.CharField(_("restored into"), max_length=1000, blank=True)
    messages_restored = models.PositiveIntegerField(_("messages restored"), default=0)
    messages_skipped = models.PositiveIntegerField(_("already there"), default=0)
    bytes_restored = models.BigIntegerField(_("bytes restored"), default=0)
    # Not stored: whether ``services.restore_request`` started this job or joined the same
    # restore already under way (``services.STARTED`` or ``services.JOINED``).
    request_outcome = ""

    class Meta(Job.Meta):
        verbose_name = _("restore job")
        verbose_name_plural = _("restore jobs")
        constraints = [
            # Fair use: one restore at a time into a mailbox (``services.restore_request``
            # joins the same one or refuses another).
            models.UniqueConstraint(
                fields=["target_mailbox"],
                condition=Q(status__in=ACTIVE),
                name="restorejob_one_active_per_mailbox",
            )
        ]

    def __str__(self) -> str:
        return f"restore {self.repository} ({self.status})"


class DownloadJob(Job):
    """A snapshot as a zip of mbox files, built by a worker that holds the identity and sealed
    to a key of its own (``secret``) into a short-lived object of the store, which the web
    serves through a signed link without the backup identity (see ``downloads``)."""

    snapshot = models.ForeignKey(
        Snapshot, null=True, on_delete=models.SET_NULL, related_name="downloads"
    )
    # Who may fetch it: staff (with the customer's grant where support needs one), or the
    # users of the customer, never the one for the other.
    for_staff = models.BooleanField(default=False, editable=False)
    # Set once the run starts writing, so that a sweep spares an object still being built;
    # emptied, with the key, when the download expires.
    object_key = models.CharField(max_length=300, blank=True, editable=False)
    # The age identity this download alone is sealed to; it never leaves the database.
    secret = models.TextField(blank=True, editable=False)
    size_bytes = models.BigIntegerField(_("size (bytes)"), default=0)
    expires_at = models.DateTimeField(_("expires"), null=True)

    class Meta(Job.Meta):
        verbose_name = _("download")
        verbose_name_plural = _("downloads")

    def __str__(self) -> str:
        return f"download {self.repository} ({self.status})"

    @property
    def is_ready(self) -> bool:
        return (
            self.status == JobStatus.DONE
            and bool(self.object_key)
            and self.expires_at is not None
            and self.expires_at > timezone.now()
        )

    @property
    def is_expired(self) -> bool:
        return self.status == JobStatus.DONE and not self.is_ready
