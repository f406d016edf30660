"""The customer portal in a real Chromium against the live server, the real Dovecot and a
real Celery worker: log in, see the quota, change a mailbox password, log in over IMAP."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import pytest
from django.core import mail
from imapclient.exceptions import LoginError
from playwright.sync_api import Page, expect

from accounts.models import User
from accounts.services import customer_user_create
from mailboxes.models import MailServer
from mailserver.dovecot import DovecotInstance
from tests.e2e.accessibility import assert_accessible
from tests.factories import PASSWORD, make_customer, make_domain, make_mailbox, make_plan
from tests.mailclients import imaps
from tests.twofactor import current_code

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

USER_PASSWORD = "Portal-Pass-2041"
NEW_PASSWORD = "Quiet-Harbour-7359"


def message(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@example.org"
    msg["To"] = "anna@example.org"
    msg["Subject"] = "Rechnung"
    msg.set_content("x" * size)
    return msg.as_bytes()


def imap_login_works(dovecot: DovecotInstance, address: str, password: str) -> bool:
    client = imaps(dovecot)
    try:
        client.login(address, password)
    except LoginError:
        return False
    client.logout()
    return True


@pytest.fixture
def shop(mail_server: MailServer):  # type: ignore[no-untyped-def]
    customer = make_customer("Bäckerei Müller")
    domain = make_domain(customer, "baeckerei-e2e.example")
    mailbox = make_mailbox("anna", domain=domain, plan=make_plan(protocol="imap", name="IMAP S"))
    user = User.objects.create_user(
        "inhaber@example.org",
        email="inhaber@example.org",
        password=USER_PASSWORD,
        customer=customer,
    )
    return customer, mailbox, user


def log_in(page: Page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Email address or user name").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def log_in_staff(page: Page, base_url: str, username: str, password: str, device: Any) -> None:
    """Staff log in in two steps: the password, then the authenticator app's code."""
    log_in(page, base_url, username, password)
    page.get_by_label("Code").fill(current_code(device))
    page.get_by_role("button", name="Confirm").click()


def test_customer_sees_quota_changes_password_and_logs_in_over_imap(
    page: Page,
    live_server,
    dovecot,
    shop,
    deliver,
    celery_worker,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    _customer, mailbox, _user = shop
    deliver(mailbox.address, message(300_000))

    log_in(page, live_server.url, "Inhaber@Example.org", USER_PASSWORD)
    expect(page.get_by_role("heading", name="Your mailboxes")).to_be_visible()
    card = page.locator(f"#mailbox-card-{mailbox.pk}")
    expect(card).to_contain_text(re.compile(r"Not measured yet \(quota 100\.0\sMB\)"))
    shot(page, "overview-before-refresh")
    assert_accessible(page, "overview, not measured")

    # Refresh through htmx: the worker measures over IMAP, the card reloads itself.
    card.get_by_role("button", name=re.compile("Refresh now")).click()
    expect(card).to_contain_text("Refresh requested")
    expect(card).to_contain_text(re.compile(r"\d+\.\d\sKB of 100\.0\sMB \(0%\)"), timeout=30_000)
    expect(card).to_contain_text("Last checked")
    shot(page, "overview-measured")
    assert_accessible(page, "overview, measured")

    card.get_by_role("link", name=re.compile("Details and password")).click()
    expect(page.get_by_role("heading", name="Storage")).to_be_visible()
    expect(page.locator(".folders")).to_contain_text("INBOX")
    shot(page, "mailbox-page")
    assert_accessible(page, "mailbox")

    form = page.locator(f"#password-{mailbox.pk}")
    form.get_by_label("New password", exact=True).fill("short")
    form.get_by_label("New password again").fill("short")
    form.get_by_label("Your own password").fill(USER_PASSWORD)
    form.get_by_role("button", name="Set new password").click()
    expect(page.locator(f"#password-{mailbox.pk}")).to_contain_text("at least 10 characters")
    shot(page, "password-refused")
    assert_accessible(page, "password refused")

    form = page.locator(f"#password-{mailbox.pk}")
    form.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    form.get_by_label("New password again").fill(NEW_PASSWORD)
    form.get_by_label("Your own password").fill(USER_PASSWORD)
    form.get_by_role("button", name="Set new password").click()
    expect(page.locator(f"#password-{mailbox.pk}")).to_contain_text(
        "Use the new one in your mail programs now"
    )
    shot(page, "password-changed")
    assert_accessible(page, "password changed")

    assert imap_login_works(dovecot, mailbox.address, NEW_PASSWORD)
    assert not imap_login_works(dovecot, mailbox.address, PASSWORD)

    page.get_by_role("link", name="Activity", exact=True).click()
    expect(page.locator("table.audit")).to_contain_text("password changed")
    expect(page.locator("table.audit")).to_contain_text("inhaber@example.org")
    assert_accessible(page, "activity")


def expect_the_whole_page(page: Page, title: str) -> None:
    """The page is still all there: an htmx swap replaced only its part."""
    expect(page).to_have_title(f"{title} · Postamt")
    expect(page.locator("link[rel=stylesheet]")).to_have_count(1)
    expect(page.get_by_role("banner")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main navigation")).to_be_visible()
    expect(page.get_by_role("main")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True


def test_form_errors_are_swapped_in_place_and_the_page_stays(
    page: Page,
    live_server,
    shop,
    settings,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    """As ``make run`` serves the pages: with DEBUG, django-htmx adds its debug script, which
    puts the body of an htmx 400 over the whole document."""
    settings.DEBUG = True
    customer, mailbox, _user = shop
    log_in(page, live_server.url, "inhaber@example.org", USER_PASSWORD)
    page.goto(f"{live_server.url}/portal/mailboxes/{mailbox.pk}/")
    page.evaluate("window.notReloaded = true")
    form = page.locator(f"#password-{mailbox.pk}")
    form.get_by_label("New password", exact=True).fill("short")
    form.get_by_label("New password again").fill("short")
    form.get_by_label("Your own password").fill(USER_PASSWORD)
    form.get_by_role("button", name="Set new password").click()
    expect(page.locator(f"#password-{mailbox.pk}")).to_contain_text("at least 10 characters")
    expect_the_whole_page(page, mailbox.display_address)
    expect(page.get_by_role("heading", name="Storage")).to_be_visible()
    shot(page, "password-refused-in-place")
    assert_accessible(page, "password refused in place")

    page.get_by_role("link", name="Settings", exact=True).click()
    page.evaluate("window.notReloaded = true")
    form = page.locator("#settings-form")
    form.get_by_label("Contact address for warnings").fill(mailbox.display_address)
    form.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-form")).to_contain_text("one of your own mailboxes")
    expect_the_whole_page(page, "Settings")
    expect(page.get_by_role("heading", name="Who can log in here")).to_be_visible()
    shot(page, "settings-refused-in-place")
    assert_accessible(page, "settings refused in place")

    page.locator("#settings-form").get_by_label("Contact address for warnings").fill(
        "buero@example.net"
    )
    page.locator("#settings-form").get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-form")).to_contain_text("Your settings are saved.")
    expect_the_whole_page(page, "Settings")
    customer.refresh_from_db()
    assert customer.contact_email == "buero@example.net"


def test_german_overview_and_the_phone_layout(
    page: Page,
    live_server,
    shop,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    from mailboxes.models import MIB, Mailbox

    _customer, mailbox, _user = shop
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=96 * MIB,
        message_count=1200,
        usage_state="ok",
        usage_checked_at=mailbox.created_at,
    )
    log_in(page, live_server.url, "inhaber@example.org", USER_PASSWORD)
    page.get_by_role("button", name=re.compile("^DE")).click()
    expect(page.get_by_role("heading", name="Ihre Postfächer")).to_be_visible()
    card = page.locator(f"#mailbox-card-{mailbox.pk}")
    expect(card).to_contain_text(re.compile(r"96,0\sMB von 100,0\sMB \(96\s%\)"))
    expect(card).to_contain_text("Fast voll")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    shot(page, "overview-de")
    assert_accessible(page, "overview")

    page.set_viewport_size({"width": 375, "height": 740})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px)"
    shot(page, "overview-de-phone")
    assert_accessible(page, "overview on a phone")
    page.goto(f"{live_server.url}/portal/mailboxes/{mailbox.pk}/")
    expect(page.get_by_text("POP3 oder IMAP: Welches passt zu Ihnen?")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the mailbox page scrolls sideways on a phone ({width}px)"
    shot(page, "mailbox-de-phone")
    assert_accessible(page, "mailbox on a phone")


def test_invited_user_chooses_a_password_from_the_email(
    page: Page,
    live_server,
    shop,
    settings,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    customer, mailbox, _user = shop
    settings.SITE_URL = live_server.url
    from accounts.emails import send_invite

    user = customer_user_create(customer=customer, email="lena@example.org", actor="staff")
    mail.outbox.clear()
    assert send_invite(user.pk)
    link = re.search(r"http://\S+/password/reset/\S+/", mail.outbox[0].body)
    assert link
    page.goto(link.group(0))
    expect(page.get_by_role("heading", name="Choose your password")).to_be_visible()
    assert_accessible(page, "choose a password")
    page.get_by_label("New password", exact=True).fill("Sunny-Meadow-4471")
    page.get_by_label("New password confirmation").fill("Sunny-Meadow-4471")
    page.get_by_role("button", name="Save password and log in").click()
    expect(page.get_by_text("Your password is saved and you are logged in.")).to_be_visible()
    assert_accessible(page, "password saved")
    page.get_by_role("link", name="Continue").click()
    expect(page.locator(f"#mailbox-card-{mailbox.pk}")).to_be_visible()
    shot(page, "invited-user-overview")


def test_staff_usage_view_switches_the_chart_range(
    page: Page,
    live_server,
    shop,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from mailboxes.models import MIB, Mailbox, UsageSample

    _customer, mailbox, _user = shop
    now = timezone.now()
    UsageSample.objects.bulk_create(
        UsageSample(mailbox=mailbox, taken_at=now - timedelta(days=80 - i), used_bytes=i * MIB)
        for i in range(81)
    )
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=80 * MIB, usage_state="ok", usage_checked_at=now
    )
    from tests.twofactor import totp_device

    staff = User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    device = totp_device(staff)
    log_in_staff(page, live_server.url, "hanna", "Staff-Pass-2041", device)
    expect(page).to_have_url(re.compile(r"/staff/$"))
    page.goto(f"{live_server.url}/staff/mailboxes/{mailbox.pk}/")
    block = page.locator(f"#usage-{mailbox.pk}")
    expect(block).to_contain_text("Usage over the last 30 days")
    expect(block).to_contain_text("Filling up")
    assert_accessible(page, "staff mailbox")
    block.get_by_role("link", name="90 days").click()
    expect(block).to_contain_text("Usage over the last 90 days")
    assert page.url.endswith("?days=90")  # htmx pushed the URL: reload keeps the range
    shot(page, "staff-usage-90-days")
    assert_accessible(page, "staff mailbox, 90 days")
