"""Test data made through the real services, as a hoster would make it."""

from __future__ import annotations

import itertools

from accounts.models import Customer
from accounts.services import customer_create
from mailboxes.models import GIB, MIB, Domain, Mailbox, MailServer, Plan
from mailboxes.services import domain_create, mailbox_create

PASSWORD = "Brave-Otter-2041"
_seq = itertools.count(1)


def make_plan(*, protocol: str = "imap", **overrides: object) -> Plan:
    values: dict[str, object] = {
        "name": f"{protocol.upper()} plan {next(_seq)}",
        "allows_imap": protocol == "imap",
        "allows_pop3": protocol == "pop3",
        "default_quota_bytes": 100 * MIB if protocol == "imap" else 10 * MIB,
        "max_quota_bytes": 10 * GIB if protocol == "imap" else 100 * MIB,
        "backup_enabled": protocol == "imap",
        # Most tests are about something else than which plans the portal offers.
        "self_service": True,
    }
    values.update(overrides)
    return Plan.objects.create(**values)


def make_server(name: str = "test", **overrides: object) -> MailServer:
    server, _ = MailServer.objects.update_or_create(name=name, defaults=overrides)
    return server


def make_customer(name: str = "Acme GmbH", language: str = "en") -> Customer:
    return customer_create(
        name=name, contact_email=f"owner{next(_seq)}@example.org", language=language, actor="test"
    )


def make_domain(customer: Customer | None = None, name: str | None = None) -> Domain:
    server = MailServer.objects.order_by("pk").first() or make_server()
    return domain_create(
        customer=customer or make_customer(),
        name=name or f"example{next(_seq)}.test",
        mail_server=server,
        actor="test",
    )


def make_mailbox(
    local_part: str = "anna",
    *,
    domain: Domain | None = None,
    plan: Plan | None = None,
    protocol: str = "imap",
    password: str = PASSWORD,
    **kwargs: object,
) -> Mailbox:
    return mailbox_create(
        domain=domain or make_domain(),
        local_part=local_part,
        password=password,
        plan=plan or make_plan(protocol=protocol),
        protocol=protocol,
        actor="test",
        **kwargs,  # type: ignore[arg-type]
    )
