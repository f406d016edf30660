"""``manage.py export_csv``: every customer, domain and mailbox in the import's columns."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext as _

from mailboxes import imports
from provider.cli import usage_error


class Command(BaseCommand):
    help = (
        "Write every customer, domain and mailbox as CSV in the columns import_csv reads, "
        "without passwords (docs/cli.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output", metavar="FILE", help=_("Write to this file instead of standard output.")
        )

    def handle(self, *args: Any, output: str | None, **options: Any) -> None:
        if output is None:
            for piece in imports.export_csv():
                self.stdout.write(piece, ending="")
            return
        try:
            with open(output, "x", encoding="utf-8", newline="") as file:
                file.writelines(imports.export_csv())
        except OSError as exc:
            raise usage_error(
                _("--output: %(path)s cannot be created: %(error)s")
                % {"path": output, "error": exc.strerror}
            ) from exc
