"""The audit log narrowed by actor, customer, mailbox, action and days, and exported as CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, User
from mailboxes.services import mailbox_set_quota, mailbox_suspend
from tests.factories import make_customer, make_domain, make_mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(client: Client) -> dict[str, object]:
    staff = User.objects.create_user("hanna", is_staff=True)
    client.force_login(staff)
    baker, florist = make_customer("Bäckerei Müller"), make_customer("Blumen Berg")
    anna = make_mailbox("anna", domain=make_domain(baker, "baeckerei.example"))
    rosa = make_mailbox("rosa", domain=make_domain(florist, "blumen.example"))
    mailbox_suspend(mailbox=anna, actor=staff)
    mailbox_set_quota(mailbox=rosa, quota_bytes=rosa.quota_bytes * 2, actor="cli:root")
    AuditEntry.objects.filter(action="customer.create").update(
        created_at=timezone.now() - timedelta(days=10)
    )
    return {"anna": anna, "rosa": rosa, "baker": baker}


def listed(client: Client, **query: str) -> list[str]:
    response = client.get(reverse("staff:audit_log"), query)
    assert response.status_code == 200
    return [f"{e.action} {e.target_repr}" for e in response.context["entries"]]


def test_filters_narrow_the_log(client: Client, logged) -> None:  # type: ignore[no-untyped-def]
    assert listed(client, actor="hanna") == ["mailbox.suspend anna@baeckerei.example"]
    assert listed(client, mailbox="rosa@") == [
        "mailbox.quota rosa@blumen.example",
        "mailbox.create rosa@blumen.example",
    ]
    assert all("baeckerei" in e or "Bäckerei" in e for e in listed(client, customer="bäckerei"))
    assert listed(client, customer=str(logged["baker"].pk)) == listed(client, customer="Bäckerei")
    assert listed(client, action="mailbox.quota") == ["mailbox.quota rosa@blumen.example"]
    today = timezone.localdate().isoformat()
    assert not any("customer.create" in e for e in listed(client, since=today))
    assert all(
        "customer.create" in e
        for e in listed(client, until=(timezone.localdate() - timedelta(days=5)).isoformat())
    )


def test_a_filtered_log_downloads_as_csv_with_only_its_rows(client: Client, logged) -> None:  # type: ignore[no-untyped-def]
    response = client.get(reverse("staff:audit_log"), {"customer": "Blumen", "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {row["customer"] for row in rows} == {"Blumen Berg"}
    quota = next(row for row in rows if row["action"] == "mailbox.quota")
    assert quota["actor"] == "cli:root" and quota["action_label"] == "quota changed"
    assert '"new":' in quota["details"]


def test_the_page_costs_the_same_however_many_entries(client: Client, logged) -> None:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("staff:audit_log"))
    for i in range(30):
        make_mailbox(f"m{i}", domain=logged["anna"].domain)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("staff:audit_log"))
    assert len(many) == len(few)


def test_customers_and_strangers_never_see_it(client: Client, logged) -> None:  # type: ignore[no-untyped-def]
    client.force_login(User.objects.create_user("owner@example.org", customer=logged["baker"]))
    assert client.get(reverse("staff:audit_log"), {"format": "csv"}).status_code == 404
    client.logout()
    assert client.get(reverse("staff:audit_log")).status_code == 302
