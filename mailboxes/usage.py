"""Measured usage: asked of the mail server, never guessed."""
from __future__ import annotations

from django.utils import timezone

from .mailserver import read_usage
from .models import Mailbox


def refresh_mailbox_usage(mailbox_id: int) -> Mailbox | None:
    """Ask the mailbox's server for its usage and store it; None if the mailbox is gone."""
    mailbox = Mailbox.objects.select_related("mail_server").filter(pk=mailbox_id).first()
    if mailbox is None:
        return None
    measured = read_usage(mailbox.mail_server, mailbox.address)
    mailbox.used_bytes = measured.used_bytes
    mailbox.message_count = measured.message_count
    mailbox.usage_checked_at = timezone.now()
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=mailbox.used_bytes,
        message_count=mailbox.message_count,
        usage_checked_at=mailbox.usage_checked_at,
    )
    return mailbox
