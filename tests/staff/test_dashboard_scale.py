"""The staff overview costs the same whatever the number of customers, domains and mailboxes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Customer, User
from mailboxes.models import Domain, Mailbox
from tests.factories import make_plan, make_server

pytestmark = pytest.mark.django_db


def grow(customers: int, domains_each: int, mailboxes_each: int) -> None:
    """Rows straight into the tables: the page reads them, the services are not under test."""
    server, plan = make_server(), make_plan()
    start = Customer.objects.count()
    made = Customer.objects.bulk_create(
        Customer(name=f"Customer {start + i:05}", contact_email=f"c{start + i}@example.org")
        for i in range(customers)
    )
    domains = Domain.objects.bulk_create(
        Domain(name=f"d{c.pk}-{d}.example", customer=c, mail_server=server)
        for c in made
        for d in range(domains_each)
    )
    Mailbox.objects.bulk_create(
        Mailbox(
            domain=domain,
            local_part=f"m{m}",
            address=f"m{m}@{domain.name}",
            protocol="imap",
            plan=plan,
            mail_server=server,
            quota_bytes=plan.default_quota_bytes,
            password_hash="{ARGON2ID}x",
            storage_path=f"{domain.name}/m{m}",
        )
        for domain in domains
        for m in range(mailboxes_each)
    )


def dashboard(client: Client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("staff:dashboard"))
    assert response.status_code == 200
    for query in queries:
        # Counting through a join of two relations multiplies their rows (domains x mailboxes).
        sql = query["sql"]
        assert sql.count("LEFT OUTER JOIN") < 2 or "COUNT" not in sql, sql
    return len(queries), response.content.decode()


def test_the_staff_home_page_costs_the_same_as_domains_and_mailboxes_grow(client: Client):
    client.force_login(User.objects.create_user("hanna", is_staff=True))
    grow(customers=3, domains_each=1, mailboxes_each=1)
    small_queries, small_page = dashboard(client)

    grow(customers=120, domains_each=5, mailboxes_each=4)
    large_queries, large_page = dashboard(client)

    assert large_queries == small_queries
    assert len(large_page) < len(small_page) + 2_000  # counts, not rows
    assert "<strong>2403</strong>" in large_page  # every mailbox counted


def test_the_servers_table_counts_each_servers_domains_and_mailboxes(client: Client):
    client.force_login(User.objects.create_user("hanna", is_staff=True))
    grow(customers=2, domains_each=3, mailboxes_each=5)
    page = client.get(reverse("staff:dashboard")).content.decode()
    row = page[page.index('<th scope="row">test</th>') :].split("</tr>")[0]
    cells = [c.split(">")[-1] for c in row.split("</td>")]
    assert cells[-2] == "6"  # domains
    storage = page[page.index('<tr id="storage-') :].split("</tr>")[0]
    assert '">30</a>' in storage  # mailboxes, linked to their list
