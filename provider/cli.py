"""What every management command that calls a service shares: the audit actor, service errors,
passwords from standard input, usage errors.

The commands are entry points like views: they parse, look up rows, call one service and
print. A service's ValidationError becomes a CommandError (exit status 1) with one line per
problem; a usage error exits with status 2, as argparse's own do. The lookups of each app's
rows live beside its models (``accounts.cli``, ``mailboxes.cli``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import IO, Any, TypeVar

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

T = TypeVar("T")

USAGE_ERROR = 2


def cli_actor() -> str:
    """The audit label for whoever runs the command, e.g. ``cli:root``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # a container user without a name (Python 3.13 / older)
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=USAGE_ERROR)


class _RefusePassword(argparse.Action):
    """``--password X`` fails with advice; argparse's "unrecognized" error would echo X."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        parser.error(
            _(
                "%(option)s is not accepted: a password on the command line shows in `ps` and "
                "the shell history. Use --password-stdin (and change the one you just typed)."
            )
            % {"option": option}
        )


class ServiceCommand(BaseCommand):
    """A command that changes state through services, acting as ``cli:<user>``."""

    # call_command(..., stdin=StringIO()) in tests; sys.stdin otherwise.
    stealth_options = ("stdin",)

    def execute(self, *args: Any, **options: Any) -> str | None:
        self.stdin: IO[str] = options.get("stdin") or sys.stdin
        self.actor = cli_actor()
        return super().execute(*args, **options)

    def call(self, service: Callable[..., T], **kwargs: Any) -> T:
        try:
            return service(actor=self.actor, **kwargs)
        except ValidationError as exc:
            raise CommandError("\n".join(exc.messages)) from exc

    def add_json_argument(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            help=_("Print the result as one JSON object, for scripts."),
        )

    def add_password_arguments(self, parser: CommandParser, *, generate_option: bool) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--password-stdin",
            action="store_true",
            help=_(
                "Read the password from the first line of standard input. No option takes the "
                "password itself, on purpose: it would show in `ps` and in the shell history."
            ),
        )
        if generate_option:
            group.add_argument(
                "--generate-password",
                action="store_true",
                help=_("Set a new random password and print it once."),
            )
        parser.add_argument("--password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS)

    def emit(self, options: dict[str, Any], text: str, data: dict[str, Any]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(data, ensure_ascii=False))
        else:
            self.stdout.write(text)

    def read_password(self) -> str:
        """One line from standard input; asked without echo when that is a terminal."""
        if self.stdin.isatty():
            return getpass.getpass(_("Password: "))
        line = self.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise CommandError(_("--password-stdin: no password on standard input."))
        return password
