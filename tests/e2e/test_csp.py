"""The content security policy in a real Chromium: the main staff and portal pages, their htmx
updates, the second-factor pages and the API's docs load with no violation (the ``csp_watch``
fixture of conftest.py fails any browser test that has one); and the watch does see one."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from tests.e2e.csp import CspWatch
from tests.e2e.test_portal import USER_PASSWORD, log_in
from tests.factories import make_customer, make_domain, make_mailbox, make_plan
from tests.twofactor import current_code, totp_device

pytestmark = [pytest.mark.e2e]

STAFF_PASSWORD = "Staff-Pass-2041"


@pytest.fixture
def shop(transactional_db: None):  # type: ignore[no-untyped-def]
    from mailboxes.models import MIB, Mailbox

    customer = make_customer("Bäckerei Müller")
    domain = make_domain(customer, "baeckerei-csp.example")
    mailbox = make_mailbox("anna", domain=domain, plan=make_plan(name="IMAP Standard"))
    # Usage, so the bars (an inline width) are drawn.
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=120 * MIB, usage_state="ok")
    User.objects.create_user(
        "inhaber@example.org", email="inhaber@example.org", password=USER_PASSWORD,
        customer=customer,
    )  # fmt: skip
    return customer, mailbox


def test_staff_and_portal_pages_keep_to_the_policy(
    page: Page,
    live_server,
    shop,
    csp_watch: CspWatch,  # type: ignore[no-untyped-def]
) -> None:
    customer, mailbox = shop
    base = live_server.url

    response = page.goto(f"{base}/accounts/login/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"].startswith("'self'")  # and a nonce on pages that use one
    assert "unsafe" not in directives["script-src"]
    assert directives["style-src-elem"] == "'self'"
    assert directives["style-src-attr"] == "'unsafe-inline'"  # the usage bars' widths only

    # A customer: overview, a mailbox with its usage bar, an htmx update, plan and settings.
    log_in(page, base, "inhaber@example.org", USER_PASSWORD)
    expect(page).to_have_url(f"{base}/portal/")
    for path in ("/portal/", f"/portal/mailboxes/{mailbox.pk}/", "/portal/settings/",
                 f"/portal/mailboxes/{mailbox.pk}/plan/", "/portal/activity/"):  # fmt: skip
        page.goto(f"{base}{path}")
        expect(page.locator("main")).to_be_visible()
    page.goto(f"{base}/portal/mailboxes/{mailbox.pk}/")
    expect(page.locator(".bar-fill").first).to_be_visible()
    ranges = page.locator(f"#usage-{mailbox.pk} .chart-ranges a")
    if ranges.count():
        ranges.first.click()  # htmx swaps the chart in place
        page.wait_for_load_state("networkidle")
    page.get_by_role("button", name="Log out").click()

    # A staff member: the authenticator app at the first login (its page shows the QR code and
    # loads the security-key scripts), then the staff pages.
    hanna = User.objects.create_user("hanna", password=STAFF_PASSWORD, is_staff=True)
    log_in(page, base, "hanna", STAFF_PASSWORD)
    expect(page.get_by_role("heading", name="Set up a second factor")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    device = totp_device(hanna)
    log_in(page, base, "hanna", STAFF_PASSWORD)
    page.locator("input[name=code]").fill(current_code(device))
    page.locator("main form button[type=submit]").first.click()
    expect(page).to_have_url(f"{base}/staff/")
    staff_pages = (
        "/staff/", f"/staff/customers/{customer.pk}/", f"/staff/mailboxes/{mailbox.pk}/",
        "/staff/mailboxes/", "/staff/audit/", "/accounts/two-factor/devices/",
    )  # fmt: skip
    for path in staff_pages:
        page.goto(f"{base}{path}")
        expect(page.locator("main")).to_be_visible()

    # The API's documentation: Redoc with a policy of its own.
    page.goto(f"{base}/api/v1/docs/")
    expect(page.get_by_role("heading", name="Postamt API")).to_be_visible(timeout=30_000)

    assert not csp_watch.report()


def test_the_watch_sees_a_violation(page: Page, live_server, csp_watch: CspWatch) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/accounts/login/")
    page.evaluate(
        "() => { const s = document.createElement('style');"
        " s.textContent = 'body { color: red }'; document.head.append(s); }"
    )
    page.wait_for_timeout(200)
    assert csp_watch.violations or csp_watch.console
    assert "style-src-elem" in csp_watch.report()
    csp_watch.clear()  # the one this test caused on purpose
