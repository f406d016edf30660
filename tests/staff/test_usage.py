"""Staff usage views: the usage block, refresh, server health and drift on the dashboard,
plan change approvals and customer logins; and the chart geometry."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, Customer, User
from mailboxes.charts import HEIGHT, WIDTH, build_usage_chart, clean_days, round_scale
from mailboxes.models import (
    GIB,
    MIB,
    FolderUsage,
    Health,
    Mailbox,
    MailServer,
    PlanChangeRequest,
    QuotaWarning,
    UsageSample,
)
from mailboxes.plan_changes import plan_change_request
from tests.factories import make_customer, make_domain, make_mailbox, make_plan, make_server

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def server() -> MailServer:
    return make_server()


@pytest.fixture
def staff(client: Client) -> User:
    user = User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    client.force_login(user)
    return user


@pytest.fixture
def customer(server: MailServer) -> Customer:
    return make_customer("Bäckerei Müller")


@pytest.fixture
def mailbox(customer: Customer) -> Mailbox:
    plan = make_plan(protocol="imap", name="IMAP Standard")
    return make_mailbox("anna", domain=make_domain(customer, "baeckerei.example"), plan=plan)


def detail(client: Client, mailbox: Mailbox, query: str = "", **extra: str) -> str:
    url = reverse("staff:mailbox_detail", args=[mailbox.pk]) + query
    return client.get(url, **extra).content.decode()  # type: ignore[arg-type]


# --- The usage block ------------------------------------------------------------------------


def test_staff_mailbox_page_shows_the_whole_usage_picture(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    now = timezone.now()
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=85 * MIB, message_count=40, usage_checked_at=now, usage_state="ok"
    )
    for name, size in (("INBOX", 20), ("Projekte/Bäckerei", 60), ("Sent", 5)):
        FolderUsage.objects.create(
            mailbox=mailbox, name=name, message_count=2, size_bytes=size * MIB, measured_at=now
        )
    UsageSample.objects.bulk_create(
        UsageSample(
            mailbox=mailbox, taken_at=now - timedelta(days=5 - i), used_bytes=(80 + i) * MIB
        )
        for i in range(6)
    )
    QuotaWarning.objects.create(
        mailbox=mailbox,
        kind="warning",
        threshold=80,
        used_bytes=81 * MIB,
        quota_bytes=100 * MIB,
        recipient="owner@example.org",
        language="de",
        status="failed",
        error="451 try again",
    )
    html = detail(client, mailbox)
    assert "85.0\xa0MB of 100.0\xa0MB (85%)" in html
    assert "usage-meter level-warn" in html and "Filling up" in html
    assert html.index("Projekte/Bäckerei") < html.index(">INBOX<") < html.index(">Sent<")
    assert "full in about 15 days" in html
    assert "80% reached" in html and "451 try again" in html  # staff see the SMTP error
    assert "Last checked" in html
    assert "Refresh now" in html
    assert "<svg" in html and "Usage over the last 30 days" in html


def test_usage_block_partial_for_htmx_and_the_90_day_range(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    html = detail(client, mailbox, "?days=90", **HTMX)
    assert "<html" not in html
    assert f'id="usage-{mailbox.pk}"' in html
    assert "Usage over the last 90 days" in html
    assert "No measurements in this period yet." in html


@pytest.mark.parametrize(
    ("state", "badge"), [("stale", ">stale<"), ("drift", ">unknown to the mail server<")]
)
def test_stale_and_drift_show_with_their_reason(
    client: Client, staff: User, mailbox: Mailbox, state: str, badge: str
) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=10 * MIB,
        usage_checked_at=timezone.now() - timedelta(hours=3),
        usage_state=state,
        usage_error="imap.internal:143 connection refused",
    )
    html = detail(client, mailbox)
    assert badge in html
    assert "imap.internal:143 connection refused" in html


def test_refresh_now_with_htmx_rerenders_the_block_and_is_rate_limited(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    url = reverse("staff:mailbox_refresh", args=[mailbox.pk])
    first = client.post(url, {"days": "90"}, REMOTE_ADDR="192.0.2.5", **HTMX).content.decode()
    assert "<html" not in first
    assert "Refresh requested" in first
    assert "Usage over the last 90 days" in first  # the range chosen stays
    assert 'hx-trigger="load delay:3s"' in first
    second = client.post(url, **HTMX).content.decode()
    assert "already requested; try again in a minute" in second
    entry = AuditEntry.objects.get(action="mailbox.refresh")
    assert (entry.actor, entry.ip_address, entry.customer) == (staff, "192.0.2.5", mailbox.customer)


def test_refresh_now_as_a_plain_form(client: Client, staff: User, mailbox: Mailbox) -> None:
    url = reverse("staff:mailbox_refresh", args=[mailbox.pk])
    response = client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("staff:mailbox_detail", args=[mailbox.pk])
    assert "Refresh requested" in response.content.decode()
    again = client.post(url, follow=True)
    assert "already requested" in again.content.decode()
    assert client.get(url).status_code == 405


def test_suspended_mailbox_offers_no_refresh(client: Client, staff: User, mailbox: Mailbox) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(status="suspended")
    html = detail(client, mailbox)
    assert "Suspended mailboxes are not measured." in html
    assert "Refresh now" not in html


# --- Dashboard: health, drift, requests -----------------------------------------------------


@pytest.mark.parametrize(
    ("health", "label"),
    [
        (Health.OK, "ok"),
        (Health.FAILING, "unreachable"),
        (Health.AUTH_FAILED, "master login refused"),
    ],
)
def test_dashboard_shows_each_servers_health(
    client: Client, staff: User, server: MailServer, health: str, label: str
) -> None:
    ok_at = timezone.now() - timedelta(hours=2)
    MailServer.objects.filter(pk=server.pk).update(
        health=health, health_message="connect to 10.0.0.5:143 failed", last_poll_ok_at=ok_at
    )
    html = client.get(reverse("staff:dashboard")).content.decode()
    assert f"</span>{label}</span>" in html
    assert "connect to 10.0.0.5:143 failed" in html
    assert "2\xa0hours ago" in html


def test_dashboard_lists_drift_both_ways(client: Client, staff: User, mailbox: Mailbox) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(
        usage_state="drift", usage_error="the mail server does not know this mailbox"
    )
    MailServer.objects.filter(pk=mailbox.mail_server_id).update(
        unknown_users=["ghost@baeckerei.example", "old@example.org"]
    )
    html = client.get(reverse("staff:dashboard")).content.decode()
    assert "anna@baeckerei.example" in html
    assert "the mail server does not know this mailbox" in html
    assert "ghost@baeckerei.example" in html and "old@example.org" in html
    assert "2 users" in html


def test_dashboard_says_which_servers_were_checked_for_users_postamt_lacks(
    client: Client, staff: User
) -> None:
    """Only the doveadm HTTP API lists a server's users; where it answered and found nobody
    unknown, the page must not blame a missing API."""
    polled = timezone.now() - timedelta(minutes=5)
    make_server("checked", doveadm_port=10808, last_poll_ok_at=polled)
    make_server("waiting", doveadm_port=10808)
    make_server("imap-only", last_poll_ok_at=polled)

    html = client.get(reverse("staff:dashboard")).content.decode()
    drift = html.split('id="drift-heading"', 1)[1]

    assert "<strong>checked</strong>: none: every user it has is a mailbox in Postamt." in drift
    assert "<strong>waiting</strong>: not checked yet" in drift
    assert "<strong>imap-only</strong>: not checked: the check needs the doveadm HTTP API" in drift
    assert drift.count("doveadm HTTP API") == 1
    german = client.get(reverse("staff:dashboard"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "<strong>checked</strong>: keine: Jeder Benutzer dort ist ein Postfach" in german


@pytest.fixture
def plan_request(mailbox: Mailbox) -> PlanChangeRequest:
    bigger = make_plan(protocol="imap", name="IMAP Business", max_quota_bytes=50 * GIB)
    return plan_change_request(mailbox=mailbox, plan=bigger, note="mehr Platz", actor="kunde")


def test_dashboard_lists_pending_requests_and_staff_approve(
    client: Client, staff: User, mailbox: Mailbox, plan_request: PlanChangeRequest
) -> None:
    html = client.get(reverse("staff:dashboard")).content.decode()
    assert "IMAP Standard (IMAP) → <strong>IMAP Business (IMAP)</strong>" in html
    assert "mehr Platz" in html
    response = client.post(reverse("staff:plan_request_approve", args=[plan_request.pk]))
    assert response["Location"] == reverse("staff:dashboard")
    mailbox.refresh_from_db()
    assert mailbox.plan.name == "IMAP Business"
    again = client.post(reverse("staff:plan_request_approve", args=[plan_request.pk]), follow=True)
    assert "already dealt with" in again.content.decode()


def test_staff_decline_with_htmx_returns_the_list(
    client: Client, staff: User, mailbox: Mailbox, plan_request: PlanChangeRequest
) -> None:
    response = client.post(
        reverse("staff:plan_request_decline", args=[plan_request.pk]),
        {"reason": "Bitte erst bezahlen"},
        **HTMX,
    )
    html = response.content.decode()
    assert "<html" not in html and 'id="plan-requests"' in html
    assert "No requests waiting." in html
    plan_request.refresh_from_db()
    assert (plan_request.status, plan_request.decision_note) == ("declined", "Bitte erst bezahlen")
    assert AuditEntry.objects.filter(action="plan_request.decline", actor=staff).exists()


def test_dashboard_warns_when_a_request_would_lower_the_quota(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    small = make_plan(
        protocol="imap", name="Klein", max_quota_bytes=50 * MIB, default_quota_bytes=50 * MIB
    )
    plan_change_request(mailbox=mailbox, plan=small, actor="kunde")
    assert "quota lowered to 50.0\xa0MB" in client.get(reverse("staff:dashboard")).content.decode()


# --- Customer logins ------------------------------------------------------------------------


def test_staff_create_a_customer_login(
    client: Client, staff: User, customer: Customer, django_capture_on_commit_callbacks
) -> None:
    url = reverse("staff:customer_user_create", args=[customer.pk])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(url, {"email": "Lena@Example.org"}, REMOTE_ADDR="192.0.2.8")
    assert response["Location"] == reverse("staff:customer_detail", args=[customer.pk])
    assert len(callbacks) == 1
    user = User.objects.get(customer=customer)
    assert user.email == "lena@example.org" and not user.has_usable_password()
    page = client.get(response["Location"]).content.decode()
    assert "lena@example.org" in page and "invitation sent" in page
    duplicate = client.post(url, {"email": "lena@example.org"})
    assert duplicate.status_code == 400
    assert "already a login" in str(duplicate.context["user_form"].errors)


# --- Chart geometry -------------------------------------------------------------------------


def test_chart_scales_to_the_quota_and_keeps_peaks_when_thinning() -> None:
    now = timezone.now()
    samples = [(now - timedelta(minutes=15 * i), 10) for i in range(2000, 0, -1)]
    samples[1000] = (samples[1000][0], 90)  # one spike among 2000 samples
    chart = build_usage_chart(samples, quota_bytes=100, days=30, now=now)
    assert chart.points <= 200
    ys = [float(p.split(",")[1]) for p in chart.line.split()]
    assert min(ys) == pytest.approx(HEIGHT * 0.1)  # the 90 % spike survived
    assert chart.quota_y == 0 and chart.quota_top
    xs = [float(p.split(",")[0]) for p in chart.line.split()]
    assert 0 <= min(xs) and max(xs) <= WIDTH
    assert (chart.first_bytes, chart.last_bytes, chart.peak_bytes) == (10, 10, 90)


def test_chart_over_quota_raises_the_scale_and_single_points_draw_a_line() -> None:
    now = timezone.now()
    chart = build_usage_chart([(now - timedelta(days=1), 200)], quota_bytes=100, days=30, now=now)
    assert chart.scale_bytes == 200
    assert chart.quota_y == HEIGHT / 2
    assert len(chart.line.split()) == 2
    empty = build_usage_chart([(now - timedelta(days=40), 5)], quota_bytes=100, days=30, now=now)
    assert empty.empty and empty.line == ""


def test_a_mailbox_measured_once_shows_its_one_sample_as_a_point(
    client: Client, staff: User, mailbox: Mailbox
) -> None:
    """Measured just now, the only sample sits on the right edge: a line to the present
    would have no length, so the newest sample is drawn as a dot."""
    now = timezone.now()
    UsageSample.objects.create(mailbox=mailbox, taken_at=now, used_bytes=30 * MIB)
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=30 * MIB, usage_checked_at=now)
    page = client.get(reverse("staff:mailbox_detail", args=[mailbox.pk])).content.decode()
    point = re.search(r'<line class="chart-point" x1="([\d.]+)" y1="([\d.]+)"', page)
    assert point, "no point drawn"
    assert float(point.group(1)) == pytest.approx(WIDTH, abs=1)
    assert float(point.group(2)) == pytest.approx(HEIGHT * 0.7, abs=1)  # 30 of 100 MB


def test_chart_of_low_usage_is_scaled_to_the_usage_not_to_the_far_quota() -> None:
    """13 MB of 5 GB along the bottom edge would show nothing: the top is a round figure above
    the peak, and the quota is off the chart."""
    now = timezone.now()
    samples = [(now - timedelta(days=30 - i), (5 + i * 8 // 30) * MIB) for i in range(31)]
    chart = build_usage_chart(samples, quota_bytes=5 * GIB, days=30, now=now)
    assert chart.scale_bytes == 20 * MIB
    assert not chart.quota_shown and not chart.quota_top
    ys = [float(p.split(",")[1]) for p in chart.line.split()]
    assert max(ys) - min(ys) >= HEIGHT * 0.3  # the growth is there to see
    at_quarter = build_usage_chart(
        [(now - timedelta(days=1), 25 * MIB)], quota_bytes=100 * MIB, days=30, now=now
    )
    assert at_quarter.scale_bytes == 100 * MIB and at_quarter.quota_shown


@pytest.mark.parametrize(
    ("value", "scale"),
    [(1, 1024), (1500, 2 * 1024), (16 * MIB, 20 * MIB), (600 * MIB, GIB), (3 * GIB, 5 * GIB)],
)
def test_a_scaled_chart_tops_out_at_a_round_figure(value: int, scale: int) -> None:
    assert round_scale(value) == scale


@pytest.mark.parametrize(
    ("value", "days"), [("90", 90), ("30", 30), ("7", 30), (None, 30), ("x", 30)]
)
def test_chart_ranges_are_30_or_90_days(value: object, days: int) -> None:
    assert clean_days(value) == days
