"""``manage.py customer_create``: add a customer; prints its id for the next commands."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from accounts.services import customer_create
from provider.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Create a customer and print its id (docs/cli.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help=_("The customer's name."))
        parser.add_argument(
            "--email",
            required=True,
            help=_("Contact address for notices; not one of the customer's own mailboxes."),
        )
        parser.add_argument(
            "--language",
            choices=[code for code, _name in settings.LANGUAGES],
            default="en",
            help=_("Language of the notices the customer gets (default: en)."),
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        customer = self.call(
            customer_create,
            name=options["name"],
            contact_email=options["email"],
            language=options["language"],
        )
        self.emit(
            options,
            str(customer.pk),
            {
                "id": customer.pk,
                "name": customer.name,
                "contact_email": customer.contact_email,
                "language": customer.language,
            },
        )
