"""Every backups route of both mounts, read from the URL patterns: another customer's user gets
404 for the owner's objects (page, htmx partial, download and form posts alike), each audience
gets 404 on the other's mount, and nothing changes; the owner and staff get through their own."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from accounts.models import User
from backups.models import BackupJob, DownloadJob, RestoreJob
from backups.selectors import deleted_mailbox_backups
from backups.services import repository_for
from mailboxes.services import mailbox_delete
from tests.backups.helpers import make_snapshot, message
from tests.factories import make_customer, make_domain, make_mailbox

pytestmark = pytest.mark.django_db


def backup_routes() -> list[tuple[str, list[str]]]:
    mounts = {
        p.namespace: p
        for p in get_resolver().url_patterns
        if isinstance(p, URLResolver) and p.app_name == "backups"
    }
    assert set(mounts) == {"staff_backups", "portal_backups"}
    routes = {
        name: [(p.name, sorted(p.pattern.converters)) for p in mount.url_patterns]
        for name, mount in mounts.items()
    }
    assert routes["staff_backups"] == routes["portal_backups"]  # one set of pages, two doors
    return routes["portal_backups"]


# A finished download's file is reached by a signed link, not by an id alone: who may follow
# it (owner, other customers, the other door, expired or tampered links) is tested end to end
# with a real worker in tests/integration/test_downloads.py.
SIGNED_LINK_ROUTES = {"download_file"}
ROUTES = [(name, kwargs) for name, kwargs in backup_routes() if name not in SIGNED_LINK_ROUTES]


@pytest.fixture
def objects(restore_side) -> dict[str, int]:  # type: ignore[no-untyped-def]
    mailbox = make_mailbox("anna", domain=make_domain(make_customer("Bäckerei Müller")))
    snapshot = make_snapshot(mailbox, {"INBOX": [(message("one"), ["\\Seen"])]})
    repository = repository_for(mailbox)
    backup = BackupJob.objects.create(repository=repository, requested_by="x")
    restore = RestoreJob.objects.create(repository=repository, requested_by="x", scope="mailbox")
    download = DownloadJob.objects.create(
        repository=repository, snapshot=snapshot, requested_by="x"
    )
    old = make_mailbox("old", domain=mailbox.domain, plan=mailbox.plan)
    make_snapshot(old, {"INBOX": [(message("kept"), [])]})
    mailbox_delete(mailbox=old, actor="test")  # its backups stay, reachable by repository
    return {
        "repository_id": repository_for_deleted(mailbox.customer),
        "mailbox_id": mailbox.pk,
        "snapshot_id": snapshot.pk,
        "job_id": {  # type: ignore[dict-item]
            "backup_job": backup.pk,
            "restore_job": restore.pk,
            "download_job": download.pk,
        },
        "customer": mailbox.customer,  # type: ignore[dict-item]
    }


def repository_for_deleted(customer) -> int:  # type: ignore[no-untyped-def]
    return deleted_mailbox_backups(customer.pk).get().pk


def url(name: str, kwargs: list[str], objects: dict, mount: str) -> str:  # type: ignore[type-arg]
    values = {k: objects[k][name] if isinstance(objects[k], dict) else objects[k] for k in kwargs}
    return reverse(f"{mount}:{name}", kwargs=values)


def test_every_route_takes_an_object_this_test_knows() -> None:
    assert ROUTES
    for name, kwargs in ROUTES:
        assert kwargs and set(kwargs) <= {
            "mailbox_id",
            "snapshot_id",
            "job_id",
            "repository_id",
        }, name


@pytest.mark.parametrize(
    ("who", "mount"),
    [("stranger", "portal_backups"), ("owner", "staff_backups"), ("staff", "portal_backups")],
    ids=["stranger-portal", "owner-staff-door", "staff-portal-door"],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(("name", "kwargs"), ROUTES, ids=[n for n, _k in ROUTES])
def test_nobody_gets_in_through_a_door_not_theirs(
    client: Client, objects, name, kwargs, htmx, who, mount
):
    if who == "stranger":
        user = User.objects.create_user("stranger", customer=make_customer("Other"))
    elif who == "owner":
        user = User.objects.create_user("owner", customer=objects["customer"])
    else:
        user = User.objects.create_user("hanna", is_staff=True)
    client.force_login(user)
    target = url(name, kwargs, objects, mount)
    headers = {"HX-Request": "true"} if htmx else {}
    statuses = {
        client.get(target, headers=headers).status_code,
        client.post(target, headers=headers).status_code,
    }
    assert statuses <= {404, 405} and 404 in statuses, (target, statuses)
    assert BackupJob.objects.count() == 1 and RestoreJob.objects.count() == 1


@pytest.mark.parametrize(
    ("who", "mount"), [("owner", "portal_backups"), ("staff", "staff_backups")]
)
@pytest.mark.parametrize(("name", "kwargs"), ROUTES, ids=[n for n, _k in ROUTES])
def test_the_owner_and_staff_get_through_their_own_door(
    client: Client, objects, name, kwargs, who, mount
):
    if who == "owner":
        user = User.objects.create_user("owner", customer=objects["customer"])
    else:
        user = User.objects.create_user("hanna", is_staff=True)
    client.force_login(user)
    target = url(name, kwargs, objects, mount)
    statuses = {client.get(target).status_code, client.post(target).status_code}
    assert 404 not in statuses and statuses & {200, 302, 400}, (target, statuses)
