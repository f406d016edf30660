"""The mailboxes nobody logs in to any more: a POP3 box nobody collects fills up and bounces."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from mailboxes import selectors
from mailboxes.models import Mailbox, Protocol


def positive_days(text: str) -> int:
    """An argparse ``type``: a whole number of days, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            _("“%(value)s” is not a number of days.") % {"value": text}
        )
    return value


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


class Command(BaseCommand):
    help = _(
        "List the mailboxes without an IMAP or POP3 login for --days days, most full first. "
        "POP3 mailboxes are flagged: nobody collects their mail, so they fill up and bounce."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--days",
            type=positive_days,
            default=90,
            metavar="N",
            help=_("days without a login (default 90)"),
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help=_("print a JSON list instead of a table"),
        )

    def handle(self, *args: Any, days: int, as_json: bool, **options: Any) -> None:
        now = timezone.now()
        since = now - timedelta(days=days)
        mailboxes = list(selectors.unused_mailboxes(days=days, now=now))
        if as_json:
            self._json(mailboxes)
            return
        tracked = selectors.last_login_tracked_since()
        if tracked is not None and tracked > since:
            self.stderr.write(
                _(
                    "Logins are recorded since %(date)s only: a mailbox listed without a login "
                    "may have been used before that."
                )
                % {"date": _when(tracked)}
            )
        if not mailboxes:
            self.stdout.write(
                _("Every mailbox older than %(days)d days has logged in since %(since)s.")
                % {"days": days, "since": _when(since)}
            )
            return
        self.stdout.write(
            ngettext(
                "%(count)d mailbox without an IMAP or POP3 login since %(since)s, most full first:",
                "%(count)d mailboxes without an IMAP or POP3 login since %(since)s, most full "
                "first:",
                len(mailboxes),
            )
            % {"count": len(mailboxes), "since": _when(since)}
        )
        self._table(mailboxes)

    def _table(self, mailboxes: list[Mailbox]) -> None:
        header = [_("mailbox"), _("protocol"), _("used"), _("last IMAP"), _("last POP3"), _("note")]
        rows = [header] + [self._row(m) for m in mailboxes]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.stdout.write("  ".join([*cells, row[-1]]).rstrip())

    def _row(self, mailbox: Mailbox) -> list[str]:
        usage = selectors.usage_summary(mailbox)
        if usage.used_bytes is None:
            used = _("not measured yet")
        else:
            used = _("%(used)s of %(quota)s (%(percent)s%%)") % {
                "used": filesizeformat(usage.used_bytes),
                "quota": filesizeformat(usage.quota_bytes),
                "percent": usage.percent,
            }
        notes = []
        if mailbox.protocol == Protocol.POP3:
            notes.append(_("POP3: mail is not being collected"))
        if not mailbox.is_active:
            notes.append(_("suspended"))
        return [
            mailbox.display_address,
            mailbox.get_protocol_display(),
            used,
            self._last(mailbox, mailbox.last_imap_login),  # type: ignore[attr-defined]
            self._last(mailbox, mailbox.last_pop3_login),  # type: ignore[attr-defined]
            "; ".join(notes),
        ]

    @staticmethod
    def _last(mailbox: Mailbox, moment: datetime | None) -> str:
        if moment is not None:
            return _when(moment)
        recorded_since = mailbox.logins_recorded_since  # type: ignore[attr-defined]
        if recorded_since > mailbox.created_at:
            return _("none since %(date)s") % {"date": _when(recorded_since)}
        return _("never")

    def _json(self, mailboxes: list[Mailbox]) -> None:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment is not None else None

        data = [
            {
                "id": m.pk,
                "address": m.address,
                "display_address": m.display_address,
                "customer_id": m.domain.customer_id,
                "protocol": m.protocol,
                "status": m.status,
                "used_bytes": m.used_bytes,
                "quota_bytes": m.quota_bytes,
                "last_imap_login": iso(m.last_imap_login),  # type: ignore[attr-defined]
                "last_pop3_login": iso(m.last_pop3_login),  # type: ignore[attr-defined]
                "logins_recorded_since": iso(m.logins_recorded_since),  # type: ignore[attr-defined]
            }
            for m in mailboxes
        ]
        self.stdout.write(json.dumps(data, indent=2))
