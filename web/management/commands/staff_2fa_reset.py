"""``manage.py staff_2fa_reset USERNAME``: the way back in for a staff user who lost every
second factor and recovery code. It removes them all (audited); the next login with the
password then sets up a new one."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _

from accounts.models import User
from provider.cli import ServiceCommand
from web.twofactor.services import reset


class Command(ServiceCommand):
    help = (
        "Remove every second factor and recovery code of a staff user, who then sets up a "
        "new one at the next login (docs/cli.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help=_("The staff user's login name."))
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"], is_staff=True).first()
        if user is None:
            raise CommandError(
                _("There is no staff user %(name)s.") % {"name": options["username"]}
            )
        removed = self.call(reset, user=user)
        self.emit(
            options,
            _(
                "%(count)d second factors of %(name)s removed; the next login with the "
                "password sets up a new one."
            )
            % {"count": removed, "name": user.get_username()},
            {"id": user.pk, "username": user.get_username(), "removed": removed},
        )
