"""Accessibility in a real Chromium: what axe-core checks (tests/e2e/accessibility.py) and what
it cannot (focus rings, the usage bars' and chart's contrast, how text wraps)."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from tests.backups import helpers
from tests.backups.helpers import make_snapshot, message
from tests.e2e.accessibility import assert_accessible
from tests.e2e.test_portal import USER_PASSWORD, log_in
from tests.factories import make_customer, make_domain, make_mailbox, make_plan

pytestmark = [pytest.mark.e2e]

backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
restore_side = helpers.restore_side


@pytest.fixture
def shop(transactional_db: None):  # type: ignore[no-untyped-def]
    customer = make_customer("Bäckerei Müller")
    domain = make_domain(customer, "bäckerei-müller-zentrale.example")
    mailbox = make_mailbox("anna", domain=domain, plan=make_plan(name="IMAP Standard"))
    user = User.objects.create_user(
        "inhaber@example.org", email="inhaber@example.org", password=USER_PASSWORD,
        customer=customer,
    )
    return customer, mailbox, user


def test_small_links_and_disclosures_are_targets_of_24_px(
    page: Page, live_server, shop, restore_side  # type: ignore[no-untyped-def]
) -> None:
    """WCAG 2.5.8: "Forgot your password?", "Back to the login" and the "Restore…" of each
    backup are 24 px high at least (axe's target-size rule)."""
    _customer, mailbox, _user = shop
    for _ in range(2):
        make_snapshot(mailbox, {"INBOX": [(message("Rechnung"), [])]})
    page.goto(f"{live_server.url}/accounts/login/")
    assert_accessible(page, "login", rules=["target-size"])
    page.get_by_role("link", name="Forgot your password?").click()
    assert_accessible(page, "forgot password", rules=["target-size"])
    page.get_by_label("Your email address").fill("nobody@example.org")
    page.get_by_role("button", name="Send the link").click()
    assert_accessible(page, "link sent", rules=["target-size"])
    log_in(page, live_server.url, "inhaber@example.org", USER_PASSWORD)
    page.goto(f"{live_server.url}/portal/backups/mailboxes/{mailbox.pk}/")
    expect(page.get_by_text("Restore…")).to_have_count(2)
    assert_accessible(page, "backups", rules=["target-size"])
