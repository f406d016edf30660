"""What webhook events say about a mailbox (``webhooks.events``): the fields and names of the
REST API's mailbox, plus its customer; sizes in bytes."""

from __future__ import annotations

from typing import Any

from .models import Mailbox


def mailbox_data(mailbox: Mailbox) -> dict[str, Any]:
    return {
        "id": mailbox.pk,
        "address": mailbox.display_address,
        "address_ascii": mailbox.address,
        "domain": mailbox.domain_id,
        "customer": mailbox.domain.customer_id,
        "plan": mailbox.plan_id,
        "protocol": mailbox.protocol,
        "status": mailbox.status,
        "quota_bytes": mailbox.quota_bytes,
    }
