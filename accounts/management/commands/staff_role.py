"""``manage.py staff_role``: what a staff user may do (support, admin, auditor)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _

from accounts.models import StaffRole, User
from accounts.services import staff_set_role
from provider.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Show or set a staff user's role: support, admin or auditor (docs/cli.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help=_("The staff user's login name."))
        parser.add_argument(
            "role", nargs="?", choices=StaffRole.values, help=_("Leave out to show the role.")
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"], is_staff=True).first()
        if user is None:
            raise CommandError(
                _("There is no staff user %(name)s.") % {"name": options["username"]}
            )
        if options["role"]:
            user = self.call(staff_set_role, user=user, role=options["role"])
        self.emit(
            options,
            _("%(name)s: %(role)s")
            % {"name": user.username, "role": user.get_staff_role_display()},
            {"username": user.username, "role": user.staff_role},
        )
