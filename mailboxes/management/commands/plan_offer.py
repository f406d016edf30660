"""``manage.py plan_offer NAME [--withdraw]``: offer a plan in the customer portal, or stop."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from mailboxes.cli import get_plan
from mailboxes.services import plan_set_self_service
from provider.cli import ServiceCommand


class Command(ServiceCommand):
    help = "Offer a plan to customers in the portal, or withdraw it (docs/cli.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help=_("The plan's name."))
        parser.add_argument(
            "--withdraw",
            action="store_true",
            help=_("Stop offering it; mailboxes already on it keep it."),
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        plan = self.call(
            plan_set_self_service, plan=get_plan(options["name"]), offered=not options["withdraw"]
        )
        text = (
            _("Plan “%(name)s” is offered in the portal.")
            if plan.self_service
            else _("Plan “%(name)s” is no longer offered in the portal.")
        )
        self.emit(
            options,
            text % {"name": plan.name},
            {"id": plan.pk, "name": plan.name, "self_service": plan.self_service},
        )
