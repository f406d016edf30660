"""``manage.py storage_allowance``: what a customer's or a domain's mailboxes may add up to."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandParser
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from accounts.cli import get_customer
from mailboxes.cli import get_domain, size
from mailboxes.services import allocation, storage_allowance_set
from provider.cli import ServiceCommand, usage_error


class Command(ServiceCommand):
    help = "Set or show the storage allowance of a customer or a domain (docs/cli.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--customer", metavar="ID_OR_EMAIL", help=_("The customer."))
        owner.add_argument("--domain", metavar="NAME", help=_("The domain (Unicode or punycode)."))
        parser.add_argument(
            "allowance",
            nargs="?",
            help=_("A size such as 50G, or 'none' for no limit; leave out to show it."),
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        owner = (
            get_customer(options["customer"])
            if options["customer"]
            else get_domain(options["domain"])
        )
        wanted = options["allowance"]
        if wanted is not None:
            if wanted.lower() == "none":
                allowance = None
            else:
                try:
                    allowance = size(wanted)
                except argparse.ArgumentTypeError as exc:
                    raise usage_error(str(exc)) from exc
            owner = self.call(storage_allowance_set, owner=owner, allowance_bytes=allowance)
        shown = allocation(owner)
        name = getattr(owner, "display_name", None) or str(owner)
        if shown.allowance_bytes is None:
            text = _("%(name)s: %(allocated)s given to mailboxes, no allowance.")
        else:
            text = _("%(name)s: %(allocated)s of %(allowance)s given to mailboxes.")
        self.emit(
            options,
            text
            % {
                "name": name,
                "allocated": filesizeformat(shown.allocated_bytes),
                "allowance": filesizeformat(shown.allowance_bytes or 0),
            },
            {
                "name": name,
                "allocated_bytes": shown.allocated_bytes,
                "allowance_bytes": shown.allowance_bytes,
            },
        )
