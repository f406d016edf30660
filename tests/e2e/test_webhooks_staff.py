"""Webhooks in a real Chromium with the real worker: an admin adds an endpoint, copies the
secret shown once into the receiver, sends a test event and watches it arrive, signed."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from tests.e2e.accessibility import assert_accessible
from tests.e2e.test_portal import log_in_staff
from tests.twofactor import totp_device
from tests.waiting import wait_for
from tests.webhooks.conftest import receiver, receivers
from tests.webhooks.receiver import Receiver
from webhooks.models import WebhookDelivery

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
__all__ = ["receiver", "receivers"]  # fixtures


def test_an_admin_adds_an_endpoint_and_its_test_event_arrives_signed(
    page: Page,
    live_server,  # type: ignore[no-untyped-def]
    celery_worker,  # type: ignore[no-untyped-def]
    receiver: Receiver,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    device = totp_device(
        User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    )
    log_in_staff(page, live_server.url, "hanna", "Staff-Pass-2041", device)

    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_text("No endpoints yet.")).to_be_visible()
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Description").fill("Billing")
    page.get_by_label("A mailbox was created (mailbox.created)").check()
    page.get_by_label("A mailbox is full (quota.full)").check()
    assert_accessible(page)
    page.get_by_role("button", name="Add endpoint").click()

    secret = page.locator(".messages code.password")
    expect(secret).to_be_visible()
    receiver.secret = secret.inner_text()
    assert receiver.secret.startswith("whsec_")
    shot(page, "added")
    assert_accessible(page)

    page.get_by_role("button", name="Send test event").click()

    def answered() -> WebhookDelivery | None:
        found = WebhookDelivery.objects.filter(event="ping").first()
        done = found and (found.status != "pending" or found.last_error or found.last_status_code)
        return found if done else None

    first = wait_for(answered, "the first attempt of the test event", timeout=30)
    assert first.status == "delivered", (first.status, first.last_error, first.last_status_code)
    expect(page.locator("#deliveries")).to_contain_text("delivered", timeout=30_000)
    expect(page.locator("#deliveries")).to_contain_text("200")
    (event,) = wait_for(lambda: receiver.verified, "the signed test event")
    assert event["type"] == "ping"
    shot(page, "test event delivered")
    assert_accessible(page)

    page.get_by_role("button", name="Resend").click()
    wait_for(lambda: len(receiver.verified) == 2, "the resent test event", timeout=30)
    assert receiver.verified[1]["id"] == event["id"]
    wait_for(
        lambda: WebhookDelivery.objects.filter(status="delivered").count() == 2,
        "the resend to be recorded",
    )
    page.get_by_role("link", name="Webhooks").first.click()
    expect(page.get_by_role("rowheader").get_by_role("link", name=receiver.url)).to_be_visible()
    shot(page, "list")
    assert_accessible(page)
