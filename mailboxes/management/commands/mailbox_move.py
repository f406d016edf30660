"""``manage.py mailbox_move``: move a mailbox to another mail server (docs/operations.md)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from mailboxes import moves
from mailboxes.cli import get_mail_server, get_mailbox
from mailboxes.models import MailboxMove
from provider.cli import ServiceCommand


class Command(ServiceCommand):
    help = (
        "Move a mailbox to another mail server: a worker copies, verifies, switches and removes "
        "the old copy. --now does it in this process instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("address", help=_("The mailbox, e.g. anna@example.com."))
        parser.add_argument("server", help=_("The name of the mail server to move it to."))
        parser.add_argument(
            "--now",
            action="store_true",
            help=_("Move it in this process and wait until it is done, instead of a worker."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        mailbox = get_mailbox(options["address"])
        target = get_mail_server(options["server"])
        move = self.call(
            moves.mailbox_move_start,
            mailbox=mailbox,
            target=target,
            on_worker=not options["now"],
        )
        if not options["now"]:
            self.stdout.write(
                _("Moving %(address)s to %(server)s; a worker does it (move %(id)d).")
                % {"address": mailbox.display_address, "server": target.name, "id": move.pk}
            )
            return
        while (wait := moves.run_move(move.pk)) is not None:
            time.sleep(wait)
        move.refresh_from_db()
        if move.state != MailboxMove.State.DONE:
            raise CommandError(
                _("The move of %(address)s did not finish: %(error)s")
                % {"address": mailbox.display_address, "error": move.error or move.state}
            )
        count = move.messages_total + move.caught_up
        self.stdout.write(
            ngettext(
                "Moved %(address)s to %(server)s: %(count)d message.",
                "Moved %(address)s to %(server)s: %(count)d messages.",
                count,
            )
            % {
                "address": mailbox.display_address,
                "server": target.name,
                "count": count,
            }
        )
