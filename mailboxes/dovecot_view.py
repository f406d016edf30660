"""The views Dovecot reads from Postamt's database: ``dovecot_users`` (the mail servers) and
``dovecot_proxy`` (the proxy in front of them).

A view keeps Dovecot's queries independent of Django's table layout, and the same SQL works on
PostgreSQL and SQLite. ``active`` is 0/1 so both databases compare it alike.

While a move is unfinished, ``dovecot_users`` lists the mailbox on both servers, its own and
the other end of the move, so that workers can log in on either side to copy, catch up and
remove the old copy. The proxy routes only to the mailbox's own server.

It is dropped before migrations and created after them (see apps.py), because SQLite rebuilds
a table to alter it and PostgreSQL refuses to change a column a view uses: no migration has
to know the view exists.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

_USER_COLUMNS = """
SELECT m.address AS username,
       m.password_hash AS password,
       m.protocol AS protocol,
       CASE WHEN m.status = 'active' THEN 1 ELSE 0 END AS active,
       m.quota_bytes AS quota_bytes,
       m.storage_path AS storage_path,
       s.name AS server
FROM mailboxes_mailbox m
"""

# The mailbox's own server last, so that a WHERE appended to the statement filters it
# (tests/integration/test_polling.py makes Dovecot miss a mailbox that way).
CREATE = f"""
CREATE VIEW dovecot_users AS
{_USER_COLUMNS}
JOIN mailboxes_mailboxmove mv ON mv.mailbox_id = m.id
 AND mv.state IN ('queued', 'copying', 'switched')
JOIN mailboxes_mailserver s
  ON s.id = CASE WHEN mv.source_id = m.mail_server_id THEN mv.target_id ELSE mv.source_id END
UNION ALL
{_USER_COLUMNS}
JOIN mailboxes_mailserver s ON s.id = m.mail_server_id
"""

CREATE_PROXY = """
CREATE VIEW dovecot_proxy AS
SELECT m.address AS username,
       m.password_hash AS password,
       m.protocol AS protocol,
       CASE WHEN m.status = 'active' THEN 1 ELSE 0 END AS active,
       s.hostname AS host,
       s.imap_port AS imap_port,
       s.pop3_port AS pop3_port,
       s.lmtp_port AS lmtp_port
FROM mailboxes_mailbox m
JOIN mailboxes_mailserver s ON s.id = m.mail_server_id
"""


def drop(using: str = "default", **_kwargs: Any) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute("DROP VIEW IF EXISTS dovecot_users")
        cursor.execute("DROP VIEW IF EXISTS dovecot_proxy")


def create(using: str = "default", **_kwargs: Any) -> None:
    """(Re)create the view, if the tables it reads exist yet."""
    connection = connections[using]
    tables = set(connection.introspection.table_names())
    if not {"mailboxes_mailbox", "mailboxes_mailserver", "mailboxes_mailboxmove"} <= tables:
        return
    with connection.cursor() as cursor:
        cursor.execute("DROP VIEW IF EXISTS dovecot_users")
        cursor.execute("DROP VIEW IF EXISTS dovecot_proxy")
        cursor.execute(CREATE)
        cursor.execute(CREATE_PROXY)
