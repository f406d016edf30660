"""A customer sets up a device in a real Chromium: opens "Set up your devices", downloads the
Apple profile, and the settings in it log in to the real Dovecot over the mailbox's protocol
(and the QR code's link gives the same profile to a phone that is not logged in)."""

from __future__ import annotations

import plistlib
import poplib
import re
import urllib.request

import pytest
from imapclient import IMAPClient
from playwright.sync_api import Page, expect

from accounts.models import User
from mailboxes.models import MailServer
from tests.e2e.accessibility import assert_accessible
from tests.e2e.test_portal import USER_PASSWORD, log_in
from tests.factories import PASSWORD, make_customer, make_domain, make_mailbox, make_plan
from tests.mailclients import tls_context

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _the_test_dovecots_own_host(settings):  # type: ignore[no-untyped-def]
    """Devices are told the test Dovecot's own host and its IMAPS and POP3S ports."""
    settings.POSTAMT_MAIL_HOSTNAME = ""
    settings.POSTAMT_MAIL_SECURITY = "ssl"
    settings.POSTAMT_SUBMISSION_HOST = ""


def logs_in(account: dict[str, object]) -> bool:
    host = str(account["IncomingMailServerHostName"])
    port = int(account["IncomingMailServerPortNumber"])  # type: ignore[call-overload]
    user = str(account["IncomingMailServerUsername"])
    assert account["IncomingMailServerUseSSL"] is True
    if account["EmailAccountType"] == "EmailTypeIMAP":
        client = IMAPClient(host, port=port, ssl_context=tls_context(), timeout=10)
        client.login(user, PASSWORD)
        client.select_folder("INBOX")
        client.logout()
        return True
    pop = poplib.POP3_SSL(host, port, context=tls_context(), timeout=10)
    pop.user(user)
    pop.pass_(PASSWORD)
    pop.quit()
    return True


@pytest.mark.parametrize("protocol", ["pop3", "imap"])
def test_customer_downloads_the_profile_and_its_settings_log_in(
    page: Page,
    live_server,
    dovecot,
    mail_server: MailServer,
    shot,
    settings,
    protocol: str,  # type: ignore[no-untyped-def]
) -> None:
    customer = make_customer("Bäckerei Müller")
    mailbox = make_mailbox(
        "kasse",
        protocol=protocol,
        plan=make_plan(protocol=protocol),
        domain=make_domain(customer, "bäckerei-geräte.example"),
    )
    User.objects.create_user(
        "inhaber@example.org",
        email="inhaber@example.org",
        password=USER_PASSWORD,
        customer=customer,
    )
    settings.SITE_URL = live_server.url  # the public address the QR code's link is built on
    log_in(page, live_server.url, "inhaber@example.org", USER_PASSWORD)
    page.get_by_role("link", name=re.compile("Set up devices")).click()
    expect(page.get_by_role("heading", name="Set up your devices")).to_be_visible()
    label = "POP3" if protocol == "pop3" else "IMAP"
    expect(page.get_by_role("heading", name=f"This mailbox uses {label}")).to_be_visible()
    expect(page.locator(".qr-code svg")).to_be_visible()
    shot(page, f"devices-{protocol}")
    assert_accessible(page, f"set up your devices ({protocol})")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the profile").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".mobileconfig")
    (account,) = plistlib.loads(open(download.path(), "rb").read())["PayloadContent"]
    assert account["EmailAccountType"] == (
        "EmailTypePOP" if protocol == "pop3" else "EmailTypeIMAP"
    )
    assert account["IncomingMailServerUsername"] == mailbox.address
    assert logs_in(account)

    # The phone that scans the code is not logged in: the link alone fetches the same profile.
    link = page.locator(".qr-code").get_attribute("data-profile-link")
    assert link is not None
    with urllib.request.urlopen(link, timeout=10) as response:  # noqa: S310 - our live server
        assert plistlib.loads(response.read())["PayloadContent"] == [account]
