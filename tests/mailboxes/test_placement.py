"""Placement: a new mailbox goes to the least used server that accepts new mailboxes, or to
the one staff choose, whichever door it comes through (service, staff page, API, CLI, CSV)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, User
from mailboxes import imports
from mailboxes.models import GIB, Domain, Mailbox, MailServer, Plan
from mailboxes.placement import Placer, ServerLoad, server_loads
from mailboxes.services import domain_create, mailbox_create
from tests.api.test_api import MAILBOXES, client_for, hoster_key
from tests.factories import PASSWORD, make_customer, make_domain, make_plan, make_server
from tests.test_cli import run

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan() -> Plan:
    return make_plan(default_quota_bytes=GIB, max_quota_bytes=100 * GIB)


@pytest.fixture
def domain() -> Domain:
    make_server("mx1")
    return make_domain(name="placement.example")


def fill(server: MailServer, domain: Domain, plan: Plan, gib: int, name: str) -> None:
    """Give ``server`` a mailbox of ``gib`` GiB quota: what placement counts as allocated."""
    mailbox_create(
        domain=domain,
        local_part=name,
        password=PASSWORD,
        plan=plan,
        quota_bytes=gib * GIB,
        mail_server=server,
        actor="test",
    )


def create(domain: Domain, plan: Plan, name: str, **kwargs: object) -> Mailbox:
    return mailbox_create(
        domain=domain, local_part=name, password=PASSWORD, plan=plan, actor="test", **kwargs
    )  # type: ignore[arg-type]


def test_a_new_mailbox_goes_to_the_server_with_the_smallest_share_of_its_capacity_allocated(
    domain: Domain, plan: Plan
) -> None:
    small = MailServer.objects.get(name="mx1")
    small.capacity_bytes = 100 * GIB
    small.save()
    large = make_server("mx2", capacity_bytes=1000 * GIB)
    closed = make_server("mx3", active=False, capacity_bytes=1000 * GIB)
    fill(small, domain, plan, 30, "a")  # 30 % of its capacity
    fill(large, domain, plan, 90, "b")  # more bytes, but 9 %

    mailbox = create(domain, plan, "new")

    assert mailbox.mail_server == large
    assert mailbox.mail_server != closed
    entry = AuditEntry.objects.get(action="mailbox.create", target_id=str(mailbox.pk))
    assert entry.details["server"] == "mx2"


def test_servers_without_a_capacity_are_compared_by_what_they_have_given_out(
    domain: Domain, plan: Plan
) -> None:
    mx1 = MailServer.objects.get(name="mx1")
    mx2 = make_server("mx2")
    fill(mx1, domain, plan, 5, "a")
    fill(mx2, domain, plan, 2, "b")

    assert create(domain, plan, "c", quota_bytes=2 * GIB).mail_server == mx2
    # mx2 now holds 4 GiB against mx1's 5: the next one still fits best there.
    assert create(domain, plan, "d").mail_server == mx2
    assert create(domain, plan, "e").mail_server == mx1


def test_a_burst_is_spread_as_it_is_placed_not_after_the_next_poll(domain: Domain) -> None:
    mx1 = MailServer.objects.get(name="mx1")
    mx2 = make_server("mx2")
    placer = Placer(server_loads())
    placed = [placer.place(GIB).name for _ in range(6)]
    assert sorted(placed) == ["mx1", "mx1", "mx1", "mx2", "mx2", "mx2"]
    assert {mx1.name, mx2.name} == set(placed)


def test_staff_choice_wins_over_the_least_used(domain: Domain, plan: Plan) -> None:
    busy = MailServer.objects.get(name="mx1")
    make_server("mx2")
    fill(busy, domain, plan, 50, "a")

    assert create(domain, plan, "chosen", mail_server=busy).mail_server == busy


def test_a_chosen_server_that_accepts_no_new_mailboxes_is_refused(
    domain: Domain, plan: Plan
) -> None:
    closed = make_server("mx2", active=False)
    with pytest.raises(ValidationError) as exc:
        create(domain, plan, "nope", mail_server=closed)
    assert exc.value.message_dict["mail_server"] == [
        "The mail server mx2 accepts no new mailboxes."
    ]
    assert not Mailbox.objects.filter(local_part="nope").exists()


def test_refused_with_a_clear_message_when_no_server_accepts_new_mailboxes(
    domain: Domain, plan: Plan
) -> None:
    MailServer.objects.update(active=False)
    with pytest.raises(ValidationError) as exc:
        create(domain, plan, "nope")
    assert "No mail server accepts new mailboxes" in exc.value.message_dict["mail_server"][0]
    with pytest.raises(ValidationError) as exc:
        domain_create(customer=make_customer(), name="more.example", actor="test")
    assert "No mail server accepts new mailboxes" in exc.value.message_dict["mail_server"][0]
    assert Mailbox.objects.count() == 0


# --- Every door uses it ---------------------------------------------------------------------


@pytest.fixture
def staff(client: Client) -> User:
    user = User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    client.force_login(user)
    return user


def test_staff_see_each_servers_allocation_where_they_choose_and_their_choice_is_kept(
    client: Client, staff: User, domain: Domain, plan: Plan
) -> None:
    mx1 = MailServer.objects.get(name="mx1")
    mx1.capacity_bytes = 100 * GIB
    mx1.save()
    mx2 = make_server("mx2")
    make_server("mx3", active=False)
    fill(mx1, domain, plan, 25, "a")
    customer = domain.customer

    page = client.get(reverse("staff:customer_detail", args=[customer.pk])).content.decode()
    assert "mx1: 25.0\xa0GB of 100.0\xa0GB allocated (25 %), 0\xa0bytes used, 1 mailbox" in page
    assert "mx2: 0\xa0bytes allocated, 0\xa0bytes used, 0 mailboxes" in page
    assert "mx3:" not in page  # takes no new mailboxes: not offered

    response = client.post(
        reverse("staff:mailbox_create", args=[customer.pk]),
        {"domain": domain.pk, "local_part": "chosen", "plan": plan.pk, "mail_server": mx1.pk},
    )
    assert response.status_code == 302
    assert Mailbox.objects.get(local_part="chosen").mail_server == mx1
    client.post(
        reverse("staff:mailbox_create", args=[customer.pk]),
        {"domain": domain.pk, "local_part": "auto", "plan": plan.pk},
    )
    assert Mailbox.objects.get(local_part="auto").mail_server == mx2


def test_the_api_places_like_the_pages_and_takes_a_server_by_name(
    domain: Domain, plan: Plan
) -> None:
    mx1 = MailServer.objects.get(name="mx1")
    make_server("mx2", active=False)
    client = client_for(hoster_key())
    body = {"domain": domain.pk, "plan": plan.pk, "password": PASSWORD}

    auto = client.post(MAILBOXES, {**body, "local_part": "auto"}, format="json")
    assert auto.status_code == 201 and auto.json()["mail_server"] == "mx1"
    refused = client.post(
        MAILBOXES, {**body, "local_part": "closed", "mail_server": "mx2"}, format="json"
    )
    assert refused.status_code == 400
    error = refused.json()["errors"][0]
    assert error["field"] == "mail_server" and "accepts no new mailboxes" in error["message"]
    unknown = client.post(
        MAILBOXES, {**body, "local_part": "nowhere", "mail_server": "mx9"}, format="json"
    )
    assert unknown.status_code == 400
    assert Mailbox.objects.filter(mail_server=mx1).count() == 1


def test_the_cli_takes_a_server_and_otherwise_places(domain: Domain, plan: Plan) -> None:
    mx1 = MailServer.objects.get(name="mx1")
    mx2 = make_server("mx2")
    fill(mx2, domain, plan, 10, "a")
    run(f"mailbox_create chosen@placement.example --plan '{plan.name}' --server mx2")
    run(f"mailbox_create auto@placement.example --plan '{plan.name}'")
    assert Mailbox.objects.get(local_part="chosen").mail_server == mx2
    assert Mailbox.objects.get(local_part="auto").mail_server == mx1


def test_a_csv_import_spreads_its_mailboxes_counting_the_file_and_keeps_staffs_choice(
    plan: Plan,
) -> None:
    mx1 = make_server("mx1")
    mx2 = make_server("mx2")
    make_server("closed", active=False)
    rows = [f"A,a@example.org,,a.example,,u{i},,{plan.name},1G,{PASSWORD}," for i in range(6)]
    rows.append(f"A,,,a.example,mx1,chosen,,{plan.name},1G,{PASSWORD},")
    closed = f"A,,,a.example,closed,refused,,{plan.name},1G,{PASSWORD},"

    refused = imports.check(csv(*rows, closed))
    assert [(p.row, p.column) for p in refused.problems] == [(9, "server")]
    assert refused.problems[0].message == "The mail server closed accepts no new mailboxes."

    checked = imports.check(csv(*rows))
    assert checked.problems == []
    imports.import_checked(checked=checked, file_name="x.csv", actor="test")
    # One after another, each counted: u0 mx1, u1 mx2, … and the chosen one on top.
    assert Mailbox.objects.get(local_part="chosen").mail_server == mx1
    on = {s.name: Mailbox.objects.filter(mail_server=s).count() for s in (mx1, mx2)}
    assert on == {"mx1": 4, "mx2": 3}
    exported = {(row[4], row[5]) for row in imports.export_rows()}
    assert {("mx1", "chosen"), ("mx1", "u0"), ("mx2", "u1")} <= exported


def csv(*rows: str) -> bytes:
    return ("\r\n".join([",".join(imports.COLUMNS), *rows]) + "\r\n").encode()


def test_a_server_without_a_capacity_counts_as_large_as_the_largest_given() -> None:
    sized = MailServer(pk=1, name="mx1", capacity_bytes=100 * GIB)
    unsized = MailServer(pk=2, name="mx2")
    loads = [
        ServerLoad(sized, allocated_bytes=30 * GIB),  # 30 %
        ServerLoad(unsized, allocated_bytes=20 * GIB),  # 20 % of the 100 GiB it counts as
    ]
    assert Placer(loads).place(GIB) == unsized
    loads[1].allocated_bytes = 40 * GIB
    assert Placer(loads).place(GIB) == sized
