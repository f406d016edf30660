"""``manage.py mailserver_save``: register a Dovecot server, or change how it is reached."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from mailboxes.cli import size
from mailboxes.services import mail_server_save
from provider.cli import ServiceCommand


def capacity(text: str) -> int:
    """A size, or 0 to remove the capacity."""
    return 0 if text.strip() == "0" else size(text)


class Command(ServiceCommand):
    help = (
        "Create a mail server, or update the options given for an existing one; "
        "running it again with the same options changes nothing (docs/cli.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "name", help=_("The server's name, which its Dovecot configuration filters on.")
        )
        parser.add_argument("--host", help=_("Host name or IP address (new: 127.0.0.1)."))
        parser.add_argument("--imap-port", type=int, help=_("IMAP port (new: 143)."))
        parser.add_argument("--pop3-port", type=int, help=_("POP3 port (new: 110)."))
        parser.add_argument(
            "--imaps-port", type=int, help=_("IMAPS port, the workers' (new: 993).")
        )
        parser.add_argument("--pop3s-port", type=int, help=_("POP3S port (new: 995)."))
        parser.add_argument("--lmtp-port", type=int, help=_("LMTP port (new: 24)."))
        parser.add_argument(
            "--master-user", help=_("Dovecot master user the workers log in as (new: postamt).")
        )
        parser.add_argument(
            "--master-password-env",
            metavar="VARIABLE",
            help=_(
                "Name of the environment variable that holds the master password (new: "
                "POSTAMT_MASTER_PASSWORD). The password itself is never stored."
            ),
        )
        parser.add_argument(
            "--active",
            action=argparse.BooleanOptionalAction,
            help=_(
                "Whether new mailboxes and domains may be placed on it, by staff or by least "
                "use (new: yes)."
            ),
        )
        parser.add_argument(
            "--capacity",
            type=capacity,
            metavar="SIZE",
            help=_(
                "How much mail its storage may hold, e.g. 2T; the overview forecasts when it "
                "is full. 0 removes it."
            ),
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        server = self.call(
            mail_server_save,
            name=options["name"],
            hostname=options["host"],
            imap_port=options["imap_port"],
            pop3_port=options["pop3_port"],
            imaps_port=options["imaps_port"],
            pop3s_port=options["pop3s_port"],
            lmtp_port=options["lmtp_port"],
            master_user=options["master_user"],
            master_password_env=options["master_password_env"],
            active=options["active"],
            capacity_bytes=options["capacity"],
        )
        if not server.master_password():
            self.stderr.write(
                _(
                    "Warning: %(variable)s is not set here; the workers need it (or "
                    "%(variable)s_FILE) to log in to %(name)s."
                )
                % {"variable": server.master_password_env, "name": server.name}
            )
        self.emit(
            options,
            _(
                "Mail server %(name)s: %(host)s, IMAP %(imap)d, POP3 %(pop3)d, LMTP %(lmtp)d, "
                "master user %(user)s with the password in $%(variable)s, %(active)s."
            )
            % {
                "name": server.name,
                "host": server.hostname,
                "imap": server.imap_port,
                "pop3": server.pop3_port,
                "lmtp": server.lmtp_port,
                "user": server.master_user,
                "variable": server.master_password_env,
                "active": _("accepts new mailboxes")
                if server.active
                else _("accepts no new mailboxes"),
            },
            {
                "id": server.pk,
                "name": server.name,
                "hostname": server.hostname,
                "imap_port": server.imap_port,
                "pop3_port": server.pop3_port,
                "imaps_port": server.imaps_port,
                "pop3s_port": server.pop3s_port,
                "lmtp_port": server.lmtp_port,
                "master_user": server.master_user,
                "master_password_env": server.master_password_env,
                "active": server.active,
                "capacity_bytes": server.capacity_bytes,
            },
        )
