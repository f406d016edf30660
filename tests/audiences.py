"""Three kinds of user for every test of a page: the owner, a stranger (another customer's user)
and staff, each with real objects made through the services."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Customer, User
from mailboxes.models import Mailbox, MailServer, Plan, PlanChangeRequest
from mailboxes.plan_changes import plan_change_request
from tests.factories import make_customer, make_domain, make_mailbox, make_plan, make_server

OWNER_PASSWORD = "Owner-Pass-2041"


@pytest.fixture
def server(db: None) -> MailServer:
    return make_server()


@pytest.fixture
def plan(server: MailServer) -> Plan:
    return make_plan(protocol="imap", name="IMAP Standard")


@pytest.fixture
def bigger_plan(server: MailServer) -> Plan:
    from mailboxes.models import GIB, MIB

    return make_plan(
        protocol="imap",
        name="IMAP Business",
        allows_pop3=True,
        default_quota_bytes=500 * MIB,
        max_quota_bytes=50 * GIB,
    )


@pytest.fixture
def customer(server: MailServer) -> Customer:
    return make_customer("Bäckerei Müller")


@pytest.fixture
def mailbox(customer: Customer, plan: Plan) -> Mailbox:
    return make_mailbox("anna", domain=make_domain(customer, "baeckerei.example"), plan=plan)


@pytest.fixture
def owner(customer: Customer) -> User:
    return User.objects.create_user(
        "inhaber@example.org",
        email="inhaber@example.org",
        password=OWNER_PASSWORD,
        customer=customer,
    )


@pytest.fixture
def other_customer(server: MailServer) -> Customer:
    return make_customer("Fremde AG")


@pytest.fixture
def other_mailbox(other_customer: Customer, plan: Plan) -> Mailbox:
    return make_mailbox("geheim", domain=make_domain(other_customer, "fremde.example"), plan=plan)


@pytest.fixture
def stranger(other_customer: Customer) -> User:
    return User.objects.create_user(
        "fremd@example.org", email="fremd@example.org", password="x", customer=other_customer
    )


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)


@pytest.fixture
def owner_client(client: Client, owner: User) -> Client:
    client.force_login(owner)
    return client


@pytest.fixture
def pending_request(mailbox: Mailbox, bigger_plan: Plan, owner: User) -> PlanChangeRequest:
    return plan_change_request(mailbox=mailbox, plan=bigger_plan, actor=owner)


@pytest.fixture
def other_request(other_mailbox: Mailbox, bigger_plan: Plan, stranger: User) -> PlanChangeRequest:
    return plan_change_request(mailbox=other_mailbox, plan=bigger_plan, actor=stranger)
