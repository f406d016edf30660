"""Reads for the staff pages: one place for the joins and counts the templates need."""
from __future__ import annotations

from django.db.models import Count, QuerySet

from accounts.models import AuditEntry, Customer

from .models import Domain, Mailbox, MailServer


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.annotate(
        domain_count=Count("domains", distinct=True),
        mailbox_count=Count("domains__mailboxes", distinct=True),
    )


def server_list() -> QuerySet[MailServer]:
    return MailServer.objects.annotate(
        domain_count=Count("domains", distinct=True),
        mailbox_count=Count("mailboxes", distinct=True),
    )


def customer_domains(customer: Customer) -> QuerySet[Domain]:
    return customer.domains.select_related("mail_server").annotate(
        mailbox_count=Count("mailboxes")
    )


def customer_mailboxes(customer: Customer) -> QuerySet[Mailbox]:
    return Mailbox.objects.filter(domain__customer=customer).select_related("domain", "plan")


def mailbox_queryset() -> QuerySet[Mailbox]:
    """Mailboxes with what their detail page shows, for ``get_object_or_404``."""
    return Mailbox.objects.select_related("domain__customer", "plan", "mail_server")


def mailbox_audit_trail(mailbox: Mailbox) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(target_type="mailbox", target_id=mailbox.pk)


def audit_log() -> QuerySet[AuditEntry]:
    return AuditEntry.objects.select_related("customer")
