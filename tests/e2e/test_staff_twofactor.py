"""Staff second factors in a real Chromium: setting up an authenticator app at the first login
and then provisioning a mailbox that logs in over IMAP at once; a security key through
Chromium's virtual authenticator (DevTools' WebAuthn domain)."""

from __future__ import annotations

import base64
import re

import pytest
from django_otp.oath import totp
from django_otp_webauthn.models import WebAuthnCredential
from playwright.sync_api import Page, expect

from accounts.models import AuditEntry, User
from mailboxes.models import Mailbox, MailServer
from tests.e2e.test_portal import imap_login_works, log_in
from tests.factories import make_customer, make_domain, make_plan

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

STAFF_PASSWORD = "Staff-Pass-2041"
MAILBOX_PASSWORD = "Quiet-Harbour-7359"


def code_from_the_shown_key(page: Page) -> str:
    """What an authenticator app would show for the key typed from the page."""
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    return f"{totp(base64.b32decode(secret)):06d}"


def test_staff_sets_up_an_app_then_creates_an_imap_mailbox_that_logs_in(
    page: Page,
    live_server,
    dovecot,
    mail_server: MailServer,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    customer = make_customer("Bäckerei Müller")
    make_domain(customer, "baeckerei-2fa.example")
    plan = make_plan(protocol="imap", name="IMAP S")
    User.objects.create_user("hanna", password=STAFF_PASSWORD, is_staff=True)

    log_in(page, live_server.url, "hanna", STAFF_PASSWORD)
    expect(page.get_by_role("heading", name="Set up a second factor")).to_be_visible()
    expect(page.locator(".qr-code svg")).to_be_visible()
    shot(page, "staff-setup-second-factor")
    # Nothing else opens before it is set up.
    page.goto(f"{live_server.url}/staff/customers/{customer.pk}/")
    expect(page.get_by_role("heading", name="Set up a second factor")).to_be_visible()

    page.get_by_label("Code", exact=True).fill(code_from_the_shown_key(page))
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.locator("#recovery-codes li")
    expect(codes).to_have_count(10)
    shot(page, "staff-recovery-codes")
    page.get_by_role("button", name="I have kept them: continue").click()
    # Back where the staff member was going.
    expect(page).to_have_url(re.compile(rf"/staff/customers/{customer.pk}/$"))

    page.get_by_label("Mailbox name").fill("anna")
    page.locator("#id_password, [name=password]").first.fill(MAILBOX_PASSWORD)
    page.get_by_label("Plan").select_option(str(plan.pk))
    page.get_by_role("button", name="Create mailbox").click()
    expect(page.get_by_text("anna@baeckerei-2fa.example").first).to_be_visible()
    shot(page, "staff-mailbox-created")

    mailbox = Mailbox.objects.get(local_part="anna")
    assert imap_login_works(dovecot, mailbox.address, MAILBOX_PASSWORD)
    assert set(AuditEntry.objects.values_list("action", flat=True)) >= {
        "twofactor.enrol",
        "twofactor.recovery_codes",
        "mailbox.create",
    }


def test_staff_registers_a_security_key_and_logs_in_with_it(
    page: Page,
    live_server,
    settings,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    # WebAuthn wants a host name, and the page's own origin.
    assert live_server.url.startswith("http://localhost:")
    settings.OTP_WEBAUTHN_RP_ID = "localhost"
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [live_server.url]
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    User.objects.create_user("hanna", password=STAFF_PASSWORD, is_staff=True)

    log_in(page, live_server.url, "hanna", STAFF_PASSWORD)
    page.get_by_role("button", name="Register a security key").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    page.get_by_role("button", name="I have kept them: continue").click()
    expect(page).to_have_url(re.compile(r"/staff/$"))
    assert WebAuthnCredential.objects.filter(user__username="hanna", confirmed=True).count() == 1
    entry = AuditEntry.objects.get(action="twofactor.enrol")
    assert entry.details["device"] == "webauthn"

    page.get_by_role("button", name="Log out").click()
    log_in(page, live_server.url, "hanna", STAFF_PASSWORD)
    expect(page.get_by_role("heading", name="Second step")).to_be_visible()
    shot(page, "staff-second-step-with-key")
    page.get_by_role("button", name="Use my security key").click()
    expect(page).to_have_url(re.compile(r"/staff/$"))
    expect(page.get_by_role("link", name="Security")).to_be_visible()
