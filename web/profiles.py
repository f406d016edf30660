"""An Apple configuration profile as a download: the portal's button and the QR code's link."""

from __future__ import annotations

from django.http import HttpResponse

from mailboxes import profiles
from mailboxes.models import Mailbox


def profile_response(mailbox: Mailbox) -> HttpResponse:
    response = HttpResponse(profiles.mobileconfig(mailbox), content_type=profiles.MEDIA_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{profiles.filename(mailbox)}"'
    return response
