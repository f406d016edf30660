"""Support and a customer in two real Chromium sessions: support cannot open a backup's message
list until the customer allows it in the portal; then it can, and the customer's activity page
shows the permission and its use by "Support", never by name. The backup is a real one, taken
from the real Dovecot by the real Celery worker."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect

from accounts.models import StaffRole, User
from backups import services
from backups.models import JobStatus
from tests.backups import helpers
from tests.backups.helpers import imap, message
from tests.e2e.accessibility import assert_accessible
from tests.e2e.test_portal import USER_PASSWORD, log_in, log_in_staff
from tests.factories import make_customer, make_domain, make_mailbox
from tests.integration.test_backups import wait
from tests.twofactor import totp_device

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
restore_side = helpers.restore_side

SUPPORT_PASSWORD = "Support-Pass-2041"


def test_support_needs_the_customers_grant_to_open_a_backups_message_list(
    page: Page,
    browser: Browser,
    browser_context_args,
    live_server,
    dovecot,
    mail_server,
    celery_worker,
    restore_side,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    customer = make_customer("Konditorei Krause")
    mailbox = make_mailbox("kasse", domain=make_domain(customer, "konditorei-grant.example"))
    User.objects.create_user(
        "krause@example.org", email="krause@example.org", password=USER_PASSWORD, customer=customer
    )
    device = totp_device(
        User.objects.create_user(
            "sam.support", password=SUPPORT_PASSWORD, is_staff=True, staff_role=StaffRole.SUPPORT
        )
    )
    with imap(dovecot, mailbox.address) as client:
        client.multiappend("INBOX", [message("Bestellung Hochzeitstorte"), message("Lieferung")])
    backup = wait(services.backup_request(mailbox=mailbox, actor="test"))
    assert backup.status == JobStatus.DONE, backup.error
    snapshot = backup.snapshot
    backups_page = live_server.url + reverse("staff_backups:mailbox", args=[mailbox.pk])
    browse_page = live_server.url + reverse("staff_backups:browse", args=[snapshot.pk])

    # Support: the snapshot is listed, its messages are not offered, and asking for them is refused.
    log_in_staff(page, live_server.url, "sam.support", SUPPORT_PASSWORD, device)
    page.goto(backups_page)
    row = page.locator(f"#snapshot-{snapshot.pk}")
    expect(row).to_contain_text("2")  # its message count
    expect(row.get_by_role("link", name="Messages…")).to_have_count(0)
    expect(page.locator("#support-grant")).to_contain_text("needs the customer's permission")
    response = page.goto(browse_page)
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("The customer's permission is needed")
    expect(page.get_by_text("the customer must grant access in the portal")).to_be_visible()
    expect(page.get_by_text("Bestellung Hochzeitstorte")).to_have_count(0)
    shot(page, "support-refused")
    assert_accessible(page, "support refused without a grant")

    # The customer, in a browser of its own, allows it for 24 hours.
    customer_page = browser.new_context(**browser_context_args).new_page()
    log_in(customer_page, live_server.url, "krause@example.org", USER_PASSWORD)
    customer_page.goto(live_server.url + reverse("portal:activity"))
    customer_page.get_by_label("Allow support to look into my backups for").select_option(
        label="24 hours"
    )
    customer_page.get_by_role("button", name="Allow").click()
    expect(customer_page.get_by_text("Access granted until")).to_be_visible()
    expect(customer_page.get_by_role("button", name="Revoke")).to_be_visible()
    shot(customer_page, "customer-granted")
    assert_accessible(customer_page, "activity, access granted")

    # Support again: the link is there and the messages are listed.
    page.goto(backups_page)
    expect(page.locator("#support-grant")).to_contain_text("lets support look into its backups")
    page.locator(f"#snapshot-{snapshot.pk}").get_by_role("link", name="Messages…").click()
    expect(page.get_by_role("row", name="Bestellung Hochzeitstorte")).to_be_visible()
    expect(page.get_by_role("row", name="Lieferung")).to_be_visible()
    shot(page, "support-browses")
    assert_accessible(page, "support browses with the grant")

    # The customer sees the permission and its use, by "Support", not by name.
    customer_page.reload()
    activity = customer_page.locator("table.audit")
    used = activity.get_by_role("row").filter(has_text="messages in a backup viewed with granted")
    expect(used).to_have_count(1)
    expect(used).to_contain_text("Support")
    expect(used).to_contain_text("INBOX")
    granted = activity.get_by_role("row").filter(has_text="support allowed to look into")
    expect(granted).to_contain_text("krause@example.org")
    expect(customer_page.get_by_text("sam.support")).to_have_count(0)
    shot(customer_page, "customer-activity")
    assert_accessible(customer_page, "activity with the use of the grant")

    # Revoked: support is refused again.
    customer_page.get_by_role("button", name="Revoke").click()
    expect(
        customer_page.get_by_text("Support can no longer look into your backups.")
    ).to_be_visible()
    response = page.goto(browse_page)
    assert response is not None and response.status == 403
    expect(page.get_by_text("the customer revoked its last permission")).to_be_visible()
