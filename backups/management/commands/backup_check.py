"""``manage.py backup_check [ADDRESS ...] [--read-data]``: can the backups be restored?"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from backups.check import check_repository
from backups.crypto import KeyMissing, identities
from backups.models import Repository


class Command(BaseCommand):
    help = _(
        "Check that backups can be restored: the index, the stored packs and manifests, "
        "and with --read-data every byte."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "addresses", nargs="*", help=_("mailbox addresses (default: every backup)")
        )
        parser.add_argument(
            "--read-data",
            action="store_true",
            help=_(
                "read every pack back and hash it, and where the identity is installed open "
                "every message (reads the whole store)"
            ),
        )

    def handle(self, *args: Any, addresses: list[str], read_data: bool, **options: Any) -> None:
        repositories = Repository.objects.order_by("address", "pk")
        if addresses:
            wanted = Q(pk__in=[])
            for address in addresses:
                wanted |= Q(address__iexact=address)
            repositories = repositories.filter(wanted)
            found = {r.address.lower() for r in repositories}
            unknown = [a for a in addresses if a.lower() not in found]
            if unknown:
                raise CommandError(_("No backups of: %(list)s") % {"list": ", ".join(unknown)})
        try:
            keys = identities()
        except KeyMissing:
            keys = None
            self.stderr.write(
                _(
                    "BACKUP_IDENTITY_FILE is not set here: manifests and messages are not "
                    "opened, only the index and the stored files are checked."
                )
            )
        live = self.stderr.isatty()
        failed = 0
        for repository in repositories:
            result = check_repository(
                repository,
                read_data=read_data,
                keys=keys,
                progress=self._progress(repository.address, live),
            )
            summary = _("%(address)s: %(snapshots)s, %(messages)s in %(packs)s (%(size)s)") % {
                "address": repository.address,
                "snapshots": ngettext("%d snapshot", "%d snapshots", result.snapshots)
                % result.snapshots,
                "messages": ngettext("%d stored message", "%d stored messages", result.messages)
                % result.messages,
                "packs": ngettext("%d pack", "%d packs", result.packs) % result.packs,
                "size": filesizeformat(result.pack_bytes),
            }
            if not result.problems:
                self.stdout.write(f"{summary}: " + _("OK"))
                continue
            failed += 1
            self.stdout.write(
                f"{summary}: "
                + ngettext("%d problem", "%d problems", len(result.problems)) % len(result.problems)
            )
            for problem in result.problems:
                self.stdout.write(f"  {problem}")
        if failed:
            raise CommandError(
                ngettext(
                    "%(failed)d backup has problems.",
                    "%(failed)d backups have problems.",
                    failed,
                )
                % {"failed": failed}
            )

    def _progress(self, address: str, live: bool) -> Callable[[str], None]:
        """Where the work is, rewritten in place on a terminal; nothing in a log."""
        if not live:
            return lambda _line: None
        return lambda line: self.stderr.write(f"{address}: {line}\r", ending="")
