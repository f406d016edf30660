"""``manage.py plan_create``: add a plan that mailboxes can be put on."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import CommandParser
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from mailboxes.cli import size
from mailboxes.models import Protocol
from mailboxes.services import plan_create
from provider.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Create a plan: protocols, default and largest quota, price, backups (docs/cli.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help=_("The plan's name, unique, e.g. “IMAP 10G”."))
        parser.add_argument(
            "--imap", action="store_true", help=_("Allow IMAP mailboxes on this plan.")
        )
        parser.add_argument(
            "--pop3", action="store_true", help=_("Allow POP3 mailboxes on this plan.")
        )
        parser.add_argument(
            "--quota",
            type=size,
            required=True,
            metavar="SIZE",
            help=_("Quota of a new mailbox: bytes, or 500M, 2G, 1.5GiB (units are binary)."),
        )
        parser.add_argument(
            "--max-quota",
            type=size,
            metavar="SIZE",
            help=_("Largest quota a mailbox may be given (default: the --quota)."),
        )
        parser.add_argument(
            "--price",
            type=Decimal,
            default=Decimal("0.00"),
            help=_("Monthly price, e.g. 4.90 (default: 0)."),
        )
        parser.add_argument(
            "--currency", default="EUR", help=_("Three-letter currency code (default: EUR).")
        )
        parser.add_argument(
            "--no-backup",
            dest="backup",
            action="store_false",
            help=_("Do not back up this plan's IMAP mailboxes."),
        )
        parser.add_argument(
            "--self-service",
            action="store_true",
            help=_("Offer this plan to customers in the portal (plan_offer changes it later)."),
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        # Neither flag: both protocols, as the model's defaults have it.
        both = not (options["imap"] or options["pop3"])
        plan = self.call(
            plan_create,
            name=options["name"],
            allows_imap=options["imap"] or both,
            allows_pop3=options["pop3"] or both,
            default_quota_bytes=options["quota"],
            max_quota_bytes=options["max_quota"] or options["quota"],
            monthly_price=options["price"],
            currency=options["currency"],
            backup_enabled=options["backup"],
            self_service=options["self_service"],
        )
        self.emit(
            options,
            _(
                "Created plan “%(name)s”: %(protocols)s, quota %(quota)s (at most %(max)s), "
                "%(price)s %(currency)s a month, %(backup)s."
            )
            % {
                "name": plan.name,
                "protocols": " + ".join(Protocol(p).label for p in plan.protocols),
                "quota": filesizeformat(plan.default_quota_bytes),
                "max": filesizeformat(plan.max_quota_bytes),
                "price": plan.monthly_price,
                "currency": plan.currency,
                "backup": _("backed up") if plan.backup_enabled else _("no backups"),
            },
            {
                "id": plan.pk,
                "name": plan.name,
                "protocols": plan.protocols,
                "default_quota_bytes": plan.default_quota_bytes,
                "max_quota_bytes": plan.max_quota_bytes,
                "monthly_price": str(plan.monthly_price),
                "currency": plan.currency,
                "backup_enabled": plan.backup_enabled,
                "self_service": plan.self_service,
            },
        )
