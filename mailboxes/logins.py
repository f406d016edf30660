"""Last logins: Dovecot writes them, a poll copies them onto the mailboxes for the list's sort.

Dovecot's ``last_login`` plugin writes one row per login name and protocol
(``models.MailboxLogin``). Showing a page of 50 mailboxes reads those rows by key; sorting
100,000 mailboxes by them would compute every mailbox's latest login first. So each poll
copies the later of the two onto ``Mailbox.last_login_at``, which ``mailbox_login_order``
indexes: the sort then lags the records by at most one poll interval, while the mailbox
page and the list's columns read the records themselves.
"""

from __future__ import annotations

from django.db.models import Exists, Max, OuterRef, Q, Subquery

from .models import Mailbox, MailServer
from .selectors import LOGIN_PROTOCOLS, FromUnixTime, UnixTime, own_logins


def copy_last_logins(server: MailServer | None = None) -> int:
    """Set ``last_login_at`` of every mailbox (of ``server``) with a newer login; returns how
    many changed. Only logins since a mailbox was created count: a deleted and recreated
    address does not inherit its predecessor's. One statement, and only changed rows written."""
    own = own_logins(LOGIN_PROTOCOLS)
    newer = own.filter(last_login__gt=UnixTime(OuterRef("last_login_at")))
    latest = own.order_by().values("username").annotate(at=Max("last_login")).values("at")
    mailboxes = Mailbox.objects.all() if server is None else server.mailboxes.all()
    stale = Q(Exists(own), last_login_at__isnull=True) | Q(Exists(newer))
    return mailboxes.filter(stale).update(last_login_at=FromUnixTime(Subquery(latest)))
