"""Celery entry points for accounts: ids only, the work lives in ``emails.py``."""

from __future__ import annotations

import smtplib

from celery import shared_task

from . import emails


@shared_task(
    name="accounts.send_user_invite",
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=30,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=8,
)
def send_user_invite(user_id: int) -> bool:
    """Not ``acks_late``: a second invitation after a redelivery would only confuse people,
    and a lost one is easily replaced ("Forgot your password?" sends the same link)."""
    return emails.send_invite(user_id)


@shared_task(name="accounts.send_pending_invites")
def send_pending_invites() -> int:
    """The backstop of invitations that could not be queued when the login was made."""
    ids = emails.pending_invites()
    for user_id in ids:
        send_user_invite.delay(user_id)
    return len(ids)
