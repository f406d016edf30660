"""``manage.py backup_keygen IDENTITY_FILE``: a new age key pair for backups.

Writes the identity (private key) to a new file readable only by its owner, in the format
``age-keygen`` writes, and prints the public key for ``BACKUP_PUBLIC_KEY``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from backups.crypto import write_identity_file


class Command(BaseCommand):
    help = _(
        "Create an age key pair for backups: write the identity to a new file (mode 0600) "
        "and print the public key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("identity_file", type=Path, help=_("where to write the identity"))
        parser.add_argument(
            "--force", action="store_true", help=_("replace an existing identity file")
        )

    def handle(self, *args: Any, identity_file: Path, force: bool, **options: Any) -> None:
        try:
            public = write_identity_file(identity_file, overwrite=force)
        except FileExistsError as exc:
            raise CommandError(
                _(
                    "%(path)s exists. Backups encrypted to its key need it to be restored: "
                    "keep it, or pass --force if you are sure."
                )
                % {"path": identity_file}
            ) from exc
        except OSError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(
            _("Identity written to %(path)s. Set BACKUP_PUBLIC_KEY to:") % {"path": identity_file}
        )
        self.stdout.write(public)
