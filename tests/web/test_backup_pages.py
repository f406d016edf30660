"""Backup pages: staff see everything, a customer's user only the customer's own mailboxes,
anyone else a 404; every download and request is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, User
from backups.models import BackupJob, DownloadJob, JobStatus, RestoreJob
from tests.backups.helpers import mailbox, make_snapshot, message
from tests.factories import make_customer, make_domain, make_mailbox, make_plan

pytestmark = pytest.mark.django_db
__all__ = ["mailbox"]  # fixtures

IP = "198.51.100.4"


def backup_url(client: Client, name: str, *args: object) -> str:
    """A backup page behind the door of whoever is logged in (the portal's for anonymous)."""
    mount = "staff_backups" if get_user(client).is_staff else "portal_backups"
    return reverse(f"{mount}:{name}", args=args)


@pytest.fixture
def snapshot(restore_side, mailbox):  # type: ignore[no-untyped-def]
    return make_snapshot(
        mailbox, {"INBOX": [(message("one"), ["\\Seen"])], "Archiv": [(message("two"), [])]}
    )


def login(client: Client, who: str, mailbox) -> User:  # type: ignore[no-untyped-def]
    if who == "staff":
        user = User.objects.create_user("hanna", password="x-Staff-2041", is_staff=True)
    elif who == "owner":
        user = User.objects.create_user("owner", customer=mailbox.customer)
    else:
        user = User.objects.create_user("stranger", customer=make_customer("Other"))
    client.force_login(user)
    return user


@pytest.mark.parametrize("who, status", [("staff", 200), ("owner", 200), ("stranger", 404)])
def test_the_backups_page(client, mailbox, snapshot, who, status):
    login(client, who, mailbox)
    response = client.get(backup_url(client, "mailbox", mailbox.pk))
    assert response.status_code == status
    if status == 200:
        assert backup_url(client, "download", snapshot.pk) in response.content.decode()
        assert 'method="post" action="' + backup_url(client, "download", snapshot.pk) in (
            response.content.decode()
        )


def test_anonymous_users_are_sent_to_the_login(client, mailbox, snapshot):
    response = client.post(backup_url(client, "download", snapshot.pk))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("who, status", [("staff", 302), ("owner", 302), ("stranger", 404)])
def test_asking_for_a_download_starts_a_job_for_staff_and_owner_only(
    client, mailbox, snapshot, who, status, sent_tasks, django_capture_on_commit_callbacks
):
    """The web only asks: the zip is built by a worker (tests/integration/test_downloads.py)."""
    user = login(client, who, mailbox)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(backup_url(client, "download", snapshot.pk), REMOTE_ADDR=IP)

    assert response.status_code == status
    if status != 302:
        assert not AuditEntry.objects.filter(action="backup.download").exists()
        assert not DownloadJob.objects.exists()
        return
    job = DownloadJob.objects.get()
    assert response["Location"] == backup_url(client, "download_job", job.pk)
    assert [name for name, _args, _kw in sent_tasks] == ["backups.download"]
    entry = AuditEntry.objects.get(action="backup.download")
    assert (entry.actor, entry.ip_address, entry.target_id) == (user, IP, mailbox.pk)
    assert entry.customer == mailbox.customer and entry.details["snapshot"] == snapshot.seq
    assert client.get(backup_url(client, "download", snapshot.pk)).status_code == 405


def test_back_up_now_starts_one_job_and_is_audited(client, mailbox, backup_settings):
    user = login(client, "owner", mailbox)
    url = backup_url(client, "backup_now", mailbox.pk)

    first = client.post(url, REMOTE_ADDR=IP)
    client.post(url, REMOTE_ADDR=IP)

    assert first.status_code == 302
    job = BackupJob.objects.get()  # the second request found the first one still queued
    assert job.status == JobStatus.QUEUED and job.requested_by == "owner"
    entries = AuditEntry.objects.filter(action="backup.request")
    assert entries.count() == 2 and {e.actor for e in entries} == {user}


def test_back_up_now_is_refused_when_the_plan_has_no_backups(client, backup_settings):
    mailbox = make_mailbox("bob", plan=make_plan(backup_enabled=False))
    login(client, "staff", mailbox)
    response = client.post(backup_url(client, "backup_now", mailbox.pk), follow=True)
    assert "does not include backups" in response.content.decode()
    assert not BackupJob.objects.exists()


def test_a_stranger_cannot_start_anything(client, mailbox, snapshot):
    login(client, "stranger", mailbox)
    assert client.post(backup_url(client, "backup_now", mailbox.pk)).status_code == 404
    assert client.post(backup_url(client, "restore", snapshot.pk)).status_code == 404
    assert not BackupJob.objects.exists() and not RestoreJob.objects.exists()


def test_restore_of_one_folder_into_a_new_folder(client, mailbox, snapshot):
    login(client, "staff", mailbox)
    prefix = f"s{snapshot.pk}"

    response = client.post(
        backup_url(client, "restore", snapshot.pk),
        {
            f"{prefix}-scope": "folder",
            f"{prefix}-folder": "Archiv",
            f"{prefix}-into_new_folder": "on",
        },
        REMOTE_ADDR=IP,
    )

    assert response.status_code == 302
    job = RestoreJob.objects.get()
    assert (job.scope, job.folder, job.snapshot) == ("folder", "Archiv", snapshot)
    assert job.target_folder.startswith("Restored ")
    entry = AuditEntry.objects.get(action="backup.restore")
    assert entry.details["folder"] == "Archiv" and entry.ip_address == IP


def test_restore_form_errors_keep_the_page(client, mailbox, snapshot):
    login(client, "owner", mailbox)
    prefix = f"s{snapshot.pk}"
    response = client.post(
        backup_url(client, "restore", snapshot.pk), {f"{prefix}-scope": "folder"}
    )
    assert response.status_code == 400
    assert "Choose the folder to restore." in response.content.decode()
    assert not RestoreJob.objects.exists()


def test_job_progress_page_partial_and_end_of_polling(client, mailbox, backup_settings):
    login(client, "owner", mailbox)
    from backups.services import repository_for

    job = BackupJob.objects.create(
        repository=repository_for(mailbox), requested_by="x", messages_total=10, messages_done=4
    )
    url = backup_url(client, "backup_job", job.pk)

    page = client.get(url)
    assert page.status_code == 200 and "<html" in page.content.decode()

    partial = client.get(url, headers={"HX-Request": "true"})
    assert partial.status_code == 200
    text = partial.content.decode()
    assert "<html" not in text and f'hx-get="{url}"' in text and 'value="40"' in text

    BackupJob.objects.filter(pk=job.pk).update(status=JobStatus.DONE)
    done = client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx stops polling
    assert "hx-get" not in done.content.decode()


def interrupted_job(mailbox, settings, model=BackupJob, **fields):  # type: ignore[no-untyped-def]
    """A job whose worker was killed at 21 %: still ``running``, with no heartbeat since."""
    from backups import jobs
    from backups.services import repository_for

    job = model.objects.create(repository=repository_for(mailbox), requested_by="x", **fields)
    jobs.claim(model, job.pk)
    model.objects.filter(pk=job.pk).update(
        messages_total=100,
        messages_done=21,
        heartbeat_at=timezone.now() - timedelta(seconds=settings.BACKUP_DEAD_SECONDS + 5),
    )
    return job


@pytest.mark.parametrize("who", ["staff", "owner"])
def test_a_backup_whose_worker_died_shows_as_interrupted(client, mailbox, backup_settings, who):
    login(client, who, mailbox)
    job = interrupted_job(mailbox, backup_settings)
    url = backup_url(client, "backup_job", job.pk)

    for page in (
        client.get(backup_url(client, "mailbox", mailbox.pk)),
        client.get(url),
        client.get(url, headers={"HX-Request": "true"}),
    ):
        assert page.status_code == 200
        text = page.content.decode()
        assert '<span class="badge danger">interrupted</span>' in text
        assert "the process running it stopped before it finished" in text
        assert backup_url(client, "backup_now", mailbox.pk) in text  # "Resume now"
        assert 'value="21"' in text and ">running<" not in text
    assert 'hx-trigger="every 5s"' in text  # still polled, to show it resumed

    BackupJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())  # alive after all
    text = client.get(url).content.decode()
    assert '<span class="badge warn">running</span>' in text and "interrupted" not in text


def test_a_restore_whose_worker_died_shows_as_interrupted(client, mailbox, snapshot, restore_side):
    login(client, "owner", mailbox)
    job = interrupted_job(mailbox, restore_side, RestoreJob, snapshot=snapshot, scope="mailbox")

    text = client.get(backup_url(client, "restore_job", job.pk)).content.decode()

    assert '<span class="badge danger">interrupted</span>' in text
    assert "nothing is restored twice" in text


def test_back_up_now_resumes_an_interrupted_backup_and_says_so(
    client, mailbox, backup_settings, sent_tasks, django_capture_on_commit_callbacks
):
    login(client, "owner", mailbox)
    job = interrupted_job(mailbox, backup_settings)
    url = backup_url(client, "backup_now", mailbox.pk)

    with django_capture_on_commit_callbacks(execute=True):
        resumed = client.post(url, follow=True)
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(url, follow=True)

    assert "The interrupted backup is resumed." in resumed.content.decode()
    assert "The backup has been started." not in resumed.content.decode()
    assert "A backup of this mailbox is already under way." in again.content.decode()
    assert sent_tasks == [("backups.backup_mailbox", (job.pk,), {})]
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and BackupJob.objects.count() == 1


def test_a_stranger_cannot_see_a_job(client, mailbox, backup_settings):
    from backups.services import repository_for

    job = RestoreJob.objects.create(
        repository=repository_for(mailbox), requested_by="x", scope="mailbox"
    )
    login(client, "stranger", mailbox)
    assert client.get(backup_url(client, "restore_job", job.pk)).status_code == 404


# --- Choosing messages to restore ----------------------------------------------------------


@pytest.fixture
def inbox_snapshot(restore_side, mailbox):  # type: ignore[no-untyped-def]
    inbox = [(message(f"Rechnung {n}"), ["\\Seen"] if n % 2 else []) for n in range(60)]
    return make_snapshot(mailbox, {"INBOX": inbox, "Archiv": [(message("Alt"), [])]})


def browse(client: Client, snapshot, **query):  # type: ignore[no-untyped-def]
    return client.get(backup_url(client, "browse", snapshot.pk), query, REMOTE_ADDR=IP)


def test_the_owner_sees_sender_and_subject_page_by_page(client, mailbox, inbox_snapshot):
    login(client, "owner", mailbox)

    first = browse(client, inbox_snapshot).content.decode()
    second = browse(client, inbox_snapshot, folder="INBOX", page=2).content.decode()

    assert first.count('name="messages"') == 50 and second.count('name="messages"') == 10
    assert "sender@example.org" in first and "Rechnung 59" in first + second
    assert "Page 1 of 2" in first and "folder=INBOX&amp;page=2" in first
    # A customer looking at their own mail leaves no entry in the audit log.
    assert not AuditEntry.objects.filter(action="backup.browse").exists()


def test_another_folder_is_chosen_from_the_list(client, mailbox, inbox_snapshot):
    login(client, "owner", mailbox)

    page = browse(client, inbox_snapshot, folder="Archiv").content.decode()

    assert page.count('name="messages"') == 1 and "Alt" in page and "Rechnung" not in page


def test_staff_looking_into_a_customers_mail_is_audited(client, mailbox, inbox_snapshot):
    staff = login(client, "staff", mailbox)

    assert browse(client, inbox_snapshot, folder="Archiv").status_code == 200

    entry = AuditEntry.objects.get(action="backup.browse")
    assert (entry.actor, entry.customer, entry.ip_address) == (staff, mailbox.customer, IP)
    assert entry.details["folder"] == "Archiv"


def test_without_the_identity_dates_and_sizes_are_still_listed(
    client, mailbox, inbox_snapshot, settings
):
    settings.BACKUP_IDENTITY_FILE = ""
    login(client, "staff", mailbox)

    page = browse(client, inbox_snapshot).content.decode()

    assert page.count('name="messages"') == 50 and "Rechnung" not in page
    assert "backup key is installed" in page
    assert not AuditEntry.objects.filter(action="backup.browse").exists()  # nothing was read


def test_restore_of_chosen_messages(
    client, mailbox, inbox_snapshot, django_capture_on_commit_callbacks
):
    user = login(client, "owner", mailbox)
    page = browse(client, inbox_snapshot, folder="Archiv").content.decode()
    key = page.split('name="messages" value="', 1)[1].split('"', 1)[0]

    with django_capture_on_commit_callbacks():
        response = client.post(
            backup_url(client, "restore_messages", inbox_snapshot.pk),
            {"folder": "Archiv", "page": "1", "messages": [key], "into_new_folder": "on"},
        )

    assert response.status_code == 302
    job = RestoreJob.objects.get()
    validity, uid = key.split(":")
    assert job.scope == RestoreJob.Scope.MESSAGES
    assert job.messages == [["Archiv", int(validity), int(uid)]]
    assert job.target_folder.startswith("Restored ")
    assert AuditEntry.objects.get(action="backup.restore").actor == user


@pytest.mark.parametrize(
    ("chosen", "error"),
    [
        ([], "Choose at least one message."),
        (["nonsense"], "The choice of messages was not understood."),
        (["1:999999"], "Some of the chosen messages are not in this backup."),
    ],
)
def test_a_bad_choice_keeps_the_page_and_starts_nothing(
    client, mailbox, inbox_snapshot, chosen, error
):
    login(client, "owner", mailbox)

    response = client.post(
        backup_url(client, "restore_messages", inbox_snapshot.pk),
        {"folder": "INBOX", "page": "2", "messages": chosen},
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert error in page and "Page 2 of 2" in page
    assert not RestoreJob.objects.exists()


# --- Backups of a deleted mailbox --------------------------------------------------------------


@pytest.fixture
def deleted_snapshot(restore_side, mailbox):  # type: ignore[no-untyped-def]
    from mailboxes.services import mailbox_delete

    snapshot = make_snapshot(mailbox, {"INBOX": [(message("Vertrag"), ["\\Seen"])]})
    mailbox_delete(mailbox=mailbox, actor="test")
    snapshot.refresh_from_db()
    return snapshot


def test_the_customer_finds_a_deleted_mailboxs_backups_and_restores_them_elsewhere(
    client, mailbox, deleted_snapshot, django_capture_on_commit_callbacks
):
    login(client, "owner", mailbox)
    successor = make_mailbox("anna2", domain=mailbox.domain, plan=mailbox.plan)
    repository = deleted_snapshot.repository
    page = backup_url(client, "repository", repository.pk)

    assert page in client.get(reverse("portal:overview")).content.decode()
    html = client.get(page).content.decode()
    assert "This mailbox was deleted." in html and successor.address in html

    prefix = f"s{deleted_snapshot.pk}"
    with django_capture_on_commit_callbacks():
        response = client.post(
            backup_url(client, "restore", deleted_snapshot.pk),
            {f"{prefix}-into_mailbox": successor.pk, f"{prefix}-scope": "mailbox"},
        )

    assert response.status_code == 302 and response["Location"] == page
    job = RestoreJob.objects.get()
    assert (job.repository, job.target_mailbox) == (repository, successor)
    entry = AuditEntry.objects.get(action="backup.restore")
    assert entry.target_id == successor.pk and entry.details["from_address"] == repository.address
    assert f"into {successor.address}" in client.get(page).content.decode()  # the job's line


def test_a_deleted_mailboxs_backup_needs_a_target_of_the_same_customer(
    client, mailbox, deleted_snapshot
):
    login(client, "staff", mailbox)
    foreign = make_mailbox("fremd", domain=make_domain(make_customer("Other")))
    prefix = f"s{deleted_snapshot.pk}"
    url = backup_url(client, "restore", deleted_snapshot.pk)

    missing = client.post(url, {f"{prefix}-scope": "mailbox"})
    elsewhere = client.post(
        url, {f"{prefix}-scope": "mailbox", f"{prefix}-into_mailbox": foreign.pk}
    )

    assert missing.status_code == elsewhere.status_code == 400
    assert "Select a valid choice" in elsewhere.content.decode()
    assert not RestoreJob.objects.exists()


def test_the_service_refuses_another_customers_mailbox(mailbox, deleted_snapshot):
    from django.core.exceptions import ValidationError

    from backups.services import restore_request

    foreign = make_mailbox("fremd", domain=make_domain(make_customer("Other")))
    with pytest.raises(ValidationError) as refused:
        restore_request(
            snapshot=deleted_snapshot, scope="mailbox", into_mailbox=foreign, actor="test"
        )
    assert "a mailbox of its customer" in str(refused.value)
    assert not RestoreJob.objects.exists()


def test_chosen_messages_of_a_deleted_mailbox_go_into_another(client, mailbox, deleted_snapshot):
    login(client, "owner", mailbox)
    successor = make_mailbox("anna2", domain=mailbox.domain, plan=mailbox.plan)
    page = browse(client, deleted_snapshot).content.decode()
    key = page.split('name="messages" value="', 1)[1].split('"', 1)[0]
    assert "Into the mailbox" in page

    response = client.post(
        backup_url(client, "restore_messages", deleted_snapshot.pk),
        {"folder": "INBOX", "messages": [key], "into_mailbox": successor.pk},
    )

    assert response.status_code == 302
    job = RestoreJob.objects.get()
    assert job.target_mailbox == successor and job.scope == RestoreJob.Scope.MESSAGES


@pytest.mark.parametrize("damage", ["headers", "blob of a backup without headers"])
def test_a_damaged_message_is_marked_and_the_rest_still_listed(
    client, mailbox, inbox_snapshot, damage
):
    from backups.models import Blob, StoredMessage

    login(client, "owner", mailbox)
    newest = StoredMessage.objects.filter(repository=inbox_snapshot.repository, folder="INBOX")
    sha256 = newest.order_by("-uid").values_list("sha256", flat=True)[0]
    blob = Blob.objects.filter(repository=inbox_snapshot.repository, sha256=sha256)
    if damage == "headers":  # the sealed display headers are garbage
        blob.update(headers=b"not age at all")
    else:
        # Stored before headers were kept, and the index points at the wrong bytes.
        Blob.objects.filter(repository=inbox_snapshot.repository).update(headers=None)
        blob.update(offset=blob.get().offset + 1)

    page = browse(client, inbox_snapshot).content.decode()

    assert page.count(">unreadable<") == 1 and page.count("sender@example.org") == 49
    assert "backup key is installed" not in page  # the key is here; one message is broken


def test_a_message_whose_sender_cannot_be_parsed_does_not_fail_the_page(
    client, mailbox, restore_side
):
    # "From: .:" made the standard library's address parser raise AttributeError (a 500).
    hostile = b"From: .:\r\nSubject: Kaputt\r\n\r\nbody\r\n"
    snapshot = make_snapshot(mailbox, {"INBOX": [(hostile, []), (message("fine"), [])]})
    login(client, "owner", mailbox)

    response = browse(client, snapshot)

    page = response.content.decode()
    assert response.status_code == 200
    assert "(unreadable)" in page and "Kaputt" in page and "sender@example.org" in page


def test_browsing_reads_the_sealed_headers_not_the_messages(
    client, mailbox, inbox_snapshot, monkeypatch
):
    from backups import browse as browse_module

    def no_messages(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a message was decrypted to browse")

    monkeypatch.setattr(browse_module, "read_blob", no_messages)
    login(client, "owner", mailbox)

    page = browse(client, inbox_snapshot).content.decode()

    assert page.count("sender@example.org") == 50 and "Rechnung 59" in page


def test_a_backup_from_before_the_headers_were_kept_is_still_browsed(
    client, mailbox, inbox_snapshot
):
    from backups.models import Blob

    Blob.objects.filter(repository=inbox_snapshot.repository).update(headers=None)
    login(client, "owner", mailbox)

    page = browse(client, inbox_snapshot).content.decode()

    assert page.count("sender@example.org") == 50 and "unreadable" not in page
