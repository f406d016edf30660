"""copy_rows: the rows a backup run writes arrive as the ORM would have written them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import IntegrityError, connection, transaction

from backups.models import StoredMessage
from backups.services import repository_for
from provider.db import copy_rows
from tests.factories import make_mailbox

FIELDS = ["repository", "folder", "uidvalidity", "uid", "sha256", "size", "flags",
          "internal_date", "message_id", "first_seq"]  # fmt: skip
BERLIN_SUMMER = timezone(timedelta(hours=2))


def _rows(repository_id: int) -> list[tuple[object, ...]]:
    return [
        (repository_id, "Entwürfe/Ä", 7, 1, "a" * 64, 120, ["\\Seen", "$Label1"],
         datetime(2025, 6, 1, 9, 30, tzinfo=BERLIN_SUMMER), "<one@example.org>", 1),
        (repository_id, "INBOX", 7, 2, "b" * 64, 5_000_000_000, [],
         datetime(2025, 1, 1, 0, 0, tzinfo=UTC), "", 1),
    ]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("vendor", ["postgresql", "other"])
def test_rows_come_back_with_their_values(vendor, monkeypatch):
    repository = repository_for(make_mailbox("anna"))

    with monkeypatch.context() as patch:
        if vendor != connection.vendor:  # the bulk_create path, as SQLite takes it
            patch.setattr(connection, "vendor", vendor)
        copy_rows(StoredMessage, FIELDS, iter(_rows(repository.pk)))

    stored = StoredMessage.objects.filter(repository=repository).order_by("uid")
    assert [
        (m.folder, m.uid, m.sha256, m.size, m.flags, m.internal_date, m.message_id, m.last_seq)
        for m in stored
    ] == [
        ("Entwürfe/Ä", 1, "a" * 64, 120, ["\\Seen", "$Label1"],
         datetime(2025, 6, 1, 7, 30, tzinfo=UTC), "<one@example.org>", None),
        ("INBOX", 2, "b" * 64, 5_000_000_000, [],
         datetime(2025, 1, 1, tzinfo=UTC), "", None),
    ]  # fmt: skip
    # The JSON is real JSON: the database can look inside it.
    labelled = StoredMessage.objects.filter(flags__contains=["$Label1"])
    assert list(labelled.values_list("uid", flat=True)) == [1]


@pytest.mark.django_db
def test_a_row_that_breaks_a_constraint_inserts_nothing():
    repository = repository_for(make_mailbox("anna"))
    rows = _rows(repository.pk)

    with pytest.raises(IntegrityError), transaction.atomic():
        copy_rows(StoredMessage, FIELDS, [*rows, rows[0]])

    assert not StoredMessage.objects.filter(repository=repository).exists()
