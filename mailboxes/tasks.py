"""Celery entry points: thin, ids only; the work lives in services and the adapter."""
from __future__ import annotations

from celery import shared_task

from . import usage
from .mailserver import MailServerUnavailable, purge_storage
from .models import MailServer


@shared_task(
    name="mailboxes.refresh_usage",
    autoretry_for=(MailServerUnavailable,),
    retry_backoff=5,
    retry_backoff_max=300,
    max_retries=5,
    acks_late=True,
)
def refresh_usage(mailbox_id: int) -> int | None:
    """Measure one mailbox now; idempotent, so a redelivery only measures again."""
    mailbox = usage.refresh_mailbox_usage(mailbox_id)
    return mailbox.used_bytes if mailbox else None


@shared_task(name="mailboxes.purge_storage", acks_late=True)
def purge_mailbox_storage(server_id: int, storage_path: str) -> bool:
    server = MailServer.objects.filter(pk=server_id).first()
    return bool(server and purge_storage(server, storage_path))
