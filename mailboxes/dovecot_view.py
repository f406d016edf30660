"""The ``dovecot_users`` view: the only thing Dovecot reads from Postamt's database.

A view keeps Dovecot's queries independent of Django's table layout, and the same SQL works on
PostgreSQL and SQLite. ``active`` is 0/1 so both databases compare it alike.

It is dropped before migrations and created after them (see apps.py), because SQLite rebuilds
a table to alter it and PostgreSQL refuses to change a column a view uses: no migration has
to know the view exists.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

CREATE = """
CREATE VIEW dovecot_users AS
SELECT m.address AS username,
       m.password_hash AS password,
       m.protocol AS protocol,
       CASE WHEN m.status = 'active' THEN 1 ELSE 0 END AS active,
       m.quota_bytes AS quota_bytes,
       m.storage_path AS storage_path,
       s.name AS server
FROM mailboxes_mailbox m
JOIN mailboxes_mailserver s ON s.id = m.mail_server_id
"""


def drop(using: str = "default", **_kwargs: Any) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute("DROP VIEW IF EXISTS dovecot_users")


def create(using: str = "default", **_kwargs: Any) -> None:
    """(Re)create the view, if the tables it reads exist yet."""
    connection = connections[using]
    tables = set(connection.introspection.table_names())
    if not {"mailboxes_mailbox", "mailboxes_mailserver"} <= tables:
        return
    with connection.cursor() as cursor:
        cursor.execute("DROP VIEW IF EXISTS dovecot_users")
        cursor.execute(CREATE)
