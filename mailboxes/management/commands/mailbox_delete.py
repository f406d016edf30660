"""``manage.py mailbox_delete``: remove a mailbox and, soon after, its mail."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from mailboxes.cli import get_mailbox
from mailboxes.services import mailbox_delete
from provider.cli import ServiceCommand, usage_error


class Command(ServiceCommand):
    help = (
        "Delete a mailbox: logins and delivery stop at once and a worker removes its mail. "
        "Needs --yes (docs/cli.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("address", help=_("The mailbox, e.g. anna@example.com."))
        parser.add_argument(
            "--yes",
            action="store_true",
            help=_("Confirm: the mailbox's mail is deleted for good."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["yes"]:
            raise usage_error(
                _("Deleting %(address)s removes its mail for good; add --yes to confirm.")
                % {"address": options["address"]}
            )
        mailbox = get_mailbox(options["address"])
        address = mailbox.display_address
        self.call(mailbox_delete, mailbox=mailbox)
        self.stdout.write(_("Deleted mailbox %(address)s.") % {"address": address})
