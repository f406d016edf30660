"""Dovecot's own PostgreSQL role (manage.py dovecot_db_role): it reads dovecot_users and
records last logins, and nothing else of Postamt's database."""

from __future__ import annotations

import io
import secrets
import shutil
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from imapclient import IMAPClient

from mailboxes import dovecot_view
from mailboxes.models import MailboxLogin
from mailboxes.services import mail_server_register_local
from mailserver.dovecot import DovecotInstance
from mailserver.tls import PrivateCA
from tests.conftest import private_dovecot_options
from tests.factories import PASSWORD, make_domain, make_mailbox
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no roles"),
]


@pytest.fixture
def dovecot_db(transactional_db: None, settings: Any) -> Iterator[dict[str, Any]]:
    """A fresh role made by the command, as DOVECOT_DATABASE_URL names it; dropped after."""
    role = f"postamt_dovecot_{secrets.token_hex(4)}"
    db = {**connection.settings_dict, "USER": role, "PASSWORD": secrets.token_urlsafe(24)}
    settings.DOVECOT = {**settings.DOVECOT, "DATABASE": db}
    out = io.StringIO()
    call_command("dovecot_db_role", stdout=out)
    assert f"Role {role} may read dovecot_users" in out.getvalue()
    yield db
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {role}")
        cursor.execute(f"DROP ROLE {role}")


def run_as(db: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    """``sql`` over a connection of Dovecot's role."""
    with psycopg.connect(
        host=db["HOST"] or "localhost",
        port=db["PORT"] or 5432,
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"],
        autocommit=True,
    ) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM accounts_user",
        "SELECT password_hash FROM mailboxes_mailbox",
        "SELECT * FROM mailboxes_mailserver",
        "SELECT * FROM django_session",
        "SELECT * FROM accounts_auditentry",
        "UPDATE mailboxes_mailbox SET status = 'active'",
        "DELETE FROM dovecot_last_login",
        "UPDATE dovecot_last_login SET username = 'someone@else.test'",
        "CREATE TABLE dovecot_own (x int)",
    ],
)
def test_dovecots_role_cannot_touch_anything_but_its_view(dovecot_db, sql) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        run_as(dovecot_db, sql)


def test_dovecots_role_reads_the_view_and_keeps_it_across_migrations(dovecot_db) -> None:
    mailbox = make_mailbox("anna")
    query = "SELECT username, active FROM dovecot_users"
    assert run_as(dovecot_db, query) == [(mailbox.address, 1)]
    # migrate drops and recreates the view, which drops its grants: they come back.
    dovecot_view.drop()
    dovecot_view.create()
    assert run_as(dovecot_db, query) == [(mailbox.address, 1)]


def test_running_the_command_again_takes_away_what_was_added(dovecot_db) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT SELECT ON accounts_user TO {dovecot_db['USER']}")
    assert run_as(dovecot_db, "SELECT count(*) FROM accounts_user") == [(0,)]
    call_command("dovecot_db_role", stdout=io.StringIO())
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        run_as(dovecot_db, "SELECT count(*) FROM accounts_user")


@pytest.fixture
def role_dovecot(
    dovecot_db: dict[str, Any], settings: Any, private_ca: PrivateCA
) -> Iterator[DovecotInstance]:
    """A Dovecot of its own whose configuration connects with the role."""
    instance = DovecotInstance.from_settings(
        **private_dovecot_options("role", private_ca), doveadm_port=None
    )
    assert instance.db == dovecot_db  # from DOVECOT_DATABASE_URL
    instance.start()
    yield instance
    instance.stop()
    shutil.rmtree(instance.root, ignore_errors=True)


def test_dovecot_logs_a_mailbox_in_through_its_role(role_dovecot: DovecotInstance) -> None:
    server = mail_server_register_local(role_dovecot)
    domain = make_domain()
    domain.mail_server = server
    domain.save()
    mailbox = make_mailbox("berta", domain=domain)

    client = IMAPClient(role_dovecot.listen, port=role_dovecot.imap_port, ssl=False, timeout=10)
    client.login(mailbox.address, PASSWORD)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()
    with pytest.raises(Exception, match="AUTHENTICATIONFAILED"):
        IMAPClient(role_dovecot.listen, port=role_dovecot.imap_port, ssl=False).login(
            mailbox.address, "wrong-password-1"
        )
    # The last_login plugin wrote through the role's INSERT ... ON CONFLICT ... UPDATE grant.
    wait_for(
        lambda: MailboxLogin.objects.filter(username=mailbox.address, protocol="imap").exists(),
        "the login recorded by Dovecot",
    )
    with connection.cursor() as cursor:  # and its connections are the role's
        cursor.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = ''"
            " AND datname = current_database() AND usename <> current_user"
        )
        assert cursor.fetchall() == [(dovecot_db_user(role_dovecot),)]


def dovecot_db_user(instance: DovecotInstance) -> str:
    assert instance.db is not None
    return str(instance.db["USER"])


def test_the_command_refuses_postamts_own_role(settings: Any, db: None) -> None:
    settings.DOVECOT = {**settings.DOVECOT, "DATABASE": dict(connection.settings_dict)}
    with pytest.raises(CommandError, match="Postamt's own role"):
        call_command("dovecot_db_role", stdout=io.StringIO())


def test_the_command_needs_dovecots_database_url(settings: Any, db: None) -> None:
    settings.DOVECOT = {**settings.DOVECOT, "DATABASE": None}
    with pytest.raises(CommandError, match="DOVECOT_DATABASE_URL"):
        call_command("dovecot_db_role", stdout=io.StringIO())
