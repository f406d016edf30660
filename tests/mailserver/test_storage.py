"""Removing a deleted mailbox's mail: a failure is reported and retried, never recorded as done."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailboxes.models import StoragePurge
from mailboxes.usage import pending_purges, purge_deleted_mailbox
from tests.factories import make_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def mail_root(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    settings.DOVECOT = {**settings.DOVECOT, "SERVER_NAME": "test", "ROOT": tmp_path}
    (tmp_path / "mail").mkdir()
    return tmp_path / "mail"


def test_a_purge_that_cannot_delete_stays_pending_with_the_reason(mail_root: Path) -> None:
    # Something that is not a mail folder sits where the mailbox's mail was: rmtree fails.
    blocker = mail_root / "example.org" / "anna"
    blocker.parent.mkdir()
    blocker.write_text("not a maildir")
    purge = StoragePurge.objects.create(
        server=make_server("test"), storage_path="example.org/anna", address="anna@example.org"
    )

    assert purge_deleted_mailbox(purge.pk) is False

    purge.refresh_from_db()
    assert purge.done_at is None
    assert "could not delete" in purge.error and "anna" in purge.error
    assert purge.pk in pending_purges()  # the sweeper tries again
    assert blocker.exists()

    blocker.unlink()
    assert purge_deleted_mailbox(purge.pk) is True
    purge.refresh_from_db()
    assert purge.done_at is not None and purge.error == ""


def test_mail_that_is_already_gone_counts_as_purged(mail_root: Path) -> None:
    purge = StoragePurge.objects.create(
        server=make_server("test"), storage_path="example.org/bob", address="bob@example.org"
    )
    assert purge_deleted_mailbox(purge.pk) is True


def test_a_maildir_is_removed_whole(mail_root: Path) -> None:
    maildir = mail_root / "example.org" / "carl"
    (maildir / "cur").mkdir(parents=True)
    (maildir / "cur" / "1.msg").write_text("hello")
    purge = StoragePurge.objects.create(
        server=make_server("test"), storage_path="example.org/carl", address="carl@example.org"
    )
    assert purge_deleted_mailbox(purge.pk) is True
    assert not maildir.exists()
