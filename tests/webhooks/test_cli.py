"""``manage.py webhook_create``: the same service as the page, the secret printed once."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEntry
from webhooks.events import EVENTS
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_a_script_registers_an_endpoint_and_gets_its_secret_once():
    out = StringIO()
    call_command(
        "webhook_create",
        "https://billing.example/hook",
        "--event",
        "mailbox.created",
        "--event",
        "quota.full",
        "--json",
        stdout=out,
    )
    printed = json.loads(out.getvalue())
    endpoint = WebhookEndpoint.objects.get()
    assert printed == {
        "id": endpoint.pk,
        "url": "https://billing.example/hook",
        "events": ["mailbox.created", "quota.full"],
        "secret": endpoint.secret,
    }
    assert AuditEntry.objects.get(action="webhook.create").actor_name.startswith("cli:")


def test_all_events_and_the_text_output():
    out = StringIO()
    call_command("webhook_create", "https://billing.example/hook", "--all-events", stdout=out)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == list(EVENTS)
    assert endpoint.secret in out.getvalue() and "shown only this once" in out.getvalue()


def test_a_bad_url_is_refused_and_nothing_is_made():
    with pytest.raises(CommandError, match="Enter an http:// or https:// URL."):
        call_command("webhook_create", "ftp://billing.example", "--all-events")
    assert not WebhookEndpoint.objects.exists()
