"""The staff pages of webhooks: endpoints added with a secret shown once, a test event, the
deliveries with their answers, resending, disabling and deleting; admins act, others read."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import AuditEntry, StaffRole, User
from tests.webhooks.conftest import receiver, receivers
from web.templatetags.postamt import audit_action
from webhooks import delivery, events
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db
__all__ = ["receiver", "receivers"]  # fixtures


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(User.objects.create_user("hanna", is_staff=True))
    return client


@pytest.fixture
def endpoint(receiver) -> WebhookEndpoint:  # type: ignore[no-untyped-def]
    new = endpoint_create(url=receiver.url, events=list(events.EVENTS), actor="test")
    receiver.secret = new.secret
    return new.endpoint


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(admin_client: Client):
    response = admin_client.post(
        reverse("staff:webhook_create"),
        {
            "url": "https://billing.example/postamt",
            "description": "Billing",
            "events": ["mailbox.created", "quota.full"],
        },
        follow=True,
    )

    endpoint = WebhookEndpoint.objects.get()
    assert response.redirect_chain == [(reverse("staff:webhook_detail", args=[endpoint.pk]), 302)]
    assert endpoint.events == ["mailbox.created", "quota.full"]
    assert endpoint.description == "Billing" and endpoint.created_by.username == "hanna"
    page = response.content.decode()
    assert page.count(endpoint.secret) == 1 and endpoint.secret.startswith("whsec_")
    assert endpoint.secret not in admin_client.get(response.request["PATH_INFO"]).content.decode()
    entry = AuditEntry.objects.get(action="webhook.create")
    assert entry.details == {"events": ["mailbox.created", "quota.full"]}
    assert endpoint.secret not in str(entry.details) + entry.target_repr


def test_a_wrong_form_comes_back_with_what_is_wrong_and_nothing_is_added(admin_client: Client):
    response = admin_client.post(
        reverse("staff:webhook_create"), {"url": "ftp://billing.example", "events": []}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "This field is required." in page  # no event chosen
    assert not WebhookEndpoint.objects.exists()
    response = admin_client.post(
        reverse("staff:webhook_create"),
        {"url": "ftp://billing.example", "events": ["quota.full"]},
    )
    assert response.status_code == 400
    assert "Enter an http:// or https:// URL." in response.content.decode()


def test_the_test_button_sends_a_ping_whose_answer_shows_on_the_page(
    admin_client: Client,
    endpoint: WebhookEndpoint,
    receiver,  # type: ignore[no-untyped-def]
    sent_tasks,  # type: ignore[no-untyped-def]
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("staff:webhook_test", args=[endpoint.pk]))
    assert response.status_code == 302
    ping = WebhookDelivery.objects.get(event="ping")
    assert sent_tasks == [("webhooks.deliver", (ping.pk,), {})]
    assert AuditEntry.objects.filter(action="webhook.test").exists()

    url = reverse("staff:webhook_detail", args=[endpoint.pk])
    page = admin_client.get(url).content.decode()
    assert f'hx-get="{url}" hx-trigger="every 2s"' in page  # waits for the answer

    assert delivery.deliver(ping.pk) == "delivered"  # what the worker does
    (got,) = receiver.verified
    assert got["type"] == "ping" and got["data"]["endpoint"] == endpoint.pk
    part = admin_client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert part.lstrip().startswith('<section class="card" id="deliveries"')
    assert "<html" not in part and "hx-trigger" not in part  # answered: polling stops
    assert f'id="delivery-{ping.pk}"' in part
    assert "<code>200</code>" in part and "{&quot;ok&quot;: true}" in part
    assert "delivered" in part
    page = admin_client.get(url).content.decode()
    assert f'id="delivery-{ping.pk}"' in page and "<code>200</code>" in page


def test_resend_makes_a_new_delivery_of_the_same_event(
    admin_client: Client,
    endpoint: WebhookEndpoint,
    receiver,  # type: ignore[no-untyped-def]
):
    receiver.answers = [500]
    (first,) = events.emit(events.QUOTA_FULL, {"mailbox": {"id": 3}, "used_bytes": 10})
    delivery.deliver(first.pk)
    WebhookDelivery.objects.filter(pk=first.pk).update(status="failed")

    response = admin_client.post(reverse("staff:webhook_resend", args=[first.pk]))
    assert response.status_code == 302

    again = WebhookDelivery.objects.exclude(pk=first.pk).get()
    assert (again.event, again.event_id, again.payload) == (
        first.event,
        first.event_id,
        WebhookDelivery.objects.get(pk=first.pk).payload,
    )
    assert again.status == "pending" and again.attempts == 0
    assert WebhookDelivery.objects.get(pk=first.pk).status == "failed"  # history kept
    assert delivery.deliver(again.pk) == "delivered"
    assert [e["id"] for e in receiver.verified] == [str(first.event_id)] * 2  # 500, then 200
    entry = AuditEntry.objects.get(action="webhook.resend")
    assert entry.details == {"delivery": first.pk, "resent_as": again.pk}


def test_a_disabled_endpoint_gets_nothing_until_enabled(
    admin_client: Client, endpoint: WebhookEndpoint
):
    (waiting,) = events.emit(events.MAILBOX_CREATED, {"mailbox": {"id": 1}})
    admin_client.post(reverse("staff:webhook_active", args=[endpoint.pk]), {"active": "0"})
    endpoint.refresh_from_db()
    assert not endpoint.active
    assert WebhookDelivery.objects.get(pk=waiting.pk).status == "failed"

    response = admin_client.post(reverse("staff:webhook_test", args=[endpoint.pk]), follow=True)
    assert "The endpoint is disabled; enable it first." in response.content.decode()
    assert not WebhookDelivery.objects.filter(event="ping").exists()

    admin_client.post(reverse("staff:webhook_active", args=[endpoint.pk]), {"active": "1"})
    endpoint.refresh_from_db()
    assert endpoint.active
    actions = AuditEntry.objects.filter(action__startswith="webhook.").values_list("action")
    assert [a for (a,) in actions.order_by("pk")] == [
        "webhook.create",
        "webhook.disable",
        "webhook.enable",
    ]


def test_deleting_an_endpoint_keeps_its_audit_trail(admin_client: Client, endpoint):  # type: ignore[no-untyped-def]
    events.emit(events.MAILBOX_CREATED, {"mailbox": {"id": 1}})
    response = admin_client.post(reverse("staff:webhook_delete", args=[endpoint.pk]))
    assert response["Location"] == reverse("staff:webhook_list")
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()
    assert AuditEntry.objects.filter(action="webhook.delete", target_id=endpoint.pk).exists()


@pytest.mark.parametrize("role", [StaffRole.SUPPORT, StaffRole.AUDITOR])
def test_support_and_auditors_read_but_are_offered_no_buttons(client: Client, endpoint, role):  # type: ignore[no-untyped-def]
    events.emit(events.MAILBOX_CREATED, {"mailbox": {"id": 1}})
    client.force_login(User.objects.create_user("lea", is_staff=True, staff_role=role))
    listing = client.get(reverse("staff:webhook_list")).content.decode()
    assert endpoint.url in listing and "mailbox.created" in listing
    assert reverse("staff:webhook_create") not in listing
    detail = client.get(reverse("staff:webhook_detail", args=[endpoint.pk])).content.decode()
    assert "Resend" not in detail and "Send test event" not in detail
    assert endpoint.secret not in listing + detail


def test_the_page_is_in_the_navigation_and_in_german(admin_client: Client, endpoint):  # type: ignore[no-untyped-def]
    page = admin_client.get(reverse("staff:dashboard")).content.decode()
    assert f'href="{reverse("staff:webhook_list")}"' in page
    with translation.override("de"):
        assert str(audit_action("webhook.create")) == "Webhook-Endpunkt hinzugefügt"
    admin_client.post(reverse("set_language"), {"language": "de"})
    page = admin_client.get(reverse("staff:webhook_list")).content.decode()
    assert "Endpunkt hinzufügen" in page
