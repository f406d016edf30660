"""The DNS records page of a domain, for staff and for its customer alike."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from mailboxes import dns_records
from mailboxes.models import Domain


def dns_context(request: HttpRequest, domain: Domain) -> dict[str, Any]:
    """The records; asking DNS only with ``?check=1`` (lookups take a moment, and the page is
    also where the records are copied from)."""
    checked = request.GET.get("check") == "1"
    results = (
        dns_records.check(domain)
        if checked
        else [dns_records.Checked(record, "") for record in dns_records.expected_records(domain)]
    )
    return {
        "domain": domain,
        "checked": checked,
        "results": results,
        "zone": "\n".join(result.record.zone_line for result in results),
        "all_ok": checked and all(r.status == dns_records.OK for r in results),
    }
