"""``manage.py api_key_revoke``: stop a REST API key at once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _

from accounts.api_keys import api_key_revoke
from accounts.models import ApiKey
from provider.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Revoke a REST API key by its key id (the part after postamt_)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", help=_("The key id, as listed and in the token."))
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        key = ApiKey.objects.select_related("user").filter(prefix=options["prefix"]).first()
        if key is None:
            raise CommandError(_("There is no API key %(prefix)s.") % {"prefix": options["prefix"]})
        revoked = self.call(api_key_revoke, key=key)
        self.emit(
            options,
            _("API key %(prefix)s revoked.") % {"prefix": key.prefix}
            if revoked
            else _("API key %(prefix)s was revoked already.") % {"prefix": key.prefix},
            {"prefix": key.prefix, "revoked": True},
        )
