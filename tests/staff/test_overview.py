"""The staff overview (/staff/): what is sold, where it lives, what fills up, what needs a look."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from mailboxes.forecast import days_until_full, growth_per_day
from mailboxes.models import GIB, MIB, Mailbox, MailServer, Plan, QuotaWarning, ServerUsageSample
from mailboxes.overview import staff_overview
from mailboxes.services import mailbox_suspend
from mailboxes.usage import record_server_usage
from tests.factories import make_domain, make_mailbox, make_plan, make_server

pytestmark = pytest.mark.django_db


def measured(mailbox: Mailbox, used_bytes: int) -> Mailbox:
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=used_bytes)
    mailbox.refresh_from_db()
    return mailbox


def polled(server: MailServer, *, days: int, start: int, per_day: int) -> None:
    """A poll a day for ``days`` days, the server's total growing by ``per_day`` bytes."""
    now = timezone.now()
    ServerUsageSample.objects.bulk_create(
        ServerUsageSample(
            server=server,
            taken_at=now - timedelta(days=days - i),
            used_bytes=start + i * per_day,
            allocated_bytes=0,
            mailbox_count=0,
        )
        for i in range(days + 1)
    )
    MailServer.objects.filter(pk=server.pk).update(last_poll_ok_at=now, health="ok")


@pytest.fixture
def staff_client(client: Client, staff: User) -> Client:
    client.force_login(staff)
    return client


def test_mailboxes_are_counted_by_protocol_status_and_plan_with_links_to_the_lists(
    staff_client: Client,
):
    imap, pop3 = make_plan(protocol="imap"), make_plan(protocol="pop3")
    domain = make_domain()
    make_mailbox("a", domain=domain, plan=imap)
    make_mailbox("b", domain=domain, plan=imap)
    mailbox_suspend(
        mailbox=make_mailbox("c", domain=domain, plan=pop3, protocol="pop3"), actor="test"
    )

    overview = staff_overview()
    assert overview.by_protocol == {"imap": 2, "pop3": 1}
    assert overview.by_status == {"active": 2, "suspended": 1}
    assert {(c.plan.pk, c.mailboxes) for c in overview.by_plan} == {(imap.pk, 2), (pop3.pk, 1)}

    html = staff_client.get(reverse("staff:dashboard")).content.decode()
    mailboxes = reverse("staff:mailbox_list")
    assert f'<a href="{mailboxes}?protocol=pop3"><strong>1</strong> POP3</a>' in html
    assert f'<a href="{mailboxes}?status=suspended"><strong>1</strong> suspended</a>' in html
    assert f'<a href="{mailboxes}?plan={imap.pk}">2</a>' in html
    # The link leads to a list that holds exactly what was counted.
    listed = staff_client.get(mailboxes, {"protocol": "pop3"}).content.decode()
    assert "c@" in listed and "a@" not in listed


def test_allocated_and_used_storage_per_server_and_in_total():
    plan = make_plan(max_quota_bytes=10 * GIB)
    anna = make_mailbox("anna", plan=plan, quota_bytes=1 * GIB)
    measured(anna, 300 * MIB)
    other_server = make_server("second", capacity_bytes=100 * GIB)
    domain = make_domain()
    domain.mail_server = other_server
    domain.save()
    bob = make_mailbox("bob", domain=domain, plan=plan, quota_bytes=2 * GIB)
    Mailbox.objects.filter(pk=bob.pk).update(mail_server=other_server, used_bytes=1 * GIB)

    overview = staff_overview()
    by_name = {s.server.name: s for s in overview.servers}
    assert (by_name["test"].allocated, by_name["test"].used) == (1 * GIB, 300 * MIB)
    assert (by_name["second"].allocated, by_name["second"].used) == (2 * GIB, 1 * GIB)
    assert by_name["second"].used_percent == 1
    assert (overview.total.allocated, overview.total.used) == (3 * GIB, 1 * GIB + 300 * MIB)
    assert overview.total.capacity is None  # one server has none: no misleading partial sum


def test_a_growing_server_with_a_capacity_gets_a_forecast(staff_client: Client):
    server = make_server(capacity_bytes=100 * GIB)
    anna = make_mailbox("anna", plan=make_plan(max_quota_bytes=100 * GIB), quota_bytes=90 * GIB)
    measured(anna, 40 * GIB)
    polled(server, days=10, start=30 * GIB, per_day=1 * GIB)

    (storage,) = staff_overview().servers
    assert round(storage.growth_per_day) == 1 * GIB
    assert storage.days_until_full == 60  # 60 GiB left at 1 GiB a day

    html = staff_client.get(reverse("staff:dashboard")).content.decode()
    assert "in about 60 days" in html
    assert "+1.0\xa0GB" in html
    german = staff_client.get(reverse("staff:dashboard"), HTTP_ACCEPT_LANGUAGE="de")
    assert "in etwa 60 Tagen" in german.content.decode()


def test_no_forecast_without_a_capacity_growth_or_within_a_year():
    assert days_until_full(0, 100, None) is None
    assert days_until_full(50, 100, -1.0) is None
    assert days_until_full(0, 1000 * GIB, float(GIB)) is None  # 1000 days: not within a year
    assert days_until_full(200, 100, 10.0) == 0  # already over
    now = timezone.now()
    assert growth_per_day([(now, 1)]) is None
    assert growth_per_day([(now - timedelta(hours=2), 1), (now, 5)]) is None  # under a day


def test_servers_without_a_recent_successful_poll_or_failing_need_attention(
    staff_client: Client,
):
    server = make_server()
    make_mailbox("anna")
    MailServer.objects.filter(pk=server.pk).update(
        health="ok", last_poll_ok_at=timezone.now() - timedelta(hours=5)
    )
    failing = make_server("broken", health="failing", health_message="connection refused")

    attention = {s.server.name: s for s in staff_overview().attention_servers}
    assert attention["test"].stale and not attention["test"].failing
    assert attention["broken"].failing

    html = staff_client.get(reverse("staff:dashboard")).content.decode()
    assert "Mail servers needing attention" in html
    assert "no successful poll for 5\xa0hours" in html
    assert "connection refused" in html
    assert failing.name in html


def test_a_freshly_polled_healthy_server_needs_no_attention():
    server = make_server()
    make_mailbox("anna")
    MailServer.objects.filter(pk=server.pk).update(health="ok", last_poll_ok_at=timezone.now())
    assert staff_overview().attention_servers == []


def test_almost_full_and_full_mailboxes_are_counted_and_the_fullest_listed(staff_client: Client):
    plan = make_plan()  # warnings at 80, 90 and 95 %: "almost full" from 95
    domain = make_domain()
    quota = plan.default_quota_bytes
    empty = measured(make_mailbox("empty", domain=domain, plan=plan), quota // 10)
    almost = measured(make_mailbox("almost", domain=domain, plan=plan), quota * 95 // 100)
    full = measured(make_mailbox("full", domain=domain, plan=plan), quota + 1)
    make_mailbox("never", domain=domain, plan=plan)  # not measured: not in the fullest

    overview = staff_overview()
    assert (overview.almost_full, overview.full) == (1, 1)
    assert overview.fullest == [full, almost, empty]

    html = staff_client.get(reverse("staff:dashboard")).content.decode()
    assert f'{reverse("staff:mailbox_list")}?band=full&amp;sort=-usage"><strong>1</strong>' in html
    assert html.index(full.display_address) < html.index(almost.display_address)


def test_recent_warnings_are_shown_newest_first(staff_client: Client):
    anna = make_mailbox("anna")
    for threshold in (80, 90):
        QuotaWarning.objects.create(
            mailbox=anna,
            kind="warning",
            threshold=threshold,
            used_bytes=anna.quota_bytes * threshold // 100,
            quota_bytes=anna.quota_bytes,
            recipient="owner@example.org",
            language="en",
        )
    assert [w.threshold for w in staff_overview().recent_warnings] == [90, 80]
    html = staff_client.get(reverse("staff:dashboard")).content.decode()
    assert html.index("90% reached") < html.index("80% reached")


def test_a_finished_poll_records_the_servers_totals():
    server = make_server()
    anna = measured(make_mailbox("anna"), 5 * MIB)
    sample = record_server_usage(server, timezone.now())
    assert (sample.used_bytes, sample.allocated_bytes, sample.mailbox_count) == (
        5 * MIB,
        anna.quota_bytes,
        1,
    )


def grow(server: MailServer, plan: Plan, count: int) -> None:
    """Rows straight into the table: the page reads them, the services are not under test."""
    domain = make_domain()
    Mailbox.objects.bulk_create(
        Mailbox(
            domain=domain,
            local_part=f"m{i}-{Mailbox.objects.count()}",
            address=f"m{i}-{Mailbox.objects.count()}@{domain.name}",
            protocol=("imap", "pop3")[i % 2],
            status=("active", "suspended")[i % 3 == 0],
            plan=plan,
            mail_server=server,
            quota_bytes=plan.default_quota_bytes,
            used_bytes=i * MIB,
            password_hash="{ARGON2ID}x",
            storage_path=f"{domain.name}/m{i}",
        )
        for i in range(count)
    )


def overview_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("staff:dashboard"))
    assert response.status_code == 200
    return len(queries)


def test_the_overview_costs_the_same_queries_however_many_mailboxes(staff_client: Client):
    server, plan = make_server(), make_plan(allows_pop3=True)
    grow(server, plan, 3)
    few = overview_queries(staff_client)
    grow(server, plan, 400)
    make_server("second")
    many = overview_queries(staff_client)
    assert many == few
