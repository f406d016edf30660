"""Who may do what: support, admin and auditor on the staff pages and in the services."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts import roles
from accounts.models import AuditEntry, StaffRole, User
from mailboxes.models import Mailbox
from mailboxes.services import mailbox_delete, mailbox_set_password, mailbox_suspend
from tests.factories import make_customer, make_domain, make_mailbox

pytestmark = pytest.mark.django_db

SUPPORT, ADMIN, AUDITOR = StaffRole.SUPPORT, StaffRole.ADMIN, StaffRole.AUDITOR


@pytest.fixture
def mailbox() -> Mailbox:
    return make_mailbox("anna", domain=make_domain(make_customer("Bäckerei"), "baeckerei.example"))


def staff(role: str) -> User:
    return User.objects.create_user(f"{role}-user", is_staff=True, staff_role=role)


# (route, data, roles that get through); everyone else gets 403 and nothing changes.
ACTIONS = [
    ("staff:mailbox_suspend", {}, {SUPPORT, ADMIN}),
    ("staff:mailbox_password", {"password": "Another-Pass-2041"}, {SUPPORT, ADMIN}),
    ("staff:mailbox_refresh", {}, {SUPPORT, ADMIN}),
    ("staff:mailbox_quota", {"quota": "200M"}, {ADMIN}),
    ("staff:mailbox_delete", {}, {ADMIN}),
]


@pytest.mark.parametrize("role", [SUPPORT, ADMIN, AUDITOR])
@pytest.mark.parametrize(("route", "data", "allowed"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_each_role_may_do_exactly_its_actions_on_a_mailbox(
    client: Client,
    mailbox: Mailbox,
    role: str,
    route: str,
    data: dict,
    allowed: set,  # type: ignore[type-arg]
) -> None:
    client.force_login(staff(role))
    before = AuditEntry.objects.count()
    response = client.post(reverse(route, args=[mailbox.pk]), data)
    if role in allowed:
        assert response.status_code == 302, (route, role)
        assert AuditEntry.objects.count() > before
    else:
        assert response.status_code == 403, (route, role)
        assert AuditEntry.objects.count() == before
        assert Mailbox.objects.filter(
            pk=mailbox.pk, status="active", quota_bytes=mailbox.quota_bytes
        ).exists()


@pytest.mark.parametrize("role", [SUPPORT, ADMIN, AUDITOR])
def test_every_role_reads_every_staff_page(client: Client, mailbox: Mailbox, role: str) -> None:
    client.force_login(staff(role))
    for url in (
        reverse("staff:dashboard"),
        reverse("staff:customer_detail", args=[mailbox.domain.customer_id]),
        reverse("staff:mailbox_detail", args=[mailbox.pk]),
        reverse("staff:audit_log"),
        reverse("staff_backups:mailbox", args=[mailbox.pk]),
    ):
        assert client.get(url).status_code == 200, (url, role)


def test_pages_offer_only_what_the_role_allows(client: Client, mailbox: Mailbox) -> None:
    page = reverse("staff:mailbox_detail", args=[mailbox.pk])
    client.force_login(staff(AUDITOR))
    auditor = client.get(page).content.decode()
    client.force_login(staff(SUPPORT))
    support = client.get(page).content.decode()
    client.force_login(staff(ADMIN))
    admin = client.get(page).content.decode()
    suspend, delete = (
        reverse("staff:mailbox_suspend", args=[mailbox.pk]),
        reverse("staff:mailbox_delete", args=[mailbox.pk]),
    )
    assert suspend not in auditor and delete not in auditor
    assert suspend in support and delete not in support
    assert suspend in admin and delete in admin


def test_the_services_refuse_whatever_door_asks(mailbox: Mailbox) -> None:
    """The CLI and the coming API call the same services: the check lives there."""
    with pytest.raises(PermissionDenied):
        mailbox_delete(mailbox=mailbox, actor=staff(SUPPORT))
    with pytest.raises(PermissionDenied):
        mailbox_suspend(mailbox=mailbox, actor=staff(AUDITOR))
    stranger = User.objects.create_user("stranger@example.org", customer=make_customer("Other"))
    with pytest.raises(PermissionDenied):
        mailbox_set_password(mailbox=mailbox, password="Another-Pass-2041", actor=stranger)
    owner = User.objects.create_user("owner@example.org", customer=mailbox.domain.customer)
    mailbox_set_password(mailbox=mailbox, password="Another-Pass-2041", actor=owner)
    mailbox_delete(mailbox=mailbox, actor="cli:root")  # the hoster's own machinery


def test_customers_see_staff_by_role_never_by_name(client: Client, mailbox: Mailbox) -> None:
    mailbox_suspend(mailbox=mailbox, actor=staff(SUPPORT))
    owner = User.objects.create_user("owner@example.org", customer=mailbox.domain.customer)
    client.force_login(owner)
    page = client.get(reverse("portal:activity")).content.decode()
    assert "Support" in page and "support-user" not in page


def test_a_staff_role_is_set_from_the_command_line_and_audited() -> None:
    user = staff(ADMIN)
    call_command("staff_role", user.username, "auditor", stdout=open("/dev/null", "w"))
    user.refresh_from_db()
    assert user.staff_role == AUDITOR
    assert AuditEntry.objects.get(action="staff.role").details == {"old": "admin", "new": "auditor"}
    assert roles.may(user, "mailbox.suspend") is False
