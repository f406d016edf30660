"""Telling the customer's contact address that a mailbox password was changed.

A changed password is how a stolen portal login would take a mailbox over, so the contact
address (ideally at another provider) hears of every change, whoever made it, with when and
by whom. ``Mailbox.password_notice_due`` is the job: set with the new password in one
transaction, claimed here by a conditional UPDATE, given back if SMTP fails; a sweeper sends
what a broker outage kept from being queued.
"""

from __future__ import annotations

import smtplib
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from accounts.models import AuditEntry
from provider.emails import render_email

from .models import Mailbox


def build_email(mailbox: Mailbox) -> EmailMultiAlternatives:
    customer = mailbox.domain.customer
    change = (
        AuditEntry.objects.filter(
            action="mailbox.password", target_type="mailbox", target_id=mailbox.pk
        )
        .select_related("actor")
        .order_by("-created_at")
        .first()
    )
    context = {
        "mailbox": mailbox,
        "customer": customer,
        "changed_at": mailbox.password_changed_at,
        "by": roles.public_name(change.actor, change.actor_name) if change else "",
        "portal_url": settings.SITE_URL.rstrip("/") + reverse("home"),
    }
    return render_email(
        "password_changed", context, to=[customer.contact_email], language=customer.language
    )


def send(mailbox_id: int) -> bool:
    """Send the notice once per change; SMTP errors give the claim back and propagate."""
    if not Mailbox.objects.filter(pk=mailbox_id, password_notice_due=True).update(
        password_notice_due=False
    ):
        return False  # sent already, or the mailbox is gone
    mailbox = Mailbox.objects.select_related("domain__customer").get(pk=mailbox_id)
    if not mailbox.domain.customer.contact_email:
        return False
    try:
        build_email(mailbox).send()
    except (smtplib.SMTPException, OSError):
        Mailbox.objects.filter(pk=mailbox_id).update(password_notice_due=True)
        raise
    return True


def pending(older_than: timedelta = timedelta(minutes=2)) -> list[int]:
    """Notices still due a while after the change: their task was never queued."""
    cutoff = timezone.now() - older_than
    return list(
        Mailbox.objects.filter(password_notice_due=True, password_changed_at__lt=cutoff)
        .order_by("password_changed_at")
        .values_list("pk", flat=True)[:500]
    )
