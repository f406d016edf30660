"""The activity page, where a customer lets support look into its backups for a while, sees
until when, revokes it, and sees every use of it by "Support", never by a name."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, Customer, StaffRole, SupportAccessGrant, User
from backups.services import browse_snapshot
from tests.backups import helpers
from tests.backups.helpers import make_snapshot, message

backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
restore_side = helpers.restore_side

pytestmark = pytest.mark.django_db

ACTIVITY = reverse("portal:activity")


def active(customer: Customer) -> SupportAccessGrant | None:
    return SupportAccessGrant.objects.filter(customer=customer).active().first()


def test_the_page_offers_the_three_durations(owner_client: Client) -> None:
    html = owner_client.get(ACTIVITY).content.decode()
    assert "Allow support to look into my backups for" in html
    for label in ("1 hour", "24 hours", "7 days"):
        assert f">{label}</option>" in html
    assert "Revoke" not in html


def test_the_owner_grants_sees_until_when_and_revokes(
    owner_client: Client, owner: User, customer: Customer
) -> None:
    response = owner_client.post(ACTIVITY, {"hours": "24"}, REMOTE_ADDR="198.51.100.3")

    assert response.status_code == 302 and response["Location"] == ACTIVITY
    grant = active(customer)
    assert grant is not None and grant.granted_by == owner
    html = owner_client.get(ACTIVITY).content.decode()
    assert "support may look into your backups." in html  # the message after the redirect
    assert "Access granted until" in html and "Revoke" in html
    assert "support allowed to look into the backups" in html  # and the entry in the list

    response = owner_client.post(ACTIVITY, {"revoke": "1"})

    assert response.status_code == 302
    assert active(customer) is None
    html = owner_client.get(ACTIVITY).content.decode()
    assert "Support can no longer look into your backups." in html
    assert "support&#x27;s access to the backups revoked" in html


def test_an_unknown_duration_is_refused_with_the_form_again(
    owner_client: Client, customer: Customer
) -> None:
    response = owner_client.post(ACTIVITY, {"hours": "8760"})
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.content.decode() or "errorlist" in (
        response.content.decode()
    )
    assert active(customer) is None


def test_a_customer_grants_only_for_itself(
    client: Client, stranger: User, customer: Customer, other_customer: Customer, owner: User
) -> None:
    """The page takes no customer id: whoever posts acts for their own customer, and a
    revoke by another customer's user leaves this customer's grant alone."""
    client.force_login(owner)
    client.post(ACTIVITY, {"hours": "1"})
    client.force_login(stranger)

    client.post(ACTIVITY, {"revoke": "1"})
    client.post(ACTIVITY, {"hours": "168"})

    assert active(customer) is not None
    assert active(customer).granted_by == owner  # type: ignore[union-attr]
    assert active(other_customer) is not None
    assert AuditEntry.objects.filter(action="support_access.grant", customer=customer).count() == 1


@pytest.mark.parametrize("role", [StaffRole.SUPPORT, StaffRole.ADMIN])
def test_staff_cannot_grant_through_the_portal(
    client: Client, customer: Customer, role: str
) -> None:
    client.force_login(User.objects.create_user("sam", is_staff=True, staff_role=role))
    assert client.post(ACTIVITY, {"hours": "168"}).status_code == 404
    assert active(customer) is None


def test_every_use_is_listed_by_support_never_by_name(  # type: ignore[no-untyped-def]
    owner_client, owner, customer, mailbox, restore_side
) -> None:
    snapshot = make_snapshot(mailbox, {"INBOX": [(message("Rechnung"), [])]})
    owner_client.post(ACTIVITY, {"hours": "1"})
    sam = User.objects.create_user("sam.secret", is_staff=True, staff_role=StaffRole.SUPPORT)
    browse_snapshot(snapshot=snapshot, folder="INBOX", page=None, actor=sam)

    html = owner_client.get(ACTIVITY).content.decode()

    assert "messages in a backup viewed with granted access" in html
    assert "Support" in html and "sam.secret" not in html


def test_the_page_in_german(owner_client: Client, owner: User, customer: Customer) -> None:
    customer.language = "de"
    customer.save()
    owner_client.post(ACTIVITY, {"hours": "1"})
    html = owner_client.get(ACTIVITY).content.decode()
    assert "Zugriff erlaubt bis" in html
    assert "Widerrufen" in html
