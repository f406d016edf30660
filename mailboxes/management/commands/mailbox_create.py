"""``manage.py mailbox_create``: add a mailbox; generates and prints a password unless given one."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from mailboxes.cli import (
    get_domain,
    get_mail_server,
    get_plan,
    mailbox_data,
    mailbox_summary,
    size,
    split_address,
)
from mailboxes.models import Protocol
from mailboxes.passwords import generate_password
from mailboxes.services import mailbox_create
from provider.cli import ServiceCommand


class Command(ServiceCommand):
    help = (
        "Create a mailbox such as anna@example.com. Without --password-stdin a password is "
        "generated and printed once (docs/cli.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("address", help=_("The new address; its domain must exist."))
        parser.add_argument("--plan", required=True, metavar="NAME", help=_("The plan's name."))
        parser.add_argument(
            "--protocol",
            choices=Protocol.values,
            help=_("imap or pop3 (default: the plan's first, IMAP if it has both)."),
        )
        parser.add_argument(
            "--quota",
            type=size,
            metavar="SIZE",
            help=_("Quota such as 500M or 2G (default: the plan's)."),
        )
        parser.add_argument(
            "--server",
            metavar="NAME",
            help=_("Mail server to hold it (default: the least used that accepts new mailboxes)."),
        )
        self.add_password_arguments(parser, generate_option=False)
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        local_part, domain_name = split_address(options["address"])
        domain = get_domain(domain_name)
        plan = get_plan(options["plan"])
        generated = not options["password_stdin"]
        password = generate_password() if generated else self.read_password()
        mailbox = self.call(
            mailbox_create,
            domain=domain,
            local_part=local_part,
            password=password,
            plan=plan,
            protocol=options["protocol"],
            quota_bytes=options["quota"],
            mail_server=get_mail_server(options["server"]) if options["server"] else None,
        )
        lines = [_("Created mailbox %(summary)s.") % {"summary": mailbox_summary(mailbox)}]
        data = mailbox_data(mailbox)
        if generated:
            lines.append(_("Password (shown only now): %(password)s") % {"password": password})
            data["password"] = password
        self.emit(options, "\n".join(lines), data)
