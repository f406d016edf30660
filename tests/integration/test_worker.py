"""A real Celery worker on Redis reads a mailbox through Dovecot's master login."""

from __future__ import annotations

import pytest

from mailboxes.models import Mailbox, MailServer
from mailboxes.tasks import refresh_usage
from tests.factories import make_mailbox

pytestmark = pytest.mark.integration


def test_worker_measures_usage_via_master_login(
    dovecot, mail_server: MailServer, celery_worker, deliver
) -> None:
    mailbox = make_mailbox("anna")
    deliver(mailbox.address, "Subject: one\r\n\r\n" + "z" * 20_000 + "\r\n")

    used = refresh_usage.delay(mailbox.pk).get(timeout=30)

    mailbox.refresh_from_db()
    assert used == mailbox.used_bytes
    assert 20_000 <= mailbox.used_bytes < 30_000
    assert mailbox.usage_checked_at is not None
    assert mailbox.quota_bytes != mailbox.used_bytes  # limit and usage stay apart


def test_task_for_a_vanished_mailbox_does_nothing(mail_server: MailServer, celery_worker) -> None:
    assert refresh_usage.delay(987654).get(timeout=30) is None
    assert not Mailbox.objects.exists()
