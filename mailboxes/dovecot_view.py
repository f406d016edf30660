"""The views Dovecot reads from Postamt's database: ``dovecot_users`` (the mail servers) and
``dovecot_proxy`` (the proxy in front of them).

A view keeps Dovecot's queries independent of Django's table layout, and the same SQL works on
PostgreSQL and SQLite. ``active`` is 0/1 so both databases compare it alike.

While a move is unfinished, ``dovecot_users`` lists the mailbox on both servers, its own and
the other end of the move, so that workers can log in on either side to copy, catch up and
remove the old copy. The proxy routes only to the mailbox's own server, over IMAPS and POP3S
(LMTP deliveries carry no password and stay on the LMTP port).

It is dropped before migrations and created after them (see apps.py), because SQLite rebuilds
a table to alter it and PostgreSQL refuses to change a column a view uses: no migration has
to know the view exists.

On PostgreSQL Dovecot logs in with a role of its own (``manage.py dovecot_db_role``) that may
read this view and record last logins in ``dovecot_last_login``, nothing else.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

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
       s.imaps_port AS imaps_port,
       s.pop3s_port AS pop3s_port,
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
    if connection.vendor == "postgresql":
        # Dropping the view dropped its grants: give it back to Dovecot's roles.
        for role in _dovecot_roles(connection):
            with connection.cursor() as cursor:
                cursor.execute(f"GRANT SELECT ON dovecot_users, dovecot_proxy TO {role}")


def _dovecot_roles(connection: BaseDatabaseWrapper) -> list[str]:
    """The roles allowed to record last logins: Dovecot's (the table outlives migrations)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT grant_.grantee::regrole::text"
            " FROM pg_attribute, aclexplode(attacl) AS grant_"
            " WHERE attrelid = 'dovecot_last_login'::regclass"
            " AND grant_.privilege_type = 'INSERT'"
        )
        return [row[0] for row in cursor.fetchall()]


ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def dovecot_role_save(role: str, password: str, using: str = "default") -> None:
    """Create Dovecot's login role, or reset it to exactly what Dovecot needs.

    It may SELECT the views (passdb, userdb, ``doveadm -A``; the proxy's passdb). For the
    last_login plugin's dict-sql upsert (``INSERT ... ON CONFLICT (protocol, username) DO
    UPDATE``) it may INSERT those three columns, UPDATE ``last_login``, and SELECT ``protocol`` and
    ``username`` (PostgreSQL wants to read the conflict target). Any other privilege it was
    given on this database's tables is taken away. Roles are cluster-wide and need
    CREATEROLE, so this is a command an operator runs, not a migration.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise ValueError("Dovecot's own role exists only on PostgreSQL")
    if not ROLE_NAME.fullmatch(role):
        raise ValueError(f"{role!r} is not a plain PostgreSQL role name (a-z, 0-9, _)")
    if role == connection.settings_dict.get("USER"):
        raise ValueError(f"{role!r} is Postamt's own role: give Dovecot another one")
    if not password:
        raise ValueError("Dovecot's role needs a password")
    quote = connection.ops.quote_name
    name = quote(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        verb = "ALTER" if cursor.fetchone() else "CREATE"
        cursor.execute(
            f"{verb} ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
            " NOREPLICATION NOBYPASSRLS PASSWORD %s",
            [password],
        )
        cursor.execute("SELECT current_database(), current_schema()")
        database, schema = cursor.fetchone()
        cursor.execute(f"GRANT CONNECT ON DATABASE {quote(database)} TO {name}")
        cursor.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {quote(schema)} FROM {name}")
        cursor.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {quote(schema)} FROM {name}")
        cursor.execute(f"REVOKE CREATE ON SCHEMA {quote(schema)} FROM {name}")
        cursor.execute(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {name}")
        cursor.execute(f"GRANT SELECT ON dovecot_users, dovecot_proxy TO {name}")
        cursor.execute(
            "GRANT SELECT (protocol, username), INSERT (protocol, username, last_login),"
            f" UPDATE (last_login) ON dovecot_last_login TO {name}"
        )
