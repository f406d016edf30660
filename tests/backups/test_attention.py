"""The staff overview's "Backups needing attention": failed, overdue, and what the scheduled
check of the stored files found."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from backups import check, selectors, services
from backups.models import BackupJob, JobStatus, Pack, Repository, RestoreJob
from backups.packs import pack_key
from mailboxes.models import Mailbox
from tests.backups.helpers import make_snapshot, message
from tests.factories import make_mailbox

pytestmark = pytest.mark.django_db


def attention() -> list[tuple[str, str]]:
    return [(a.address, a.kind) for a in selectors.needing_attention().items]


def job(repository: Repository, status: str, error: str = "") -> BackupJob:
    return BackupJob.objects.create(
        repository=repository,
        requested_by="beat",
        status=status,
        error=error,
        finished_at=timezone.now(),
    )


def test_a_mailbox_whose_last_backup_failed_until_one_succeeds(backup_settings):
    repository = services.repository_for(make_mailbox("anna"))
    repository.last_backup_at = timezone.now()
    repository.save()

    job(repository, JobStatus.FAILED, "cannot log in as the master user")
    assert attention() == [(repository.address, "failed")]
    assert selectors.needing_attention().items[0].detail == "cannot log in as the master user"

    job(repository, JobStatus.DONE)
    assert attention() == []


def test_overdue_after_two_intervals_without_a_snapshot(backup_settings):
    now = timezone.now()
    on_time = services.repository_for(make_mailbox("anna"))
    late = services.repository_for(make_mailbox("bert"))
    # Never backed up, not even scheduled: the beat task itself runs on the backup queue.
    never = make_mailbox("carl")
    new = make_mailbox("dora")
    Repository.objects.filter(pk=on_time.pk).update(last_backup_at=now - timedelta(hours=30))
    Repository.objects.filter(pk=late.pk).update(last_backup_at=now - timedelta(hours=50))
    Mailbox.objects.filter(pk=never.pk).update(created_at=now - timedelta(days=3))

    assert sorted(attention()) == sorted([(late.address, "overdue"), (never.address, "overdue")])
    assert new.address not in dict(attention())  # created today: nothing is late yet

    # A suspended mailbox is not backed up on purpose: nothing to look at.
    Mailbox.objects.filter(pk=late.mailbox_id).update(status=Mailbox.Status.SUSPENDED)
    assert attention() == [(never.address, "overdue")]


def test_a_fleet_of_overdue_mailboxes_shows_the_first_few_and_how_many(
    backup_settings, client: Client, monkeypatch: pytest.MonkeyPatch
):
    first = make_mailbox("anna")
    for name in ("bert", "carl", "dora"):
        make_mailbox(name, domain=first.domain)
    Mailbox.objects.update(created_at=timezone.now() - timedelta(days=3))

    found = selectors.needing_attention(overdue_shown=2)
    assert [a.address.split("@")[0] for a in found.items] == ["anna", "bert"]
    assert (found.overdue_total, found.overdue_not_shown) == (4, 2)

    monkeypatch.setattr(selectors, "OVERDUE_SHOWN", 3)
    client.force_login(User.objects.create_user("hanna", is_staff=True))
    html = client.get(reverse("staff:dashboard")).content.decode()
    assert html.count("never backed up") == 3
    assert "And 1 more overdue mailbox." in html


def test_the_scheduled_check_reads_every_pack_without_a_key(backup_settings, backup_keys, settings):
    settings.BACKUP_IDENTITY_FILE = str(backup_keys.identity_file)
    mailbox = make_mailbox("anna")
    make_snapshot(mailbox, {"INBOX": [(message("one"), [])]})
    settings.BACKUP_IDENTITY_FILE = ""  # as on a backup worker
    repository = Repository.objects.get(mailbox=mailbox)
    Repository.objects.filter(pk=repository.pk).update(last_backup_at=timezone.now())
    pack = Pack.objects.get(repository=repository)
    path = Path(settings.BACKUP_ROOT, pack_key(str(repository.key), pack.name))
    sound = path.read_bytes()
    path.write_bytes(sound[:-1] + bytes([sound[-1] ^ 1]))

    assert check.record_check(repository.pk).problems
    [item] = selectors.needing_attention().items
    assert item.kind == "check" and "pack damaged" in item.problems[0]

    path.write_bytes(sound)  # restored from the hoster's own copy, say
    assert check.record_check(repository.pk).problems == []
    assert attention() == []
    assert Repository.objects.get(pk=repository.pk).checked_at is not None


def test_the_staff_overview_shows_them(client: Client, backup_settings):
    repository = services.repository_for(make_mailbox("anna"))
    repository.last_backup_at = timezone.now()
    repository.save()
    job(
        repository,
        JobStatus.FAILED,
        "time limit reached; what was stored is kept and the next run continues",
    )
    client.force_login(User.objects.create_user("ops", password="x-Staff-2041", is_staff=True))

    html = client.get(reverse("staff:dashboard"), HTTP_ACCEPT_LANGUAGE="de").content.decode()

    assert "Sicherungen, die Aufmerksamkeit brauchen" in html
    assert "letzte Sicherung fehlgeschlagen" in html
    assert "Zeitlimit erreicht" in html  # the job's error, translated where it is shown
    assert reverse("staff_backups:mailbox", args=[repository.mailbox_id]) in html


def running(repository: Repository, model=BackupJob, *, beat: float, started: float, **fields):  # type: ignore[no-untyped-def]
    """A running job that last beat ``beat`` seconds ago and started ``started`` ago."""
    now = timezone.now()
    return model.objects.create(
        repository=repository,
        requested_by="beat",
        status=JobStatus.RUNNING,
        claim="a-run",
        heartbeat_at=now - timedelta(seconds=beat),
        started_at=now - timedelta(seconds=started),
        **fields,
    )


def test_interrupted_and_long_running_jobs(backup_settings, settings):
    settings.BACKUP_LONG_RUNNING_MINUTES = 30
    dead, slow, fine, restored = (
        services.repository_for(make_mailbox(name)) for name in ("anna", "bert", "carl", "dora")
    )
    Repository.objects.update(last_backup_at=timezone.now())
    killed = running(dead, beat=settings.BACKUP_DEAD_SECONDS + 1, started=120)
    stuck = running(slow, beat=2, started=31 * 60)
    running(fine, beat=2, started=29 * 60)  # working, and not for long yet
    restore = running(restored, RestoreJob, beat=600, started=700, scope="mailbox")

    items = {a.address: a for a in selectors.needing_attention().items}

    assert sorted(attention()) == sorted(
        [
            (dead.address, "interrupted"),
            (slow.address, "running long"),
            (restored.address, "interrupted"),
        ]
    )
    assert (items[dead.address].job, items[dead.address].job_kind) == (killed, "backup")
    assert items[dead.address].since == killed.heartbeat_at  # the last sign of life
    assert items[slow.address].since == stuck.started_at
    assert (items[restored.address].job, items[restored.address].job_kind) == (restore, "restore")


def test_the_staff_overview_lists_an_interrupted_backup(client: Client, backup_settings):
    repository = services.repository_for(make_mailbox("anna"))
    Repository.objects.update(last_backup_at=timezone.now())
    killed = running(
        repository, beat=backup_settings.BACKUP_DEAD_SECONDS + 5, started=300, messages_total=100
    )
    BackupJob.objects.filter(pk=killed.pk).update(messages_done=21)
    client.force_login(User.objects.create_user("ops", password="x-Staff-2041", is_staff=True))

    html = client.get(reverse("staff:dashboard")).content.decode()
    assert "backup interrupted" in html and "at 21 %" in html
    assert reverse("staff_backups:backup_job", args=[killed.pk]) in html
    assert "None: every backup ran on time" not in html

    german = client.get(reverse("staff:dashboard"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Sicherung unterbrochen" in german
