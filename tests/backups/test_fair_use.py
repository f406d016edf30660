"""Fair use of restores and downloads: one restore at a time into a mailbox, a limit per
customer for its users, and plain errors for customers (the technical ones for staff)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client

from accounts import throttle
from accounts.models import User
from backups import services
from backups.models import PLAIN_ERRORS, JobStatus, RestoreJob
from tests.backups.helpers import mailbox, make_snapshot, message
from tests.web.test_backup_pages import backup_url

pytestmark = pytest.mark.django_db
__all__ = ["mailbox"]  # fixtures


@pytest.fixture
def snapshot(restore_side, mailbox):  # type: ignore[no-untyped-def]
    return make_snapshot(
        mailbox, {"INBOX": [(message("one"), [])], "Archiv": [(message("two"), [])]}
    )


@pytest.fixture
def owner(mailbox) -> User:  # type: ignore[no-untyped-def]
    return User.objects.create_user("owner", customer=mailbox.customer)


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("hanna", password="x-Staff-2041", is_staff=True)


def restore(snapshot, actor, **what):  # type: ignore[no-untyped-def]
    return services.restore_request(
        snapshot=snapshot, scope=what.pop("scope", "mailbox"), actor=actor, **what
    )


def test_the_same_restore_asked_again_joins_the_one_under_way(snapshot, owner):
    first = restore(snapshot, owner)
    again = restore(snapshot, owner)

    assert again.pk == first.pk and again.request_outcome == services.JOINED
    assert first.request_outcome == services.STARTED
    assert RestoreJob.objects.count() == 1


def test_another_restore_into_the_same_mailbox_waits_for_the_first(snapshot, owner):
    first = restore(snapshot, owner)

    with pytest.raises(ValidationError, match="already under way"):
        restore(snapshot, owner, scope="folder", folder="Archiv")

    RestoreJob.objects.filter(pk=first.pk).update(status=JobStatus.DONE)
    assert restore(snapshot, owner, scope="folder", folder="Archiv").pk != first.pk


def test_the_database_allows_one_active_restore_per_mailbox(snapshot, mailbox):
    RestoreJob.objects.create(
        repository=snapshot.repository, target_mailbox=mailbox, scope="mailbox", requested_by="x"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        RestoreJob.objects.create(
            repository=snapshot.repository,
            target_mailbox=mailbox,
            scope="folder",
            folder="INBOX",
            requested_by="y",
            status=JobStatus.RUNNING,
        )


def test_a_customers_restores_are_limited_and_staffs_are_not(snapshot, owner, staff, settings):
    settings.BACKUP_RESTORES_PER_CUSTOMER = 2
    for _ in range(2):
        job = restore(snapshot, owner)
        RestoreJob.objects.filter(pk=job.pk).update(status=JobStatus.DONE)

    with pytest.raises(services.TryLater) as refused:
        restore(snapshot, owner)
    assert refused.value.status == 429 and "as many restores as allowed" in refused.value.message

    assert restore(snapshot, staff).request_outcome == services.STARTED


def test_joining_a_restore_under_way_is_not_counted(snapshot, owner, settings):
    settings.BACKUP_RESTORES_PER_CUSTOMER = 1
    first = restore(snapshot, owner)
    assert restore(snapshot, owner).pk == first.pk


def test_downloads_are_limited_per_customer_not_per_user(snapshot, owner, settings):
    settings.BACKUP_DOWNLOADS_PER_CUSTOMER = 1
    colleague = User.objects.create_user("colleague", customer=owner.customer)
    services.download_request(snapshot=snapshot, actor=owner)

    with pytest.raises(services.TryLater):
        services.download_request(snapshot=snapshot, actor=colleague)


def test_without_the_counters_a_customer_is_refused_for_now(snapshot, owner, settings):
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}
    }
    throttle._client.cache_clear()
    try:
        with pytest.raises(services.TryLater) as refused:
            restore(snapshot, owner)
        assert refused.value.status == 503
        assert not RestoreJob.objects.exists()
    finally:
        throttle._client.cache_clear()


# --- The pages ------------------------------------------------------------------------------


def test_the_page_says_plainly_when_the_customers_restores_are_spent(
    client: Client, snapshot, owner, settings
):
    settings.BACKUP_RESTORES_PER_CUSTOMER = 0
    client.force_login(owner)
    prefix = f"s{snapshot.pk}"

    response = client.post(
        backup_url(client, "restore", snapshot.pk), {f"{prefix}-scope": "mailbox"}
    )

    assert response.status_code == 429
    page = response.content.decode()
    assert "as many restores as allowed within 60 minutes" in page
    assert backup_url(client, "mailbox", snapshot.repository.mailbox_id) in page
    assert not RestoreJob.objects.exists()


def test_the_download_page_says_plainly_when_the_customers_downloads_are_spent(
    client: Client, snapshot, owner, settings
):
    settings.BACKUP_DOWNLOADS_PER_CUSTOMER = 0
    client.force_login(owner)

    response = client.post(backup_url(client, "download", snapshot.pk))

    assert response.status_code == 429
    assert "as many downloads as allowed" in response.content.decode()


def test_a_second_restore_of_the_same_says_it_is_under_way(client: Client, snapshot, owner):
    client.force_login(owner)
    prefix = f"s{snapshot.pk}"
    url = backup_url(client, "restore", snapshot.pk)
    client.post(url, {f"{prefix}-scope": "mailbox"})

    response = client.post(url, {f"{prefix}-scope": "mailbox"}, follow=True)

    assert "This restore is already under way." in response.content.decode()
    assert RestoreJob.objects.count() == 1


TECHNICAL = "unexpected error: OSError(28, 'No space left on device: /var/lib/postamt/x')"


@pytest.mark.parametrize("who", ["owner", "staff"])
def test_customers_see_a_plain_error_and_staff_the_technical_one(
    client: Client, snapshot, owner, staff, who
):
    job = RestoreJob.objects.create(
        repository=snapshot.repository,
        target_mailbox=snapshot.repository.mailbox,
        scope="mailbox",
        requested_by="x",
        status=JobStatus.FAILED,
        error=TECHNICAL,
    )
    client.force_login(owner if who == "owner" else staff)

    page = client.get(backup_url(client, "restore_job", job.pk)).content.decode()

    if who == "staff":
        assert "/var/lib/postamt" in page
    else:
        assert "/var/lib/postamt" not in page and "OSError" not in page
        assert "Something went wrong on our side" in page


def test_an_error_written_for_customers_is_shown_to_them_translated(snapshot):
    job = RestoreJob(error="the snapshot was deleted by retention")
    assert job.customer_error == "the snapshot was deleted by retention"
    assert RestoreJob(error=TECHNICAL).customer_error.startswith("Something went wrong")


def test_every_error_marked_for_customers_is_known_as_plain():
    """A new ``gettext_noop`` message in the engine or the restore must be listed in
    ``PLAIN_ERRORS``, or customers would see the generic sentence instead."""
    marked = set()
    for module in ("engine.py", "restore.py"):
        tree = ast.parse((Path(services.__file__).parent / module).read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "gettext_noop"
            ):
                marked.add(ast.literal_eval(node.args[0]))
    assert marked and marked <= PLAIN_ERRORS


# --- Suspended mailboxes --------------------------------------------------------------------


@pytest.fixture
def suspended(snapshot, mailbox):  # type: ignore[no-untyped-def]
    from mailboxes.services import mailbox_suspend

    mailbox_suspend(mailbox=mailbox, actor="test")
    return snapshot


def test_a_suspended_mailboxs_backups_are_for_staff_only_by_default(
    client: Client, suspended, owner, staff
):
    client.force_login(owner)
    page = client.get(backup_url(client, "mailbox", suspended.repository.mailbox_id))
    assert page.status_code == 200
    html = page.content.decode()
    assert "only our staff can download or restore them" in html
    assert backup_url(client, "download", suspended.pk) not in html
    assert client.post(backup_url(client, "download", suspended.pk)).status_code == 404
    assert client.get(backup_url(client, "browse", suspended.pk)).status_code == 404

    client.force_login(staff)
    assert client.post(backup_url(client, "download", suspended.pk)).status_code == 302
    assert client.get(backup_url(client, "browse", suspended.pk)).status_code == 200


def test_the_setting_gives_customers_a_suspended_mailboxs_backups(
    client: Client, suspended, owner, settings
):
    settings.BACKUP_SUSPENDED_ACCESS = "customer"
    client.force_login(owner)

    html = client.get(backup_url(client, "mailbox", suspended.repository.mailbox_id)).content
    assert "only our staff" not in html.decode()
    assert client.post(backup_url(client, "download", suspended.pk)).status_code == 302


def test_asking_again_for_an_interrupted_restore_resumes_it(
    snapshot, owner, sent_tasks, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    first = restore(snapshot, owner)
    RestoreJob.objects.filter(pk=first.pk).update(
        status=JobStatus.RUNNING, claim="dead", heartbeat_at=timezone.now() - timedelta(hours=1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        again = restore(snapshot, owner)

    assert again.pk == first.pk and again.request_outcome == services.JOINED
    assert [args for name, args, _kw in sent_tasks if name == "backups.restore"] == [(first.pk,)]
