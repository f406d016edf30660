"""Where a new mailbox lives: the one rule for the staff pages, the API, the CLI and the import.

A mailbox goes to the server staff choose, if it accepts new mailboxes, or else to the least
used server that does. "Least used" is measured by **allocation**, the sum of the quotas of
a server's mailboxes, as a share of its capacity:

- allocation is what the server has promised to store, and it changes the moment a mailbox
  is placed. Measured usage moves only with the next poll, so a burst of new mailboxes (a
  CSV import of thousands) placed by usage would all land on the same server; new mailboxes
  are empty anyway, and grow towards their quota, not towards the fleet's average;
- as a share of capacity, so a server twice as large takes twice as much. A server without
  a stated capacity counts as large as the largest stated one (with none stated, servers
  are compared by allocation alone);
- the new mailbox's quota is counted in: it goes where it leaves the fullest share smallest.
  Ties go to the server with less mail measured, then fewer mailboxes, then by name.

Nothing is refused for being past its capacity: hosters overcommit, as few mailboxes fill
their quota. A server leaves the rotation when staff say it accepts no new mailboxes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .models import Mailbox, MailServer


@dataclass
class ServerLoad:
    """A server's allocation and measured usage, as placement weighs them."""

    server: MailServer
    allocated_bytes: int = 0
    used_bytes: int = 0
    mailbox_count: int = 0

    @property
    def capacity_bytes(self) -> int | None:
        return self.server.capacity_bytes

    @property
    def allocated_percent(self) -> int | None:
        """Over 100 when more is sold than the capacity (overcommitted)."""
        if not self.capacity_bytes:
            return None
        return self.allocated_bytes * 100 // self.capacity_bytes

    def describe(self) -> str:
        """One line for choosing a server: what it has given out and what it holds."""
        figures = {
            "server": self.server.name,
            "allocated": filesizeformat(self.allocated_bytes),
            "used": filesizeformat(self.used_bytes),
        }
        if self.capacity_bytes:
            text = _(
                "%(server)s: %(allocated)s of %(capacity)s allocated (%(percent)d %%), "
                "%(used)s used"
            ) % {
                **figures,
                "capacity": filesizeformat(self.capacity_bytes),
                "percent": self.allocated_percent or 0,
            }
        else:
            text = _("%(server)s: %(allocated)s allocated, %(used)s used") % figures
        count = ngettext("%(count)d mailbox", "%(count)d mailboxes", self.mailbox_count) % {
            "count": self.mailbox_count
        }
        return f"{text}, {count}"


def server_loads(servers: Iterable[MailServer] | None = None) -> list[ServerLoad]:
    """Every server's (or the given ones') load, in one grouped query of the mailboxes."""
    servers = list(MailServer.objects.all() if servers is None else servers)
    loads = {server.pk: ServerLoad(server) for server in servers}
    totals = (
        Mailbox.objects.filter(mail_server__in=list(loads))
        .values("mail_server")
        .annotate(
            allocated=Coalesce(Sum("quota_bytes"), 0),
            used=Coalesce(Sum("used_bytes"), 0),
            count=Count("pk"),
        )
    )
    for row in totals:
        load = loads[row["mail_server"]]
        load.allocated_bytes, load.used_bytes = row["allocated"], row["used"]
        load.mailbox_count = row["count"]
    return list(loads.values())


def accepting_servers() -> list[MailServer]:
    return list(MailServer.objects.filter(active=True))


def check_accepts(server: MailServer) -> None:
    """Refuse a server staff chose that takes no new mailboxes."""
    if not server.active:
        raise ValidationError(
            {
                "mail_server": _("The mail server %(server)s accepts no new mailboxes.")
                % {"server": server.name}
            }
        )


def no_server_error() -> ValidationError:
    return ValidationError(
        {
            "mail_server": _(
                "No mail server accepts new mailboxes: add one, or let an existing one accept "
                "them again (manage.py mailserver_save NAME --active)."
            )
        }
    )


class Placer:
    """Places one mailbox after another, counting each one's quota as it goes: the import
    places a whole file with the figures read once."""

    def __init__(self, loads: list[ServerLoad]) -> None:
        self.loads = {load.server.pk: load for load in loads}
        self.accepting = [load for load in loads if load.server.active]
        stated = [load.capacity_bytes for load in self.accepting if load.capacity_bytes]
        self.reference_capacity = max(stated, default=1)

    @classmethod
    def for_accepting_servers(cls) -> Placer:
        return cls(server_loads(accepting_servers()))

    def _rank(self, load: ServerLoad, quota_bytes: int) -> tuple[float, int, int, str]:
        capacity = load.capacity_bytes or self.reference_capacity
        share = (load.allocated_bytes + quota_bytes) / capacity
        return (share, load.used_bytes, load.mailbox_count, load.server.name)

    def place(self, quota_bytes: int, requested: MailServer | None = None) -> MailServer:
        """The server for a mailbox of ``quota_bytes``: ``requested`` if it accepts new
        mailboxes, else the least used accepting one (see the module's docstring)."""
        if requested is not None:
            check_accepts(requested)
            load = self.loads.setdefault(requested.pk, ServerLoad(requested))
        elif not self.accepting:
            raise no_server_error()
        else:
            load = min(self.accepting, key=lambda each: self._rank(each, quota_bytes))
        load.allocated_bytes += quota_bytes
        load.mailbox_count += 1
        return load.server


def place_mailbox(*, quota_bytes: int, requested: MailServer | None = None) -> MailServer:
    """The server a new mailbox goes to; ValidationError keyed ``mail_server`` if none may."""
    if requested is not None:
        check_accepts(requested)
        return requested
    return Placer.for_accepting_servers().place(quota_bytes)
