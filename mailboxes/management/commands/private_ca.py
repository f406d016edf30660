"""``manage.py private_ca DIRECTORY``: a private CA and a certificate for a local Dovecot.

For ``make run`` (scripts/setup.sh): production serves a public certificate (Let's Encrypt,
docs/operations.md). Existing files are kept, so mail programs that trust the CA keep working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext as _

from mailserver.tls import make_private_ca


class Command(BaseCommand):
    help = _(
        "Make a private CA and a server certificate for localhost and 127.0.0.1 in DIRECTORY "
        "(keys mode 0600), unless they exist; print the variables that use them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help=_("where to write the files"))
        parser.add_argument(
            "--name",
            action="append",
            dest="names",
            help=_("a host name or IP address the certificate names (default: both local ones)"),
        )

    def handle(self, *args: Any, directory: Path, names: list[str] | None, **options: Any) -> None:
        made = make_private_ca(directory.resolve(), tuple(names or ("localhost", "127.0.0.1")))
        self.stdout.write(f"DOVECOT_SSL_CERT={made.cert_file}")
        self.stdout.write(f"DOVECOT_SSL_KEY={made.key_file}")
        self.stdout.write(f"POSTAMT_MAIL_CA_FILE={made.ca_file}")
