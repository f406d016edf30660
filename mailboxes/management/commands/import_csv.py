"""``manage.py import_csv``: customers, domains and mailboxes from a CSV file, all or nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from mailboxes import imports
from provider.cli import ServiceCommand, usage_error


class Command(ServiceCommand):
    help = (
        "Import customers, domains and mailboxes from a CSV file: every row is checked first, "
        "then all are created in one transaction, or none (docs/cli.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help=_("The CSV file (UTF-8, comma or semicolon)."))
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Only check the file and say what it would create; change nothing."),
        )
        parser.add_argument(
            "--passwords-to",
            metavar="FILE",
            help=_(
                "Write the passwords generated for mailboxes without one to this new file "
                "(readable only by you); needed when the file has such mailboxes."
            ),
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise usage_error(
                _("%(file)s cannot be read: %(error)s") % {"file": path, "error": exc.strerror}
            ) from exc
        try:
            checked = imports.check(data, progress=self._progress())
        except ValidationError as exc:
            raise CommandError("\n".join(exc.messages)) from exc
        self._clear_progress()
        summary = {
            "file": str(path),
            "rows": checked.rows,
            "customers": len(checked.new_customers),
            "domains": len(checked.new_domains),
            "mailboxes": len(checked.mailboxes),
            "passwords_generated": checked.to_generate,
            "dry_run": bool(options["dry_run"]),
        }
        if checked.problems:
            self._refuse(checked, summary, options)
        if options["dry_run"]:
            self.emit(options, self._would(summary), summary | {"problems": []})
            return
        passwords_file = self._open_passwords_file(options["passwords_to"], checked.to_generate)
        try:
            result = self.call(
                imports.import_checked,
                checked=checked,
                file_name=path.name,
                progress=self._progress(),
            )
        except BaseException:
            if passwords_file is not None:
                passwords_file.close()
                os.unlink(options["passwords_to"])
            raise
        self._clear_progress()
        lines = [
            _("Imported %(file)s: created %(customers)s, %(domains)s and %(mailboxes)s.")
            % self._counted(summary)
        ]
        if passwords_file is not None:
            with passwords_file:
                passwords_file.write(imports.passwords_csv(result.generated))
            lines.append(
                ngettext(
                    "%(count)d generated password is in %(path)s.",
                    "%(count)d generated passwords are in %(path)s.",
                    len(result.generated),
                )
                % {"count": len(result.generated), "path": options["passwords_to"]}
            )
        self.emit(options, "\n".join(lines), summary | {"problems": []})

    def _counted(self, summary: dict[str, Any]) -> dict[str, str]:
        return {
            "file": summary["file"],
            "customers": ngettext("%d customer", "%d customers", summary["customers"])
            % summary["customers"],
            "domains": ngettext("%d domain", "%d domains", summary["domains"]) % summary["domains"],
            "mailboxes": ngettext("%d mailbox", "%d mailboxes", summary["mailboxes"])
            % summary["mailboxes"],
        }

    def _would(self, summary: dict[str, Any]) -> str:
        text = _(
            "%(file)s is fine: it would create %(customers)s, %(domains)s and %(mailboxes)s."
        ) % self._counted(summary)
        if summary["passwords_generated"]:
            text += " " + ngettext(
                "%(count)d mailbox has no password: one would be generated.",
                "%(count)d mailboxes have no password: one each would be generated.",
                summary["passwords_generated"],
            ) % {"count": summary["passwords_generated"]}
        return text + " " + _("Nothing was changed (dry run).")

    def _refuse(
        self, checked: imports.Checked, summary: dict[str, Any], options: dict[str, Any]
    ) -> None:
        if options["json"]:
            problems = [
                {"row": p.row, "column": p.column, "message": p.message} for p in checked.problems
            ]
            self.stdout.write(json.dumps(summary | {"problems": problems}, ensure_ascii=False))
        else:
            for problem in checked.problems:
                self.stderr.write(format_problem(problem))
        rows = len({p.row for p in checked.problems})
        raise CommandError(
            ngettext(
                "%(rows)d row cannot be imported; nothing was changed.",
                "%(rows)d rows cannot be imported; nothing was changed.",
                rows,
            )
            % {"rows": rows}
        )

    def _open_passwords_file(self, path: str | None, needed: int) -> IO[str] | None:
        if not needed:
            return None
        if not path:
            raise usage_error(
                ngettext(
                    "%(count)d mailbox has no password or hash: give --passwords-to FILE for "
                    "the one Postamt generates.",
                    "%(count)d mailboxes have no password or hash: give --passwords-to FILE "
                    "for the ones Postamt generates.",
                    needed,
                )
                % {"count": needed}
            )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise usage_error(
                _("--passwords-to: %(path)s cannot be created: %(error)s")
                % {"path": path, "error": exc.strerror}
            ) from exc
        return os.fdopen(fd, "w", encoding="utf-8", newline="")

    def _progress(self) -> imports.Progress | None:
        if not self.stdout.isatty():
            return None
        labels = {"checking": _("checking"), "hashing": _("hashing passwords"), "writing": ""}

        def show(done: int, total: int, step: str) -> None:
            if step == "writing":
                self.stdout.write("\r" + _("writing…").ljust(40), ending="")
            else:
                self.stdout.write(f"\r{labels[step]} {done}/{total}".ljust(40), ending="")
            self.stdout.flush()

        return show

    def _clear_progress(self) -> None:
        if self.stdout.isatty():
            self.stdout.write("\r" + " " * 40 + "\r", ending="")


def format_problem(problem: imports.Problem) -> str:
    if problem.column:
        return _("row %(row)d, %(column)s: %(message)s") % {
            "row": problem.row,
            "column": problem.column,
            "message": problem.message,
        }
    return _("row %(row)d: %(message)s") % {"row": problem.row, "message": problem.message}
