"""``manage.py dovecot_db_role``: Dovecot's own PostgreSQL role, from DOVECOT_DATABASE_URL."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from mailboxes.dovecot_view import dovecot_role_save


class Command(BaseCommand):
    help = (
        "Create or update the PostgreSQL role named in DOVECOT_DATABASE_URL (with its "
        "password) so that it may only read dovecot_users and record last logins. Run it as "
        "Postamt's database owner with CREATEROLE, after migrate; again to change the password."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        dovecot_db = settings.DOVECOT["DATABASE"]
        if dovecot_db is None:
            raise CommandError("DOVECOT_DATABASE_URL (or DOVECOT_DATABASE_URL_FILE) is not set.")
        if connection.vendor != "postgresql":
            raise CommandError(
                "Dovecot's own role exists only on PostgreSQL: SQLite has no roles "
                "(see docs/operations.md, Secrets per process)."
            )
        if dovecot_db["NAME"] != connection.settings_dict["NAME"]:
            raise CommandError(
                f"DOVECOT_DATABASE_URL names the database {dovecot_db['NAME']!r}, "
                f"Postamt uses {connection.settings_dict['NAME']!r}."
            )
        try:
            dovecot_role_save(dovecot_db["USER"], dovecot_db["PASSWORD"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Role {dovecot_db['USER']} may read dovecot_users and record last logins "
            f"in {dovecot_db['NAME']}, nothing else."
        )
