"""``manage.py customer_user_create``: give a customer a portal login; the person gets an
email with a link to choose the password (nobody else ever knows it)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from accounts.cli import get_customer
from accounts.services import customer_user_create
from provider.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Create a customer's portal login and email it a set-password link (docs/cli.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email", help=_("The address the person logs in with."))
        parser.add_argument(
            "--customer", required=True, help=_("Customer id, or its contact email.")
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        customer = get_customer(options["customer"])
        user = self.call(customer_user_create, customer=customer, email=options["email"])
        self.emit(
            options,
            _("Login %(email)s created for %(customer)s; the set-password link is being sent.")
            % {"email": user.email, "customer": customer.name},
            {"id": user.pk, "email": user.email, "customer_id": customer.pk},
        )
