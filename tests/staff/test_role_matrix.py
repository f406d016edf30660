"""Every staff URL for every kind of user: support, admin, auditor, a customer, nobody.

The table below must name every route under /staff/ (the test walks the URL patterns), so a
new page cannot ship without saying who may use it. For each route and role:

- nobody is sent to the login page, and a customer's user gets a 404 (staff URLs are not
  even revealed to exist);
- a staff role the route is not for gets a 403 and nothing changes (no audit entry, no row);
- a staff role it is for gets through: the page (200), the result of the action (a redirect,
  or a download), never a 403 or 404.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.api_keys import api_key_create
from accounts.models import ApiKey, AuditEntry, Customer, StaffRole, User
from backups.downloads import link_token, run_download
from backups.models import BackupJob, DownloadJob, RestoreJob
from mailboxes.imports import check, job_create
from mailboxes.models import Mailbox
from mailboxes.plan_changes import plan_change_request
from tests.backups.helpers import backup_keys, backup_settings, make_snapshot, message, restore_side
from tests.factories import make_customer, make_domain, make_mailbox, make_plan, make_server
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_create, endpoint_test

pytestmark = pytest.mark.django_db
__all__ = ["backup_keys", "backup_settings", "restore_side"]  # fixtures

SUPPORT, ADMIN, AUDITOR = StaffRole.SUPPORT, StaffRole.ADMIN, StaffRole.AUDITOR
STAFF = {SUPPORT, ADMIN, AUDITOR}
READERS = STAFF
HANDLERS = {SUPPORT, ADMIN}  # the day-to-day: suspend, passwords, refresh, back up now
ADMINS = {ADMIN}


@dataclass
class World:
    customer: Customer
    mailbox: Mailbox
    ids: dict[str, Any]


@pytest.fixture
def world(restore_side: Any) -> World:
    customer = make_customer("Bäckerei Müller")
    domain = make_domain(customer, "baeckerei.example")
    plan = make_plan(max_quota_bytes=10 * 2**30)
    mailbox = make_mailbox("anna", domain=domain, plan=plan)
    owner = User.objects.create_user("owner@example.org", customer=customer)
    bigger = make_plan(name="Bigger", max_quota_bytes=20 * 2**30)
    request = plan_change_request(mailbox=mailbox, plan=bigger, actor=owner)
    snapshot = make_snapshot(mailbox, {"INBOX": [(message("Rechnung"), [])]})
    backup_job = BackupJob.objects.create(repository=snapshot.repository, requested_by="test")
    restore_job = RestoreJob.objects.create(
        repository=snapshot.repository, snapshot=snapshot, scope="mailbox", requested_by="test"
    )
    make_server("second")  # where staff:mailbox_move moves the mailbox to
    download = DownloadJob.objects.create(
        repository=snapshot.repository, snapshot=snapshot, requested_by="test", for_staff=True
    )
    download = run_download(download.pk)
    assert download is not None
    data = csv_file("Neu GmbH", "neu.example")
    importer = User.objects.create_user("importer", is_staff=True, staff_role=ADMIN)
    job = job_create(data=data, file_name="new.csv", checked=check(data), actor=importer)
    endpoint = endpoint_create(
        url="https://billing.example/hook", events=["mailbox.created"], actor="test"
    ).endpoint
    delivery = endpoint_test(endpoint=endpoint, actor="test")
    ids = {
        "endpoint_id": endpoint.pk,
        "delivery_id": delivery.pk,
        "customer_id": customer.pk,
        "domain_id": domain.pk,
        "mailbox_id": mailbox.pk,
        "request_id": request.pk,
        "user_id": owner.pk,
        "key_id": api_key_create(name="billing", role="admin", actor="test").key.pk,
        "repository_id": snapshot.repository_id,
        "snapshot_id": snapshot.pk,
        "token": link_token(download),
    }
    return World(
        customer,
        mailbox,
        ids
        | {
            "job_id:import": job.pk,
            "job_id:backup": backup_job.pk,
            "job_id:restore": restore_job.pk,
            "job_id:download": download.pk,
        },
    )


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    allowed: set[str]
    data: Callable[[World], dict[str, Any]] | None = None


def csv_file(customer: str, domain: str) -> bytes:
    header = "customer,contact_email,domain,mailbox,protocol,plan,password\n"
    row = f"{customer},info@{domain},{domain},info,imap,Bigger,Brave-Otter-2041\n"
    return (header + row).encode()


def _csv_upload(world: World) -> dict[str, Any]:
    data = csv_file("Zweite GmbH", "zwei.example")
    return {"file": SimpleUploadedFile("import.csv", data, "text/csv")}


ROUTES = [
    # Reading: every staff role.
    Route("staff:dashboard", "GET", READERS),
    Route("staff:customer_list", "GET", READERS),
    Route("staff:customer_export", "GET", READERS),
    Route("staff:domain_list", "GET", READERS),
    Route("staff:domain_export", "GET", READERS),
    Route("staff:mailbox_list", "GET", READERS),
    Route("staff:mailbox_export", "GET", READERS),
    Route("staff:customer_detail", "GET", READERS),
    Route("staff:mailbox_detail", "GET", READERS),
    Route("staff:audit_log", "GET", READERS),
    Route("staff:import_start", "GET", READERS),
    Route("staff:domain_dns", "GET", READERS),
    Route("staff:api_keys", "GET", READERS),
    Route("staff:import_job", "GET", READERS),
    Route("staff:export", "GET", READERS),
    Route("staff_backups:mailbox", "GET", READERS),
    Route("staff_backups:repository", "GET", READERS),
    Route("staff_backups:backup_job", "GET", READERS),
    Route("staff_backups:restore_job", "GET", READERS),
    Route("staff_backups:download_job", "GET", READERS),
    Route("staff:webhook_list", "GET", READERS),
    Route("staff:webhook_detail", "GET", READERS),
    Route("staff:mailbox_move", "GET", READERS),
    # The day-to-day.
    Route("staff:mailbox_refresh", "POST", HANDLERS),
    Route("staff:mailbox_password", "POST", HANDLERS, lambda w: {"password": "Another-Pass-2041"}),
    Route("staff:mailbox_suspend", "POST", HANDLERS),
    Route("staff:mailbox_reactivate", "POST", HANDLERS),
    Route("staff_backups:backup_now", "POST", HANDLERS),
    Route("staff:customer_user_active", "POST", HANDLERS, lambda w: {"active": "0"}),
    # Everything else is for admins.
    Route(
        "staff:customer_create",
        "POST",
        ADMINS,
        lambda w: {"name": "Neu GmbH", "contact_email": "neu@example.org", "language": "de"},
    ),
    Route("staff:domain_create", "POST", ADMINS, lambda w: {"name": "filiale.example"}),
    Route("staff:customer_allowance", "POST", ADMINS, lambda w: {"allowance": "50G"}),
    Route("staff:domain_allowance", "POST", ADMINS, lambda w: {"allowance": "50G"}),
    Route(
        "staff:mailbox_create",
        "POST",
        ADMINS,
        lambda w: {
            "domain": w.ids["domain_id"],
            "local_part": "bert",
            "protocol": "imap",
            "plan": w.mailbox.plan_id,
            "quota": "100M",
        },
    ),
    Route(
        "staff:customer_user_create",
        "POST",
        ADMINS,
        lambda w: {"email": "kollege@example.org", "language": "de"},
    ),
    Route("staff:mailbox_quota", "POST", ADMINS, lambda w: {"quota": "200M"}),
    Route(
        "staff:mailbox_plan",
        "POST",
        ADMINS,
        lambda w: {"plan": w.mailbox.plan_id, "protocol": "imap"},
    ),
    Route("staff:mailbox_delete", "POST", ADMINS),
    Route("staff:mailbox_move", "POST", ADMINS, lambda w: {"target": "second"}),
    Route("staff:plan_request_approve", "POST", ADMINS),
    Route("staff:plan_request_decline", "POST", ADMINS, lambda w: {"reason": "no"}),
    Route("staff:import_start", "POST", ADMINS, _csv_upload),
    Route("staff:import_run", "POST", ADMINS),
    Route("staff:import_passwords", "POST", ADMINS),
    Route(
        "staff:api_key_create",
        "POST",
        ADMINS,
        lambda w: {"name": "Billing", "role": "support", "read_write": "on"},
    ),
    Route("staff:api_key_revoke", "POST", ADMINS),
    Route(
        "staff:webhook_create",
        "POST",
        ADMINS,
        lambda w: {"url": "https://crm.example/hook", "events": ["quota.full"]},
    ),
    Route("staff:webhook_active", "POST", ADMINS, lambda w: {"active": "0"}),
    Route("staff:webhook_delete", "POST", ADMINS),
    Route("staff:webhook_test", "POST", ADMINS),
    Route("staff:webhook_resend", "POST", ADMINS),
    # The mail itself: admins (support only with the customer's grant, see test_support_access).
    Route("staff_backups:browse", "GET", ADMINS),
    Route("staff_backups:download", "POST", ADMINS),
    Route("staff_backups:download_file", "GET", ADMINS),
    Route(
        "staff_backups:restore",
        "POST",
        ADMINS,
        lambda w: {f"s{w.ids['snapshot_id']}-scope": "mailbox"},
    ),
    Route("staff_backups:restore_messages", "POST", ADMINS, lambda w: {"messages": ["1"]}),
]


def _staff_patterns() -> set[str]:
    """Every named route under /staff/ (``staff:`` and ``staff_backups:``)."""
    names = set()
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace in ("staff", "staff_backups"):
            for pattern in entry.url_patterns:
                assert isinstance(pattern, URLPattern)
                names.add(f"{entry.namespace}:{pattern.name}")
    return names


def test_the_table_names_every_staff_route():
    assert {route.name for route in ROUTES} == _staff_patterns()


def _url(route: Route, world: World) -> str:
    kwargs = {}
    for name in _pattern(route).pattern.converters:
        key = name
        if name == "job_id":  # the import's, the backup's or the restore's job
            key = "job_id:" + {
                "backup_job": "backup",
                "restore_job": "restore",
                "download_job": "download",
                "download_file": "download",
            }.get(route.name.split(":")[1], "import")
        kwargs[name] = world.ids[key]
    return reverse(route.name, kwargs=kwargs)


def _pattern(route: Route) -> URLPattern:
    namespace, name = route.name.split(":")
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace == namespace:
            for pattern in entry.url_patterns:
                if isinstance(pattern, URLPattern) and pattern.name == name:
                    return pattern
    raise LookupError(route.name)


def _request(client: Client, route: Route, world: World):  # type: ignore[no-untyped-def]
    url = _url(route, world)
    if route.method == "GET":
        return client.get(url)
    return client.post(url, route.data(world) if route.data else {})


def _state() -> tuple[int, ...]:
    """What a refused request must leave as it was."""
    return (
        AuditEntry.objects.count(),
        ApiKey.objects.filter(revoked_at__isnull=True).count(),
        Customer.objects.count(),
        Mailbox.objects.count(),
        Mailbox.objects.filter(status="active").count(),
        BackupJob.objects.count(),
        RestoreJob.objects.count(),
        DownloadJob.objects.count(),
        WebhookEndpoint.objects.filter(active=True).count(),
        WebhookDelivery.objects.count(),
    )


@pytest.mark.parametrize("role", [SUPPORT, ADMIN, AUDITOR])
@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.name}" for r in ROUTES])
def test_each_staff_role_may_use_exactly_its_routes(
    client: Client, world: World, route: Route, role: str
):
    client.force_login(User.objects.create_user(f"{role}-user", is_staff=True, staff_role=role))
    before = _state()
    response = _request(client, route, world)
    if role in route.allowed:
        assert response.status_code not in (403, 404, 405), (response.status_code, route, role)
        assert response.status_code < 500
        if route.method == "GET":  # the page, or where it moved (a live mailbox's backups)
            assert response.status_code in (200, 302), (response.status_code, route, role)
    else:
        assert response.status_code == 403, (response.status_code, route, role)
        assert _state() == before


@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.name}" for r in ROUTES])
def test_customers_get_404_and_nobody_the_login_page_from_every_staff_route(
    client: Client, world: World, route: Route
):
    before = _state()
    response = _request(client, route, world)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login") + "?next=")

    client.force_login(User.objects.get(username="owner@example.org"))
    assert _request(client, route, world).status_code == 404
    assert _state() == before
