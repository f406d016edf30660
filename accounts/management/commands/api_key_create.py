"""``manage.py api_key_create``: a REST API key, its token printed once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.api_keys import api_key_create
from accounts.models import Customer, StaffRole
from provider.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Create a REST API key for the whole hoster (with a role) or one customer (docs/api.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help=_("What uses the key, e.g. Billing."))
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--role", choices=StaffRole.values, help=_("A key for the hoster."))
        scope.add_argument("--customer", type=int, help=_("A key for this customer (its id)."))
        parser.add_argument(
            "--read-write", action="store_true", help=_("Allow changes (default: read only).")
        )
        parser.add_argument(
            "--allow",
            action="append",
            default=[],
            metavar="NETWORK",
            help=_("Only from this address or network (CIDR); repeat for more."),
        )
        parser.add_argument(
            "--expires", help=_("When the key stops working (ISO 8601, e.g. 2027-06-30).")
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        customer = None
        if options["customer"] is not None:
            customer = Customer.objects.filter(pk=options["customer"]).first()
            if customer is None:
                raise CommandError(_("There is no customer %(id)s.") % {"id": options["customer"]})
        expires = None
        if options["expires"]:
            try:
                expires = datetime.fromisoformat(options["expires"])
            except ValueError as exc:
                raise CommandError(_("--expires: give a date such as 2027-06-30.")) from exc
            if timezone.is_naive(expires):
                expires = timezone.make_aware(expires)
        new = self.call(
            api_key_create,
            name=options["name"],
            customer=customer,
            role=options["role"],
            read_only=not options["read_write"],
            allowed_networks=options["allow"],
            expires_at=expires,
        )
        self.emit(
            options,
            _("API key %(prefix)s created. Its token, shown only this once:\n%(token)s")
            % {"prefix": new.key.prefix, "token": new.token},
            {"id": new.key.pk, "prefix": new.key.prefix, "token": new.token},
        )
