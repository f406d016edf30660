"""Staff make, list and revoke REST API keys; the token is shown once and works at once."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditEntry, User
from tests.factories import make_customer, make_domain, make_mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(client: Client, staff: User) -> Client:
    client.force_login(staff)
    return client


def shown_token(html: str) -> str:
    match = re.search(r'<code class="password">(postamt_[^<]+)</code>', html)
    assert match, "no token on the page"
    return match.group(1)


def api(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_an_admin_makes_a_hoster_key_sees_its_token_once_and_revokes_it(
    client: Client, staff: User
):
    make_mailbox("anna")
    response = client.post(
        reverse("staff:api_key_create"),
        {"name": "Billing", "role": "support", "read_write": "on", "allowed_networks": ""},
        follow=True,
    )
    html = response.content.decode()
    token = shown_token(html)
    assert api(token).get("/api/v1/mailboxes/").status_code == 200
    key = ApiKey.objects.get()
    assert (key.name, key.read_only, key.user.staff_role) == ("Billing", False, "support")
    listed = client.get(reverse("staff:api_keys")).content.decode()
    assert key.prefix in listed and token not in listed  # the secret is never shown again

    client.post(reverse("staff:api_key_revoke", args=[key.pk]))
    assert api(token).get("/api/v1/mailboxes/").status_code == 401
    assert [e.action for e in AuditEntry.objects.filter(action__startswith="api_key")] == [
        "api_key.revoke",
        "api_key.create",
    ]


def test_a_key_for_one_customer_reaches_only_that_customer(client: Client, staff: User):
    mine = make_customer("Bäckerei")
    make_mailbox("anna", domain=make_domain(mine))
    make_mailbox("otto")
    response = client.post(
        reverse("staff:api_key_create"), {"name": "Their scripts", "customer": mine.pk}, follow=True
    )
    listed = api(shown_token(response.content.decode())).get("/api/v1/mailboxes/").json()
    assert [m["address"].split("@")[0] for m in listed["results"]] == ["anna"]


def test_bad_input_is_shown_on_the_form_and_makes_no_key(client: Client, staff: User):
    response = client.post(
        reverse("staff:api_key_create"),
        {"name": "x", "role": "admin", "allowed_networks": "10.0.0.0/8\nsomewhere"},
    )
    assert response.status_code == 400
    assert "“somewhere” is not an IP address or network." in response.content.decode()
    response = client.post(reverse("staff:api_key_create"), {"name": "x", "customer": 99999})
    assert response.status_code == 400
    assert "There is no customer with this id." in response.content.decode()
    response = client.post(reverse("staff:api_key_create"), {"name": "x"})
    assert response.status_code == 400
    assert "needs a role" in response.content.decode()
    assert not ApiKey.objects.exists()
