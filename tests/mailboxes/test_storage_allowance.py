"""Quota pools: a customer's or a domain's mailboxes may not be given more than its allowance."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, User
from mailboxes.models import GIB, MIB, Mailbox
from mailboxes.services import allocation, mailbox_set_quota, storage_allowance_set
from tests.factories import make_customer, make_domain, make_mailbox, make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan():  # type: ignore[no-untyped-def]
    return make_plan(max_quota_bytes=10 * GIB)


def test_a_mailbox_that_would_pass_the_customers_allowance_is_refused_with_whats_left(plan):  # type: ignore[no-untyped-def]
    customer = make_customer("Bäckerei")
    storage_allowance_set(owner=customer, allowance_bytes=1 * GIB, actor="test")
    domain = make_domain(customer, "baeckerei.example")
    make_mailbox("anna", domain=domain, plan=plan, quota_bytes=500 * MIB)
    make_mailbox("bert", domain=domain, plan=plan, quota_bytes=400 * MIB)

    with pytest.raises(ValidationError) as exc:
        make_mailbox("carl", domain=domain, plan=plan, quota_bytes=200 * MIB)

    message = " ".join(exc.value.message_dict["quota_bytes"])
    assert "customer Bäckerei is 1.0\xa0GB and 124.0\xa0MB of it is left" in message
    assert "needs 200.0\xa0MB" in message
    assert not Mailbox.objects.filter(local_part="carl").exists()
    make_mailbox("carl", domain=domain, plan=plan, quota_bytes=124 * MIB)  # exactly what is left
    assert allocation(customer).left_bytes == 0


def test_a_domains_allowance_counts_only_its_own_mailboxes(plan):  # type: ignore[no-untyped-def]
    customer = make_customer()
    shop, office = make_domain(customer, "shop.example"), make_domain(customer, "office.example")
    storage_allowance_set(owner=shop, allowance_bytes=300 * MIB, actor="test")
    make_mailbox("a", domain=office, plan=plan, quota_bytes=2 * GIB)
    make_mailbox("b", domain=shop, plan=plan, quota_bytes=300 * MIB)
    with pytest.raises(ValidationError) as exc:
        make_mailbox("c", domain=shop, plan=plan, quota_bytes=1 * MIB)
    assert "domain shop.example is 300.0" in exc.value.message_dict["quota_bytes"][0]


def test_raising_a_quota_is_checked_lowering_it_never_is(plan):  # type: ignore[no-untyped-def]
    customer = make_customer()
    domain = make_domain(customer)
    anna = make_mailbox("anna", domain=domain, plan=plan, quota_bytes=600 * MIB)
    storage_allowance_set(owner=customer, allowance_bytes=1 * GIB, actor="test")

    mailbox_set_quota(mailbox=anna, quota_bytes=1 * GIB, actor="test")  # its own 600 MB count once
    with pytest.raises(ValidationError) as exc:
        mailbox_set_quota(mailbox=anna, quota_bytes=2 * GIB, actor="test")
    assert "1.0\xa0GB of it is left" in exc.value.message_dict["quota_bytes"][0]
    mailbox_set_quota(mailbox=anna, quota_bytes=10 * MIB, actor="test")
    anna.refresh_from_db()
    assert anna.quota_bytes == 10 * MIB


def test_an_allowance_below_what_is_given_is_refused_and_changes_are_audited(plan):  # type: ignore[no-untyped-def]
    customer = make_customer()
    make_mailbox("anna", domain=make_domain(customer), plan=plan, quota_bytes=2 * GIB)
    with pytest.raises(ValidationError) as exc:
        storage_allowance_set(owner=customer, allowance_bytes=1 * GIB, actor="test")
    assert "2.0\xa0GB is already given" in exc.value.message_dict["allowance_bytes"][0]
    storage_allowance_set(owner=customer, allowance_bytes=5 * GIB, actor="hanna")
    storage_allowance_set(owner=customer, allowance_bytes=None, actor="hanna")
    entries = AuditEntry.objects.filter(action="storage.allowance").order_by("pk")
    assert [e.details for e in entries] == [
        {"old": None, "new": 5 * GIB},
        {"old": 5 * GIB, "new": None},
    ]


def test_staff_set_an_allowance_and_the_customer_sees_it(client: Client, plan):  # type: ignore[no-untyped-def]
    customer = make_customer("Bäckerei")
    make_mailbox("anna", domain=make_domain(customer), plan=plan, quota_bytes=1 * GIB)
    client.force_login(User.objects.create_user("hanna", is_staff=True))
    response = client.post(
        reverse("staff:customer_allowance", args=[customer.pk]), {"allowance": "5G"}
    )
    assert response.status_code == 302
    page = client.get(reverse("staff:customer_detail", args=[customer.pk])).content.decode()
    assert "1.0\xa0GB of 5.0\xa0GB given to mailboxes" in page
    assert 'value="5G"' in page

    refused = client.post(
        reverse("staff:customer_allowance", args=[customer.pk]), {"allowance": "500M"}, follow=True
    )
    assert "is already given" in refused.content.decode()

    client.force_login(User.objects.create_user("owner@example.org", customer=customer))
    portal = client.get(reverse("portal:overview")).content.decode()
    assert "1.0\xa0GB of 5.0\xa0GB is given to your mailboxes; 4.0\xa0GB is free" in portal
