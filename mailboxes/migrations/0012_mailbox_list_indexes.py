"""Indexes for the staff lists (mailboxes/search.py).

- ``mailbox_usage_order``: the usage sort and the usage bands (an expression index: every
  write of usage or quota keeps it current, with no code of its own).
- On PostgreSQL, trigram indexes on the mailbox address and the domain name, so that a search
  for any part of them ("contains") reads an index instead of every row. They need the
  ``pg_trgm`` extension (shipped with PostgreSQL, and "trusted" since 13: the database's owner
  may create it). Where it cannot be created the search still works, by reading every row.
  SQLite (local runs) has no such index and does not need one at that size.
"""

import logging

import django.db.models.expressions
import django.db.models.functions.comparison
from django.db import DatabaseError, migrations, models, transaction

log = logging.getLogger(__name__)

TRIGRAM_INDEXES = {
    "mailbox_address_trgm": ("mailboxes_mailbox", "address"),
    "domain_name_trgm": ("mailboxes_domain", "name"),
}


def create_trigram_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as exc:
        log.warning("pg_trgm is not available (%s): searches read every row", exc)
        return
    with connection.cursor() as cursor:
        for name, (table, column) in TRIGRAM_INDEXES.items():
            cursor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" USING gin ("{column}" gin_trgm_ops)'
            )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in TRIGRAM_INDEXES:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):

    dependencies = [
        ("mailboxes", "0011_import_jobs"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="mailbox",
            index=models.Index(
                django.db.models.functions.comparison.Coalesce(
                    django.db.models.expressions.CombinedExpression(
                        django.db.models.expressions.CombinedExpression(
                            models.F("used_bytes"), "*", models.Value(10000)
                        ),
                        "/",
                        models.F("quota_bytes"),
                    ),
                    models.Value(-1),
                    output_field=models.BigIntegerField(),
                ),
                models.F("id"),
                name="mailbox_usage_order",
            ),
        ),
        migrations.RunPython(create_trigram_indexes, drop_trigram_indexes, elidable=False),
    ]
