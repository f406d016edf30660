"""``manage.py mailbox_set``: change a mailbox's password, quota, plan, protocol or status."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction
from django.utils.translation import gettext as _

from mailboxes.cli import get_mailbox, get_plan, mailbox_summary, size
from mailboxes.models import Protocol
from mailboxes.passwords import generate_password
from mailboxes.services import (
    mailbox_change_plan,
    mailbox_reactivate,
    mailbox_set_password,
    mailbox_set_quota,
    mailbox_suspend,
)
from provider.cli import ServiceCommand, usage_error

CHANGES = (
    "password_stdin",
    "generate_password",
    "quota",
    "plan",
    "protocol",
    "suspend",
    "reactivate",
)


class Command(ServiceCommand):
    help = (
        "Change an existing mailbox. All changes are made together or, on any error, "
        "none (docs/cli.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("address", help=_("The mailbox, e.g. anna@example.com."))
        self.add_password_arguments(parser, generate_option=True)
        parser.add_argument(
            "--plan",
            metavar="NAME",
            help=_("Move to this plan; a quota above its largest is lowered to that."),
        )
        parser.add_argument(
            "--protocol",
            choices=Protocol.values,
            help=_("Switch to imap or pop3 (must be in the plan)."),
        )
        parser.add_argument(
            "--quota",
            type=size,
            metavar="SIZE",
            help=_("New quota such as 500M or 2G; checked against the (new) plan."),
        )
        status = parser.add_mutually_exclusive_group()
        status.add_argument(
            "--suspend",
            action="store_true",
            help=_("Refuse logins from now on; mail still arrives."),
        )
        status.add_argument("--reactivate", action="store_true", help=_("Allow logins again."))

    def handle(self, *args: Any, **options: Any) -> None:
        if not any(options[name] for name in CHANGES):
            raise usage_error(
                _(
                    "Nothing to change: give --password-stdin, --generate-password, --quota, "
                    "--plan, --protocol, --suspend or --reactivate."
                )
            )
        mailbox = get_mailbox(options["address"])
        # Read before the transaction, so no lock is held while someone types.
        password: str | None = None
        if options["password_stdin"]:
            password = self.read_password()
        elif options["generate_password"]:
            password = generate_password()
        # One transaction: on any error nothing has changed, so a script can simply retry.
        with transaction.atomic():
            if options["plan"] or options["protocol"]:
                plan = get_plan(options["plan"]) if options["plan"] else mailbox.plan
                self.call(
                    mailbox_change_plan, mailbox=mailbox, plan=plan, protocol=options["protocol"]
                )
            # After a plan change, so the quota is checked against the new plan.
            if options["quota"]:
                self.call(mailbox_set_quota, mailbox=mailbox, quota_bytes=options["quota"])
            if password is not None:
                self.call(mailbox_set_password, mailbox=mailbox, password=password)
            if options["suspend"]:
                self.call(mailbox_suspend, mailbox=mailbox)
            if options["reactivate"]:
                self.call(mailbox_reactivate, mailbox=mailbox)
        self.stdout.write(_("Changed mailbox %(summary)s.") % {"summary": mailbox_summary(mailbox)})
        if options["generate_password"]:
            self.stdout.write(_("Password (shown only now): %(password)s") % {"password": password})
