"""``manage.py domain_create``: add a customer's mail domain (Unicode or punycode)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from accounts.cli import get_customer
from mailboxes.cli import get_mail_server
from mailboxes.services import domain_create
from provider.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Create a mail domain for a customer; accepts IDN such as müller.de (docs/cli.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help=_("The domain, e.g. example.com or müller.de."))
        parser.add_argument(
            "--customer",
            required=True,
            metavar="ID_OR_EMAIL",
            help=_("The owner: a customer id, or the customer's contact email."),
        )
        parser.add_argument(
            "--server",
            metavar="NAME",
            help=_("Mail server to host it (default: the least used that accepts new mailboxes)."),
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        customer = get_customer(options["customer"])
        server = get_mail_server(options["server"]) if options["server"] else None
        domain = self.call(
            domain_create, customer=customer, name=options["name"], mail_server=server
        )
        self.emit(
            options,
            _(
                "Created domain %(ascii)s (%(unicode)s) for %(customer)s (id %(customer_id)d) "
                "on mail server %(server)s."
            )
            % {
                "ascii": domain.name,
                "unicode": domain.display_name,
                "customer": customer.name,
                "customer_id": customer.pk,
                "server": domain.mail_server.name,
            },
            {
                "id": domain.pk,
                "name": domain.name,
                "unicode_name": domain.display_name,
                "customer_id": customer.pk,
                "server": domain.mail_server.name,
            },
        )
