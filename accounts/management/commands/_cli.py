"""What every provisioning command shares: the audit actor, service errors, lookups, output.

The commands are entry points like views: they parse, look up rows, call one service and
print. A service's ValidationError becomes a CommandError (exit status 1) with one line per
problem; a usage error exits with status 2, as argparse's own do.
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
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from accounts.models import Customer
from mailboxes.idn import domain_to_ascii
from mailboxes.models import Domain, Mailbox, MailServer, Plan
from mailboxes.sizes import parse_size

T = TypeVar("T")

USAGE_ERROR = 2


def cli_actor() -> str:
    """The audit label for whoever runs the command, e.g. ``cli:root``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # a container user without a name (Python 3.13 / older)
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


def size(text: str) -> int:
    """An argparse ``type`` for sizes, so a bad one is a usage error with our message."""
    try:
        return parse_size(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(" ".join(exc.messages)) from exc


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
        parser.add_argument(
            "--password", nargs="?", action=_RefusePassword, help=argparse.SUPPRESS
        )

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


def get_customer(ref: str) -> Customer:
    """A customer by id, or by contact email when that names exactly one."""
    ref = ref.strip()
    if ref.isdigit():
        customer = Customer.objects.filter(pk=int(ref)).first()
        if customer is None:
            raise CommandError(_("There is no customer with the id %(id)s.") % {"id": ref})
        return customer
    if "@" not in ref:
        raise usage_error(
            _("--customer: give a customer id or contact email, not “%(value)s”.")
            % {"value": ref}
        )
    matches = list(Customer.objects.filter(contact_email__iexact=ref).order_by("pk"))
    if not matches:
        raise CommandError(
            _("There is no customer with the contact email %(email)s.") % {"email": ref}
        )
    if len(matches) > 1:
        raise CommandError(
            _("%(count)d customers have the contact email %(email)s; give an id: %(ids)s.")
            % {
                "count": len(matches),
                "email": ref,
                "ids": ", ".join(str(c.pk) for c in matches),
            }
        )
    return matches[0]


def _names(queryset: Any) -> str:
    return ", ".join(queryset.values_list("name", flat=True)) or _("none yet")


def get_plan(name: str) -> Plan:
    plan = Plan.objects.filter(name=name).first()
    if plan is None:
        raise CommandError(
            _("There is no plan “%(name)s”. Plans: %(names)s.")
            % {"name": name, "names": _names(Plan.objects.order_by("name"))}
        )
    return plan


def get_mail_server(name: str) -> MailServer:
    server = MailServer.objects.filter(name=name).first()
    if server is None:
        raise CommandError(
            _("There is no mail server “%(name)s”. Servers: %(names)s.")
            % {"name": name, "names": _names(MailServer.objects.all())}
        )
    return server


def split_address(address: str) -> tuple[str, str]:
    """``(local part, domain)`` as typed, split at the last ``@``."""
    local_part, at, domain_name = address.strip().rpartition("@")
    if not at or not local_part or not domain_name:
        raise CommandError(
            _("“%(address)s” is not a mailbox address such as anna@example.com.")
            % {"address": address}
        )
    return local_part, domain_name


def _domain_to_ascii(name: str) -> str:
    try:
        return domain_to_ascii(name)
    except ValidationError as exc:
        raise CommandError("\n".join(exc.messages)) from exc


def get_domain(name: str) -> Domain:
    """A domain by its name as typed, Unicode or punycode."""
    domain = (
        Domain.objects.select_related("customer", "mail_server")
        .filter(name=_domain_to_ascii(name))
        .first()
    )
    if domain is None:
        raise CommandError(
            _("There is no domain “%(name)s”; create it first with domain_create.")
            % {"name": name}
        )
    return domain


def get_mailbox(address: str) -> Mailbox:
    local_part, domain_name = split_address(address)
    login = f"{local_part.lower()}@{_domain_to_ascii(domain_name)}"
    mailbox = (
        Mailbox.objects.select_related("domain__customer", "plan", "mail_server")
        .filter(address=login)
        .first()
    )
    if mailbox is None:
        raise CommandError(_("There is no mailbox %(address)s.") % {"address": address})
    return mailbox


def mailbox_data(mailbox: Mailbox) -> dict[str, Any]:
    return {
        "id": mailbox.pk,
        "address": mailbox.address,
        "display_address": mailbox.display_address,
        "customer_id": mailbox.domain.customer_id,
        "plan": mailbox.plan.name,
        "protocol": mailbox.protocol,
        "quota_bytes": mailbox.quota_bytes,
        "status": mailbox.status,
        "server": mailbox.mail_server.name,
    }


def mailbox_summary(mailbox: Mailbox) -> str:
    """``anna@müller.de (login anna@xn--mller-kva.de): IMAP, 1.0 GB, plan “Pro”, active``."""
    login = mailbox.address
    name = mailbox.display_address
    if name != login:
        name = _("%(name)s (login %(login)s)") % {"name": name, "login": login}
    return _("%(name)s: %(protocol)s, %(quota)s, plan “%(plan)s”, %(status)s") % {
        "name": name,
        "protocol": mailbox.get_protocol_display(),
        "quota": filesizeformat(mailbox.quota_bytes),
        "plan": mailbox.plan.name,
        "status": mailbox.get_status_display(),
    }
