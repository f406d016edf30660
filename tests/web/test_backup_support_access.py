"""The backup pages for support: snapshots readable, message lists and downloads only with the
customer's grant, and a 403 that says who can open the door."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, Customer, StaffRole, User
from accounts.services import support_access_grant, support_access_revoke
from tests.backups.helpers import make_snapshot, message

pytestmark = pytest.mark.django_db


@pytest.fixture
def snapshot(restore_side, mailbox):  # type: ignore[no-untyped-def]
    return make_snapshot(mailbox, {"INBOX": [(message("Angebot Hochzeitstorte"), [])]})


@pytest.fixture
def support(client: Client) -> User:
    user = User.objects.create_user("sam", is_staff=True, staff_role=StaffRole.SUPPORT)
    client.force_login(user)
    return user


def url(name: str, *args: object) -> str:
    return reverse(f"staff_backups:{name}", args=args)


def test_support_reads_the_snapshots_but_is_offered_no_message_list_or_download(  # type: ignore[no-untyped-def]
    client, support, mailbox, snapshot
) -> None:
    response = client.get(url("mailbox", mailbox.pk))

    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="snapshot-{snapshot.pk}"' in html
    assert url("browse", snapshot.pk) not in html and url("download", snapshot.pk) not in html
    assert "support needs the customer's permission" in html


@pytest.mark.parametrize("page, method", [("browse", "get"), ("download", "post")])
def test_support_without_a_grant_gets_a_403_that_says_what_to_do(  # type: ignore[no-untyped-def]
    client, support, mailbox, snapshot, page, method
) -> None:
    response = getattr(client, method)(url(page, snapshot.pk))

    assert response.status_code == 403
    html = response.content.decode()
    assert "the customer must grant access in the portal" in html
    assert "Angebot Hochzeitstorte" not in html
    assert not AuditEntry.objects.filter(action__startswith="backup.").exists()


def test_with_the_grant_support_lists_the_messages_and_downloads(  # type: ignore[no-untyped-def]
    client, support, owner, customer, mailbox, snapshot
) -> None:
    grant = support_access_grant(customer=customer, hours=24, actor=owner)

    overview = client.get(url("mailbox", mailbox.pk)).content.decode()
    assert url("browse", snapshot.pk) in overview and url("download", snapshot.pk) in overview
    assert "the customer lets support look into its backups" in overview
    listing = client.get(url("browse", snapshot.pk))
    download = client.post(url("download", snapshot.pk))

    assert listing.status_code == 200 and "Angebot Hochzeitstorte" in listing.content.decode()
    assert download.status_code == 302 and "/jobs/download/" in download["Location"]
    uses = AuditEntry.objects.filter(customer=customer, details__grant=grant.pk, actor=support)
    assert sorted(uses.values_list("action", flat=True)) == [
        "backup.browse_with_grant",
        "backup.download_with_grant",
    ]


def test_after_the_customer_revoked_it_support_is_refused_again(  # type: ignore[no-untyped-def]
    client, support, owner, customer, snapshot
) -> None:
    support_access_grant(customer=customer, hours=24, actor=owner)
    support_access_revoke(customer=customer, actor=owner)

    response = client.get(url("browse", snapshot.pk))

    assert response.status_code == 403
    assert "the customer revoked its last permission" in response.content.decode()


def test_another_customers_grant_does_not_count(  # type: ignore[no-untyped-def]
    client, support, other_customer, stranger, snapshot
) -> None:
    support_access_grant(customer=other_customer, hours=24, actor=stranger)
    assert client.get(url("browse", snapshot.pk)).status_code == 403


def test_auditors_get_the_plain_403_even_with_a_grant(  # type: ignore[no-untyped-def]
    client, owner, customer, snapshot
) -> None:
    support_access_grant(customer=customer, hours=24, actor=owner)
    client.force_login(User.objects.create_user("udo", is_staff=True, staff_role="auditor"))

    response = client.get(url("browse", snapshot.pk))

    assert response.status_code == 403
    assert "grant access in the portal" not in response.content.decode()


def test_the_staff_customer_page_shows_whether_support_may_look_in(
    client: Client, support: User, owner: User, customer: Customer
) -> None:
    page = reverse("staff:customer_detail", args=[customer.pk])
    assert "not granted" in client.get(page).content.decode()

    support_access_grant(customer=customer, hours=1, actor=owner)

    assert "granted until" in client.get(page).content.decode()


def test_support_with_the_grant_is_not_offered_a_restore_it_may_not_do(  # type: ignore[no-untyped-def]
    client, support, owner, customer, snapshot
) -> None:
    support_access_grant(customer=customer, hours=1, actor=owner)

    html = client.get(url("browse", snapshot.pk)).content.decode()

    assert "Angebot Hochzeitstorte" in html
    assert 'name="messages"' not in html and "Restore the chosen messages" not in html
