"""Bulk inserts for the paths that write thousands of rows in one run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, models


def copy_rows(
    model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    """Insert rows of plain Python values, one per name in ``fields`` (a foreign key takes
    the id).

    On PostgreSQL this is one COPY. ``bulk_create`` prepares every value in Python and
    psycopg then splits its long statement again: for a backup's rows that cost more than
    reading the mail. Other databases (SQLite for local runs) get ``bulk_create``.
    """
    columns = [_column_field(model, name) for name in fields]
    if connection.vendor != "postgresql":
        attnames = [field.attname for field, _column in columns]
        model._default_manager.bulk_create(
            [model(**dict(zip(attnames, row, strict=True))) for row in rows], batch_size=500
        )
        return
    ops = connection.ops
    as_json = [
        (index, field.encoder)
        for index, (field, _column) in enumerate(columns)
        if isinstance(field, models.JSONField)
    ]
    names = ", ".join(ops.quote_name(column) for _field, column in columns)
    statement = f"COPY {ops.quote_name(model._meta.db_table)} ({names}) FROM STDIN"
    # The raw cursor's errors are turned into Django's (IntegrityError and so on) here.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(statement) as copy:
            for row in rows:
                if as_json:
                    row = list(row)
                    for index, encoder in as_json:
                        row[index] = ops.adapt_json_value(row[index], encoder)
                copy.write_row(row)


def _column_field(model: type[models.Model], name: str) -> tuple[models.Field, str]:
    """The field ``name`` and its column; a reverse relation is no field and has none."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or field.column is None:
        raise ValueError(f"{model.__name__}.{name} is not a column")
    return field, field.column
