"""The usage block that the staff and the portal mailbox pages share."""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _

from mailboxes import selectors
from mailboxes.charts import clean_days
from mailboxes.models import Mailbox


def usage_context(
    request: HttpRequest, mailbox: Mailbox, audience: Literal["staff", "portal"]
) -> dict[str, Any]:
    """What ``_usage.html`` needs; its links stay within the audience's own pages."""
    days = clean_days(request.POST.get("days") or request.GET.get("days"))
    return {
        **selectors.mailbox_usage_details(mailbox, days=days),
        "mailbox": mailbox,
        "page_url": reverse(f"{audience}:mailbox_detail", args=[mailbox.pk]),
        "refresh_url": reverse(f"{audience}:mailbox_refresh", args=[mailbox.pk]),
        "for_staff": audience == "staff",
    }


def refresh_message(claimed: bool) -> tuple[str, str]:
    """The words for a refresh request."""
    if claimed:
        return "success", _("Refresh requested: the figures update in a few seconds.")
    return "warning", _("A refresh was already requested; try again in a minute.")
