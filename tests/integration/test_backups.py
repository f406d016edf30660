"""Backups against the real Dovecot, through a real Celery worker on Redis."""

from __future__ import annotations

import io
import os
import signal
import time
from email.message import EmailMessage

import pyrage
import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import User
from backups import crypto, engine, services
from backups import restore as restore_engine
from backups.archive import snapshot_archive
from backups.manifest import Manifest, read_manifest
from backups.models import (
    BackupJob,
    Blob,
    FolderState,
    JobStatus,
    RestoreJob,
    Snapshot,
    StoredMessage,
)
from backups.packs import locate, read_blob, read_toc
from backups.store import StoreError, get_store
from backups.tasks import backup_mailbox, check_all
from mailboxes.models import MIB, Mailbox
from mailboxes.services import mailbox_delete
from mailserver.imap import MailboxSession
from provider.celery import app
from tests.backups import helpers
from tests.backups.helpers import append, imap, mailbox_contents, message
from tests.factories import make_mailbox, make_plan
from tests.workers import start_worker_process, stop_workers

pytestmark = pytest.mark.integration


# The fixtures the unit tests get from tests/backups/conftest.py.
backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
restore_side = helpers.restore_side

DATE = helpers.DATE


def wait(job: BackupJob | RestoreJob, timeout: float = 60) -> BackupJob | RestoreJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if not job.is_active:
            return job
        time.sleep(0.05)
    raise AssertionError(f"{job} still {job.status} after {timeout} s")


def fill(dovecot, address: str) -> None:
    with imap(dovecot, address) as client:
        client.create_folder("Projekte/Bäckerei")
        client.create_folder("Архив")
        append(client, "INBOX", message("one"), (b"\\Seen",), DATE)
        append(client, "INBOX", message("two", size=3000), (b"\\Flagged", b"$Label1"), DATE)
        append(client, "Sent", message("sent"), (b"\\Seen", b"\\Answered"), DATE)
        append(client, "Projekte/Bäckerei", message("nested"), (), DATE)
        append(
            client, "Архив", message("archived", charset_8bit=True, body="Grüße, Ärger"), (), DATE
        )


def test_round_trip_through_the_worker(
    dovecot, mail_server, celery_worker, backup_settings, backup_keys
):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    before = mailbox_contents(dovecot, anna.address)

    job = wait(services.backup_request(mailbox=anna, actor="test"))
    assert job.status == JobStatus.DONE, job.error
    snapshot = job.snapshot
    assert snapshot.messages == 5
    # The scheduled check of the stored files, on the same worker, finds nothing wrong.
    check_all.delay()
    repository = job.repository
    deadline = time.monotonic() + 30
    while repository.checked_at is None:
        assert time.monotonic() < deadline, "the check did not run"
        time.sleep(0.05)
        repository.refresh_from_db()
    assert repository.check_problems == []

    with imap(dovecot, anna.address) as client:
        for folder in before:
            client.select_folder(folder)
            uids = client.search()
            if uids:
                client.delete_messages(uids)
                client.expunge()
        client.delete_folder("Projekte/Bäckerei")

    backup_settings.BACKUP_IDENTITY_FILE = str(backup_keys.identity_file)
    restore = wait(services.restore_request(snapshot=snapshot, scope="mailbox", actor="test"))
    assert restore.status == JobStatus.DONE, restore.error
    assert restore.messages_restored == 5
    assert mailbox_contents(dovecot, anna.address) == before


# --- Direct runs: the same code the tasks call, without the broker in between ------------


def backup_now(mailbox) -> BackupJob:  # type: ignore[no-untyped-def]
    job = BackupJob.objects.create(repository=services.repository_for(mailbox), requested_by="test")
    engine.run_backup(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    return job


def restore_now(snapshot, scope: str = "mailbox", *, into_new_folder: bool = False, **fields):  # type: ignore[no-untyped-def]
    target = services.restored_folder_name(snapshot, "en") if into_new_folder else ""
    job = RestoreJob.objects.create(
        repository=snapshot.repository,
        snapshot=snapshot,
        target_mailbox=snapshot.repository.mailbox,
        scope=scope,
        target_folder=target,
        requested_by="test",
        **fields,
    )
    restore_engine.run_restore(job.pk)
    job.refresh_from_db()
    return job


def manifest_of(snapshot) -> Manifest:  # type: ignore[no-untyped-def]
    return read_manifest(get_store(), snapshot.manifest_key, crypto.identities())


def empty(dovecot, address: str) -> None:  # type: ignore[no-untyped-def]
    with imap(dovecot, address) as client:
        for flags, _delimiter, name in client.list_folders():
            if b"\\Noselect" in flags:
                continue
            client.select_folder(name)
            uids = client.search()
            if uids:
                client.delete_messages(uids)
                client.expunge()


def test_a_mailbox_deleted_through_the_api_after_a_final_backup_by_the_worker(
    dovecot, mail_server, celery_worker, restore_side
):
    from rest_framework.test import APIClient

    from accounts.api_keys import api_key_create

    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    client = APIClient()
    token = api_key_create(name="billing", role="admin", read_only=False, actor="test").token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = client.delete(f"/api/v1/mailboxes/{anna.pk}/?final_backup=true")
    assert response.status_code == 202
    job = wait(BackupJob.objects.get(pk=response.json()["id"]))
    assert job.status == JobStatus.DONE, job.error
    deadline = time.monotonic() + 30
    while Mailbox.objects.filter(pk=anna.pk).exists():
        assert time.monotonic() < deadline, "the mailbox was not deleted after its backup"
        time.sleep(0.05)
    assert job.snapshot.messages == 5  # what it held is kept, to download or restore


def test_a_deleted_mailboxs_backup_goes_into_another_mailbox(dovecot, mail_server, restore_side):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    before = mailbox_contents(dovecot, anna.address)
    snapshot = backup_now(anna).snapshot
    mailbox_delete(mailbox=anna, actor="test")
    successor = make_mailbox("anna.neu", domain=anna.domain, plan=anna.plan)
    snapshot.refresh_from_db()

    job = services.restore_request(
        snapshot=snapshot, scope="mailbox", into_mailbox=successor, actor="test"
    )
    restore_engine.run_restore(job.pk)
    job.refresh_from_db()

    assert job.status == JobStatus.DONE, job.error
    assert job.messages_restored == 5
    assert mailbox_contents(dovecot, successor.address) == before


def test_restoring_twice_adds_nothing_twice(dovecot, mail_server, restore_side):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    before = mailbox_contents(dovecot, anna.address)
    snapshot = backup_now(anna).snapshot

    same = restore_now(snapshot)
    assert (same.status, same.messages_restored, same.messages_skipped) == ("done", 0, 5)
    assert mailbox_contents(dovecot, anna.address) == before

    first = restore_now(snapshot, into_new_folder=True)
    again = restore_now(snapshot, into_new_folder=True)

    assert (first.messages_restored, first.messages_skipped) == (5, 0)
    assert (again.messages_restored, again.messages_skipped) == (0, 5)
    after = mailbox_contents(dovecot, anna.address)
    root = services.restored_folder_name(snapshot, "en")
    assert after[f"{root}/Projekte/Bäckerei"] == before["Projekte/Bäckerei"]
    assert after[f"{root}/INBOX"] == before["INBOX"]
    assert sum(len(m) for name, m in after.items() if name.startswith(root)) == 5


def subscriptions(dovecot, address: str) -> set[str]:  # type: ignore[no-untyped-def]
    with imap(dovecot, address) as client:
        return {name for _flags, _delimiter, name in client.list_sub_folders()}


def set_flags(client, folder: str, subject: str, flags: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    """Give the message with this subject exactly these flags, as a mail client would."""
    client.select_folder(folder)
    client.set_flags(client.search(["SUBJECT", subject]), flags)


def test_a_restore_into_the_original_folders_brings_back_flags_and_subscriptions(
    dovecot, mail_server, restore_side
):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    with imap(dovecot, anna.address) as client:
        client.subscribe_folder("Projekte/Bäckerei")
    before = mailbox_contents(dovecot, anna.address)
    subscribed = subscriptions(dovecot, anna.address)
    assert "Projekte/Bäckerei" in subscribed and "Архив" not in subscribed
    snapshot = backup_now(anna).snapshot
    with imap(dovecot, anna.address) as client:
        set_flags(client, "INBOX", "one", [])  # read, now unread again
        set_flags(client, "INBOX", "two", [b"\\Seen", b"$Todo"])  # \Flagged, $Label1 gone
        set_flags(client, "Sent", "sent", [b"\\Seen", b"\\Answered", b"\\Deleted"])
        client.unsubscribe_folder("Projekte/Bäckerei")
        client.subscribe_folder("Архив")
        client.create_folder("Später")  # not in the snapshot: left as it is
        client.subscribe_folder("Später")
    assert mailbox_contents(dovecot, anna.address) != before

    job = restore_now(snapshot)

    assert (job.status, job.messages_restored, job.messages_skipped) == ("done", 0, 5)
    after = mailbox_contents(dovecot, anna.address)
    assert {name: after[name] for name in before} == before  # flags and keywords as then
    assert subscriptions(dovecot, anna.address) == subscribed | {"Später"}


def test_a_restore_into_a_new_folder_leaves_flags_and_subscriptions_as_they_are(
    dovecot, mail_server, restore_side
):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    with imap(dovecot, anna.address) as client:
        client.subscribe_folder("Projekte/Bäckerei")
    before = mailbox_contents(dovecot, anna.address)
    snapshot = backup_now(anna).snapshot
    with imap(dovecot, anna.address) as client:
        set_flags(client, "INBOX", "one", [b"$Todo"])
        client.unsubscribe_folder("Projekte/Bäckerei")
    now = mailbox_contents(dovecot, anna.address)
    subscribed_now = subscriptions(dovecot, anna.address)

    copy = restore_now(snapshot, into_new_folder=True)

    assert (copy.status, copy.messages_restored, copy.messages_skipped) == ("done", 5, 0)
    after = mailbox_contents(dovecot, anna.address)
    assert {name: after[name] for name in now} == now
    root = services.restored_folder_name(snapshot, "en")
    # Every folder the restore creates is subscribed, whatever the snapshot recorded.
    assert subscriptions(dovecot, anna.address) == subscribed_now | {
        f"{root}/{name}" for name in before
    }
    # The snapshot did record the other state: into the original folders it comes back.
    restore_now(snapshot)
    after = mailbox_contents(dovecot, anna.address)
    assert {name: after[name] for name in before} == before
    assert "Projekte/Bäckerei" in subscriptions(dovecot, anna.address)


def test_one_folder_brings_back_its_subscription_chosen_messages_only_their_flags(
    dovecot, mail_server, restore_side
):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    with imap(dovecot, anna.address) as client:
        client.subscribe_folder("Projekte/Bäckerei")
        client.select_folder("Архив")
        (archived,) = client.search()
        uidvalidity = client.folder_status("Архив", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    before = mailbox_contents(dovecot, anna.address)
    snapshot = backup_now(anna).snapshot
    with imap(dovecot, anna.address) as client:
        set_flags(client, "INBOX", "one", [])
        set_flags(client, "Projekte/Bäckerei", "nested", [b"\\Seen"])
        set_flags(client, "Архив", "archived", [b"\\Flagged"])
        client.unsubscribe_folder("Projekte/Bäckerei")
        client.subscribe_folder("Архив")

    folder = restore_now(snapshot, "folder", folder="Projekte/Bäckerei")
    chosen = restore_now(snapshot, "messages", messages=[["Архив", uidvalidity, archived]])

    assert (folder.status, chosen.status) == ("done", "done")
    after = mailbox_contents(dovecot, anna.address)
    assert after["Projekte/Bäckerei"] == before["Projekte/Bäckerei"]
    assert after["Архив"] == before["Архив"]
    assert after["INBOX"] != before["INBOX"]  # not restored: as it is now
    assert {"Projekte/Bäckerei", "Архив"} <= subscriptions(dovecot, anna.address)


def test_a_snapshot_without_subscriptions_restores_flags_and_subscribes_what_it_creates(
    dovecot, mail_server, restore_side
):
    anna = make_mailbox("anna")
    raw = message("one")
    with imap(dovecot, anna.address) as client:
        append(client, "INBOX", raw, (), helpers.DATE)
        client.create_folder("Alt")  # exists, not subscribed: stays so
    # Written as manifests were before subscriptions were recorded.
    snapshot = helpers.make_snapshot(
        anna, {"INBOX": [(raw, ["\\Seen"])], "Alt": [], "Neu": [(message("two"), [])]}
    )
    assert {f.subscribed for f in manifest_of(snapshot).folders} == {None}

    job = restore_now(snapshot)

    assert (job.status, job.messages_restored, job.messages_skipped) == ("done", 1, 1)
    after = mailbox_contents(dovecot, anna.address)
    assert [flags for _sha256, flags, _date in after["INBOX"]] == [("\\Seen",)]
    subscribed = subscriptions(dovecot, anna.address)
    assert "Neu" in subscribed and "Alt" not in subscribed


def test_a_changed_subscription_alone_makes_a_new_manifest(
    dovecot, mail_server, restore_side, monkeypatch
):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    first = backup_now(anna).snapshot
    recorded = {f.name: f.subscribed for f in manifest_of(first).folders}
    assert recorded["Sent"] is True and recorded["Архив"] is False
    with imap(dovecot, anna.address) as client:
        client.subscribe_folder("Архив")  # moves no STATUS value

    def die(self, folders):  # type: ignore[no-untyped-def]
        raise StoreError("disk gone")

    monkeypatch.setattr(engine._Run, "_finish", die)
    dead = BackupJob.objects.create(repository=first.repository, requested_by="test")
    engine.run_backup(dead.pk)
    dead.refresh_from_db()
    assert dead.status == "failed"
    monkeypatch.undo()
    second = backup_now(anna)  # the run that died had seen the change: it is not lost

    assert (second.messages_total, second.snapshot.seq) == (0, 2)
    assert second.snapshot.manifest_key != first.manifest_key
    archive = next(f for f in manifest_of(second.snapshot).folders if f.name == "Архив")
    assert archive.subscribed is True
    third = backup_now(anna).snapshot
    assert third.manifest_key == second.snapshot.manifest_key  # unchanged again

    # Folder states saved before subscriptions were recorded: one new manifest records them.
    FolderState.objects.filter(repository=first.repository).update(subscribed=None)
    fourth = backup_now(anna).snapshot
    assert fourth.manifest_key != third.manifest_key
    assert {f.name: f.subscribed for f in manifest_of(fourth).folders} == {
        **recorded,
        "Архив": True,
    }


def test_an_unchanged_mailbox_costs_almost_nothing(dovecot, mail_server, restore_side, monkeypatch):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    first = backup_now(anna)
    assert (first.messages_total, first.messages_done, first.blobs_written) == (5, 5, 5)

    selected: list[str] = []
    original = MailboxSession.select
    monkeypatch.setattr(
        MailboxSession,
        "select",
        lambda self, name, **kwargs: selected.append(name) or original(self, name, **kwargs),
    )
    second = backup_now(anna)

    assert selected == []  # STATUS said nothing changed: no folder even opened
    assert (second.messages_total, second.bytes_fetched, second.blobs_written) == (0, 0, 0)
    assert second.snapshot.messages == 5 and second.snapshot.seq == 2
    assert second.snapshot.manifest_key == first.snapshot.manifest_key  # the same contents

    with imap(dovecot, anna.address) as client:
        client.select_folder("Sent")
        client.add_flags(client.search(), [b"$Done"])
        append(client, "INBOX", message("new one"), (), DATE)
    third = backup_now(anna)

    assert set(selected) == {"INBOX", "Sent"}
    assert (third.messages_total, third.blobs_written) == (1, 1)
    sent = next(f for f in manifest_of(third.snapshot).folders if f.name == "Sent")
    assert sent.messages[0].flags == ["$Done", "\\Answered", "\\Seen"]
    old_sent = next(f for f in manifest_of(first.snapshot).folders if f.name == "Sent")
    assert old_sent.messages[0].flags == ["\\Answered", "\\Seen"]  # snapshots do not change


def test_deleted_mail_stays_in_older_snapshots(dovecot, mail_server, restore_side):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    before = mailbox_contents(dovecot, anna.address)
    first = backup_now(anna).snapshot
    with imap(dovecot, anna.address) as client:
        client.select_folder("INBOX")
        uids = client.search()
        client.delete_messages(uids[:1])
        client.expunge()
        uidvalidity = client.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]

    second = backup_now(anna).snapshot

    assert (first.messages, second.messages) == (5, 4)
    gone = StoredMessage.objects.get(uid=uids[0], folder="INBOX")
    assert (gone.first_seq, gone.last_seq) == (1, 1)

    job = restore_now(first, "messages", messages=[["INBOX", uidvalidity, uids[0]]])

    assert (job.status, job.messages_restored) == ("done", 1)
    assert mailbox_contents(dovecot, anna.address) == before


def test_a_new_uidvalidity_means_a_full_resync_of_that_folder(dovecot, mail_server, restore_side):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    first = backup_now(anna).snapshot
    with imap(dovecot, anna.address) as client:
        client.delete_folder("Projekte/Bäckerei")
        client.create_folder("Projekte/Bäckerei")
        append(client, "Projekte/Bäckerei", message("nested"), (), DATE)  # the same message
        append(client, "Projekte/Bäckerei", message("nested 2"), (), DATE)

    job = backup_now(anna)

    assert (job.messages_total, job.blobs_written) == (2, 1)  # fetched again, stored once
    old = next(f for f in manifest_of(first).folders if f.name == "Projekte/Bäckerei")
    new = next(f for f in manifest_of(job.snapshot).folders if f.name == "Projekte/Bäckerei")
    assert new.uidvalidity != old.uidvalidity
    assert [m.uid for m in new.messages] == [1, 2] and len(old.messages) == 1
    assert new.messages[0].sha256 == old.messages[0].sha256
    assert job.snapshot.messages == 6

    empty(dovecot, anna.address)
    restore_now(job.snapshot, "folder", folder="Projekte/Bäckerei")
    assert len(mailbox_contents(dovecot, anna.address)["Projekte/Bäckerei"]) == 2


def test_messages_without_or_with_the_same_message_id(dovecot, mail_server, restore_side):
    anna = make_mailbox("anna")
    twin = message("twin", "first body", message_id="<same@example.org>")
    latin1 = (
        b"From: a@example.org\r\nSubject: 8bit\r\nContent-Type: text/plain; charset=latin-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xfc\xdfe aus K\xf6ln\r\n"
    )
    with imap(dovecot, anna.address) as client:
        append(client, "INBOX", message("no id", message_id=None), (), DATE)
        append(client, "INBOX", twin, (b"\\Seen",), DATE)
        append(client, "INBOX", twin, (), DATE)  # the very same message twice
        append(client, "INBOX", message("other", "another body", message_id="<same@example.org>"))
        append(client, "INBOX", latin1, (), DATE)
    before = mailbox_contents(dovecot, anna.address)
    snapshot = backup_now(anna).snapshot
    assert snapshot.messages == 5
    inbox = next(f for f in manifest_of(snapshot).folders if f.name == "INBOX")
    assert len({m.sha256 for m in inbox.messages}) == 4
    empty(dovecot, anna.address)

    first = restore_now(snapshot)
    again = restore_now(snapshot)

    assert (first.messages_restored, again.messages_restored, again.messages_skipped) == (5, 0, 5)
    assert mailbox_contents(dovecot, anna.address) == before


def test_a_20_mb_attachment(dovecot, mail_server, restore_side):
    anna = make_mailbox("anna", quota_bytes=200 * MIB)
    big = EmailMessage()
    big["From"], big["To"], big["Subject"] = "a@example.org", anna.address, "big"
    big.set_content("See attachment.")
    big.add_attachment(os.urandom(20 * MIB), maintype="application", subtype="octet-stream")
    raw = big.as_bytes().replace(b"\n", b"\r\n")
    with imap(dovecot, anna.address) as client:
        append(client, "INBOX", raw, (b"\\Seen",), DATE)
    before = mailbox_contents(dovecot, anna.address)

    job = backup_now(anna)

    assert job.bytes_fetched == len(raw) > 27_000_000
    empty(dovecot, anna.address)
    restored = restore_now(job.snapshot)
    assert restored.bytes_restored == len(raw)
    assert mailbox_contents(dovecot, anna.address) == before


def test_the_worker_cannot_decrypt_what_it_wrote(
    dovecot, mail_server, backup_settings, celery_worker
):
    anna = make_mailbox("anna")
    with imap(dovecot, anna.address) as client:
        client.create_folder("Geheim")
        append(client, "Geheim", message("Quarterly figures", "confidential"), (), DATE)
    assert backup_settings.BACKUP_IDENTITY_FILE == ""  # the worker has the public key only

    job = wait(services.backup_request(mailbox=anna, actor="test"))

    assert job.status == JobStatus.DONE, job.error
    with pytest.raises(crypto.KeyMissing):
        crypto.identities()
    store = get_store()
    objects = list(store.list(str(job.repository.key)))
    assert len(objects) == 2  # one pack, one manifest
    stranger = [pyrage.x25519.Identity.generate()]
    for key in objects:
        data = store.get(key)
        assert b"confidential" not in data and b"Geheim" not in data and b"Quarterly" not in data
    manifest_key, pack = sorted(objects, key=lambda k: "/packs/" in k)
    with pytest.raises(crypto.DecryptFailed):
        crypto.unseal(store.get(manifest_key), stranger)
    with pytest.raises(crypto.DecryptFailed):
        read_toc(store.get(pack), stranger)
    blob = Blob.objects.get()
    with pytest.raises(crypto.DecryptFailed):
        crypto.unseal(store.get_range(pack, blob.offset, blob.length), stranger)
    # Restoring and downloading need the identity, which this side does not have.
    with pytest.raises(crypto.KeyMissing):
        list(snapshot_archive(job.snapshot))
    failed = restore_now(job.snapshot)
    assert failed.status == "failed" and "BACKUP_IDENTITY_FILE" in failed.error


def test_a_worker_killed_mid_backup_shows_interrupted_and_back_up_now_resumes_it(
    dovecot, mail_server, backup_settings, backup_keys, settings, client, monkeypatch
):
    anna = make_mailbox("anna")
    count = 600
    with imap(dovecot, anna.address) as imap_client:
        for start in range(0, count, 100):
            imap_client.multiappend(
                "INBOX", [message(f"m{i}", f"body {i}") for i in range(start, start + 100)]
            )
    dead_after = 3  # seconds without a heartbeat (a minute by default)
    settings.BACKUP_DEAD_SECONDS = dead_after  # as the web side reads it
    # The broker's visibility timeout stays at its 6 h: it gives the killed run's message
    # to no one during this test. What resumes the job is "Back up now".
    env = helpers.backup_worker_env(
        backup_keys,
        BACKUP_IDENTITY_FILE="",
        BACKUP_BATCH_MESSAGES="3",  # slow enough to be killed in the middle
        BACKUP_DEAD_SECONDS=str(dead_after),
    )
    queue = f"backup-kill-test-{os.getpid()}"
    sent = []
    send_task = app.send_task

    # What the service sends goes to this test's own worker process, not the shared queue.
    def to_this_test_worker(name, *args, **options):  # type: ignore[no-untyped-def]
        sent.append((name, options.get("args")))
        return send_task(name, *args, **{**options, "queue": queue})

    job = BackupJob.objects.create(repository=services.repository_for(anna), requested_by="test")
    first = start_worker_process(queue, env)
    second = None
    try:
        backup_mailbox.apply_async((job.pk,), queue=queue)
        deadline = time.monotonic() + 60
        while job.messages_done < 30:
            assert time.monotonic() < deadline, "the backup did not start"
            time.sleep(0.01)
            job.refresh_from_db()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING and 30 <= job.messages_done < count
        assert not Snapshot.objects.exists()  # nothing half done is visible

        # Staff and the customer see it interrupted as soon as the heartbeat is overdue.
        owner = User.objects.create_user("owner", customer=anna.customer)
        staff = User.objects.create_user("ops", password="x-Staff-2041", is_staff=True)
        badge = '<span class="badge danger">interrupted</span>'
        pages = [
            (owner, reverse("portal_backups:backup_job", args=[job.pk]), badge),
            (owner, reverse("portal_backups:mailbox", args=[anna.pk]), badge),
            (staff, reverse("staff_backups:backup_job", args=[job.pk]), badge),
            (staff, reverse("staff:dashboard"), "backup interrupted"),
        ]
        for user, url, shown in pages:
            client.force_login(user)
            while shown not in client.get(url).content.decode():
                assert time.monotonic() - killed < dead_after + 5, f"{url} not interrupted"
                time.sleep(0.1)

        client.force_login(owner)
        monkeypatch.setattr(app, "send_task", to_this_test_worker)
        response = client.post(reverse("portal_backups:backup_now", args=[anna.pk]), follow=True)
        assert "The interrupted backup is resumed." in response.content.decode()
        assert sent == [("backups.backup_mailbox", (job.pk,))]  # sent once, the same job
        second = start_worker_process(queue, env)
        job = wait(job, timeout=90)
    finally:
        stop_workers(first, second)

    assert job.status == JobStatus.DONE, job.error
    assert job.attempts == 2
    assert job.snapshot.messages == count
    rows = StoredMessage.objects.filter(repository=job.repository)
    assert rows.count() == count == len(set(rows.values_list("uid", flat=True)))
    blobs = Blob.objects.filter(repository=job.repository)
    assert blobs.count() == count  # each message stored exactly once
    settings.BACKUP_IDENTITY_FILE = str(backup_keys.identity_file)
    locations = locate(job.repository_id, blobs.values_list("sha256", flat=True))
    for sha256 in locations:  # every one of them readable and intact
        read_blob(get_store(), str(job.repository.key), sha256, locations, crypto.identities())
    manifest_uids = [m.uid for f in manifest_of(job.snapshot).folders for m in f.messages]
    assert sorted(manifest_uids) == sorted(rows.values_list("uid", flat=True))
    # And what the operator's check says of it, reading every byte:
    report = io.StringIO()
    call_command("backup_check", anna.address, "--read-data", stdout=report)
    assert f"{count} stored messages in" in report.getvalue()
    assert report.getvalue().rstrip().endswith(": OK")


def test_a_run_that_died_before_its_manifest_is_completed_by_the_next(
    dovecot, mail_server, restore_side, monkeypatch
):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    first = backup_now(anna).snapshot
    with imap(dovecot, anna.address) as client:
        client.select_folder("INBOX")
        client.add_flags(client.search(), [b"\\Answered"])  # only flags change

    def die(self, folders):  # type: ignore[no-untyped-def]
        raise StoreError("disk gone")

    monkeypatch.setattr(engine._Run, "_finish", die)
    dead = BackupJob.objects.create(repository=first.repository, requested_by="test")
    engine.run_backup(dead.pk)
    dead.refresh_from_db()
    assert (dead.status, dead.error, dead.snapshot) == ("failed", "disk gone", None)
    monkeypatch.undo()

    job = backup_now(anna)  # everything is stored and verified: nothing left to fetch

    assert (job.messages_total, job.snapshot.seq) == (0, 2)
    assert job.snapshot.manifest_key != first.manifest_key
    inbox = next(f for f in manifest_of(job.snapshot).folders if f.name == "INBOX")
    assert all("\\Answered" in m.flags for m in inbox.messages)
    old_inbox = next(f for f in manifest_of(first).folders if f.name == "INBOX")
    assert not any("\\Answered" in m.flags for m in old_inbox.messages)  # as it was


def test_a_full_mailbox_stops_the_restore_and_the_rest_comes_with_more_quota(
    dovecot, mail_server, restore_side
):
    anna = make_mailbox("anna", quota_bytes=10 * MIB)
    with imap(dovecot, anna.address) as client:
        client.multiappend("INBOX", [message(f"m{i}", size=300_000) for i in range(20)])
    before = mailbox_contents(dovecot, anna.address)
    snapshot = backup_now(anna).snapshot
    empty(dovecot, anna.address)
    anna.quota_bytes = 2 * MIB
    anna.save(update_fields=["quota_bytes"])  # Dovecot reads it on the next login

    failed = restore_now(snapshot)

    assert failed.status == "failed" and "over its quota" in failed.error
    # MULTIAPPEND stores a chunk whole or not at all: the counts say what is there.
    assert len(mailbox_contents(dovecot, anna.address)["INBOX"]) == failed.messages_restored
    anna.quota_bytes = 10 * MIB
    anna.save(update_fields=["quota_bytes"])
    done = restore_now(snapshot)
    assert done.status == "done"
    assert mailbox_contents(dovecot, anna.address) == before


def test_a_pop3_mailbox_is_backed_up_when_the_plan_includes_it(
    dovecot, mail_server, restore_side, deliver
):
    plan = make_plan(protocol="pop3", backup_enabled=True, backup_include_pop3=True)
    bob = make_mailbox("bob", protocol="pop3", plan=plan)
    deliver(bob.address, message("not downloaded yet"))

    job = backup_now(bob)  # over IMAP, as the master user: POP3-only boxes allow that

    assert job.snapshot.messages == 1
