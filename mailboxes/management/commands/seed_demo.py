"""Seed a demo for ``make run``: plans, a staff login, a customer with an IMAP and a POP3 box.

Safe to run again: existing objects are kept and their passwords reset, so the credentials
printed are always the ones that work.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Customer, User
from accounts.services import customer_create
from mailboxes.idn import domain_to_ascii
from mailboxes.models import GIB, MIB, Domain, Mailbox, Plan
from mailboxes.passwords import generate_password
from mailboxes.services import (
    domain_create,
    mail_server_register_local,
    mailbox_create,
    mailbox_set_password,
)
from mailserver.dovecot import DovecotInstance

ACTOR = "seed_demo"
PLANS = [
    # The seed's tiers: POP3 is the cheap one that needs little storage; IMAP is paid and backed up.
    # Each allows the protocol its name says, and only that one.
    dict(
        name="POP3 Basic",
        allows_imap=False,
        allows_pop3=True,
        default_quota_bytes=500 * MIB,
        max_quota_bytes=2 * GIB,
        backup_enabled=False,
        monthly_price=Decimal("0.00"),
        self_service=True,
    ),
    dict(
        name="IMAP Standard",
        allows_imap=True,
        allows_pop3=False,
        default_quota_bytes=5 * GIB,
        max_quota_bytes=20 * GIB,
        backup_enabled=True,
        monthly_price=Decimal("3.90"),
        self_service=True,
    ),
    dict(
        name="IMAP Business",
        allows_imap=True,
        allows_pop3=False,
        default_quota_bytes=25 * GIB,
        max_quota_bytes=100 * GIB,
        backup_enabled=True,
        monthly_price=Decimal("8.90"),
        self_service=True,
    ),
]


class Command(BaseCommand):
    help = "Create demo data for a local run and print its logins."

    def handle(self, *args: Any, **options: Any) -> None:
        server = mail_server_register_local(DovecotInstance.from_settings())
        plans = {}
        for spec in PLANS:
            plans[spec["name"]], _ = Plan.objects.get_or_create(name=spec["name"], defaults=spec)

        staff_password = generate_password(16)
        with transaction.atomic():
            staff, _ = User.objects.get_or_create(
                username="admin", defaults={"is_staff": True, "is_superuser": True}
            )
            staff.set_password(staff_password)
            staff.save()

        customer = Customer.objects.filter(name="Demo Bäckerei Müller").first() or customer_create(
            name="Demo Bäckerei Müller",
            contact_email="inhaber@example.org",
            language="de",
            actor=ACTOR,
        )
        domain_name = "bäckerei-müller-demo.example"
        domain = Domain.objects.filter(name=domain_to_ascii(domain_name)).first()
        if domain is None:
            domain = domain_create(
                customer=customer, name=domain_name, mail_server=server, actor=ACTOR
            )
        lines = []
        for local_part, plan_name, protocol in (
            ("anna", "IMAP Standard", "imap"),
            ("laden", "POP3 Basic", "pop3"),
        ):
            password = generate_password(16)
            mailbox = Mailbox.objects.filter(domain=domain, local_part=local_part).first()
            if mailbox is None:
                mailbox = mailbox_create(
                    domain=domain,
                    local_part=local_part,
                    password=password,
                    plan=plans[plan_name],
                    protocol=protocol,
                    actor=ACTOR,
                )
            else:
                mailbox_set_password(mailbox=mailbox, password=password, actor=ACTOR)
            port = server.imaps_port if protocol == "imap" else server.pop3s_port
            lines.append(
                f"  {protocol.upper():4}  login {mailbox.address}  password {password}  "
                f"({server.hostname}:{port}, TLS) = {mailbox.display_address}"
            )

        self.stdout.write("Demo data ready.")
        self.stdout.write(f"  Staff login: admin / {staff_password}")
        self.stdout.write("  Mailboxes:")
        for line in lines:
            self.stdout.write(line)
