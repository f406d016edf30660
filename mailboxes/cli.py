"""Command-line lookups of plans, servers, domains and mailboxes, and how a mailbox is printed."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from .idn import domain_to_ascii
from .models import Domain, Mailbox, MailServer, Plan
from .sizes import parse_size


def size(text: str) -> int:
    """An argparse ``type`` for sizes, so a bad one is a usage error with our message."""
    try:
        return parse_size(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(" ".join(exc.messages)) from exc


def _names(queryset: Any) -> str:
    return ", ".join(queryset.values_list("name", flat=True)) or _("none yet")


def get_plan(name: str) -> Plan:
    plan = Plan.objects.filter(name=name).first()
    if plan is None:
        raise CommandError(
            _("There is no plan “%(name)s”. Plans: %(names)s.")
            % {"name": name, "names": _names(Plan.objects.order_by("name"))}
        )
    return plan


def get_mail_server(name: str) -> MailServer:
    server = MailServer.objects.filter(name=name).first()
    if server is None:
        raise CommandError(
            _("There is no mail server “%(name)s”. Servers: %(names)s.")
            % {"name": name, "names": _names(MailServer.objects.all())}
        )
    return server


def split_address(address: str) -> tuple[str, str]:
    """``(local part, domain)`` as typed, split at the last ``@``."""
    local_part, at, domain_name = address.strip().rpartition("@")
    if not at or not local_part or not domain_name:
        raise CommandError(
            _("“%(address)s” is not a mailbox address such as anna@example.com.")
            % {"address": address}
        )
    return local_part, domain_name


def _domain_to_ascii(name: str) -> str:
    try:
        return domain_to_ascii(name)
    except ValidationError as exc:
        raise CommandError("\n".join(exc.messages)) from exc


def get_domain(name: str) -> Domain:
    """A domain by its name as typed, Unicode or punycode."""
    domain = (
        Domain.objects.select_related("customer", "mail_server")
        .filter(name=_domain_to_ascii(name))
        .first()
    )
    if domain is None:
        raise CommandError(
            _("There is no domain “%(name)s”; create it first with domain_create.") % {"name": name}
        )
    return domain


def get_mailbox(address: str) -> Mailbox:
    local_part, domain_name = split_address(address)
    login = f"{local_part.lower()}@{_domain_to_ascii(domain_name)}"
    mailbox = (
        Mailbox.objects.select_related("domain__customer", "plan", "mail_server")
        .filter(address=login)
        .first()
    )
    if mailbox is None:
        raise CommandError(_("There is no mailbox %(address)s.") % {"address": address})
    return mailbox


def mailbox_data(mailbox: Mailbox) -> dict[str, Any]:
    return {
        "id": mailbox.pk,
        "address": mailbox.address,
        "display_address": mailbox.display_address,
        "customer_id": mailbox.domain.customer_id,
        "plan": mailbox.plan.name,
        "protocol": mailbox.protocol,
        "quota_bytes": mailbox.quota_bytes,
        "status": mailbox.status,
        "server": mailbox.mail_server.name,
    }


def mailbox_summary(mailbox: Mailbox) -> str:
    """``anna@müller.de (login anna@xn--mller-kva.de): IMAP, 1.0 GB, plan “Pro”, active``."""
    login = mailbox.address
    name = mailbox.display_address
    if name != login:
        name = _("%(name)s (login %(login)s)") % {"name": name, "login": login}
    return _("%(name)s: %(protocol)s, %(quota)s, plan “%(plan)s”, %(status)s") % {
        "name": name,
        "protocol": mailbox.get_protocol_display(),
        "quota": filesizeformat(mailbox.quota_bytes),
        "plan": mailbox.plan.name,
        "status": mailbox.get_status_display(),
    }
