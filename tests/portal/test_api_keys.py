"""A customer's own REST API keys in the portal."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey, User
from mailboxes.models import Mailbox
from tests.staff.test_api_keys import api, shown_token

pytestmark = pytest.mark.django_db


def test_a_customer_makes_a_read_only_key_for_its_own_mailboxes(
    owner_client: Client, owner: User, mailbox: Mailbox, other_mailbox: Mailbox
):
    response = owner_client.post(reverse("portal:api_keys"), {"name": "Monitoring"}, follow=True)
    token = shown_token(response.content.decode())
    key = ApiKey.objects.get()
    assert key.user.customer_id == owner.customer_id and key.read_only
    client = api(token)
    listed = client.get("/api/v1/mailboxes/").json()["results"]
    assert [m["id"] for m in listed] == [mailbox.pk]
    assert client.post(f"/api/v1/mailboxes/{mailbox.pk}/suspend/").status_code == 403

    owner_client.post(reverse("portal:api_key_revoke", args=[key.pk]))
    assert client.get("/api/v1/mailboxes/").status_code == 401


def test_the_keys_user_is_not_listed_as_a_portal_login(owner_client: Client, owner: User):
    owner_client.post(reverse("portal:api_keys"), {"name": "Monitoring"})
    html = owner_client.get(reverse("portal:settings")).content.decode()
    assert owner.email in html and ApiKey.objects.get().user.username not in html


def test_a_customer_cannot_choose_a_role(owner_client: Client, owner: User):
    owner_client.post(reverse("portal:api_keys"), {"name": "Sneaky", "role": "admin"})
    key = ApiKey.objects.get()
    assert not key.user.is_staff and key.user.customer_id == owner.customer_id
