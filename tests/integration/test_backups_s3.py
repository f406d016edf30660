"""Backups kept in S3 (moto's real S3 server): back up from the real Dovecot, prune, check
and restore, with nothing written to the local backup directory."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from backups import services
from backups.models import JobStatus, Snapshot
from backups.packs import pack_key
from backups.s3store import S3Store
from backups.store import get_store
from tests.backups import helpers
from tests.backups.helpers import append, imap, mailbox_contents, message
from tests.factories import make_mailbox, make_plan
from tests.integration.test_backups import backup_now, empty, fill, restore_now, wait

pytestmark = pytest.mark.integration

backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
s3_server = helpers.s3_server
s3_settings = helpers.s3_settings


def backup_check(*args: str) -> str:
    out = io.StringIO()
    call_command("backup_check", *args, "--read-data", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_backup_prune_check_and_restore_with_the_store_in_s3(
    dovecot, mail_server, celery_worker, s3_settings, backup_keys
):
    s3_settings.BACKUP_IDENTITY_FILE = str(backup_keys.identity_file)
    plan = make_plan(keep_daily=1, keep_weekly=0, keep_monthly=0)
    anna = make_mailbox("anna", plan=plan)
    fill(dovecot, anna.address)
    job = wait(services.backup_request(mailbox=anna, actor="test"))  # by the worker
    assert job.status == JobStatus.DONE, job.error
    first = job.snapshot
    with imap(dovecot, anna.address) as client:
        client.select_folder("INBOX")
        client.delete_messages(client.search(["SUBJECT", "one"]))
        client.expunge()
        append(client, "INBOX", message("three", size=2000), (b"\\Seen",), helpers.DATE)
    wanted = mailbox_contents(dovecot, anna.address)
    second = backup_now(anna).snapshot

    store = get_store()
    assert isinstance(store, S3Store)
    repository = second.repository
    prefix = str(repository.key)
    stored = set(store.list(prefix))
    assert {first.manifest_key, second.manifest_key} <= stored
    assert {pack_key(prefix, p.name) for p in repository.packs.all()} <= stored
    assert not s3_settings.BACKUP_ROOT.exists()  # nothing went to the local directory

    # A worker that died left an object no row names and an upload it never finished.
    store.put(f"{prefix}/packs/left-by-a-crash.pack", b"orphan")
    store.client.create_multipart_upload(
        Bucket=store.bucket, Key=f"{store.prefix}/{prefix}/packs/unfinished.pack"
    )
    now = timezone.now()
    Snapshot.objects.filter(pk=first.pk).update(taken_at=now - timedelta(days=1))

    result = services.prune(now)

    assert result.snapshots == 1
    assert list(Snapshot.objects.values_list("pk", flat=True)) == [second.pk]
    assert store.size(first.manifest_key) is None
    assert store.size(f"{prefix}/packs/left-by-a-crash.pack") is None
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    assert set(store.list(prefix)) == {second.manifest_key} | {
        pack_key(prefix, p.name) for p in repository.packs.all()
    }

    # backup_check reads every pack back from S3 and opens every manifest and message.
    assert backup_check(anna.address).strip().endswith("OK")

    empty(dovecot, anna.address)
    restore = restore_now(second)
    assert restore.status == JobStatus.DONE, restore.error
    assert mailbox_contents(dovecot, anna.address) == wanted

    # What the bucket lost or changed, backup_check finds.
    pack = repository.packs.first()
    store.put(pack_key(prefix, pack.name), b"\0" * pack.size)
    assert f"pack damaged (its SHA-256 is not its name): {pack.name}" in failed_check(anna)
    store.delete(pack_key(prefix, pack.name))
    assert f"pack missing: {pack.name}" in failed_check(anna)


def failed_check(mailbox) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 backup has problems"):
        call_command(
            "backup_check", mailbox.address, "--read-data", stdout=out, stderr=io.StringIO()
        )
    return out.getvalue()
