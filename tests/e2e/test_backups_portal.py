"""A customer restores a backup in a real Chromium and watches it progress, then finds the
mail back over IMAP. The backup and the restore run on the real Celery worker."""

from __future__ import annotations

import hashlib
import re

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from backups import services
from backups.models import JobStatus
from mailboxes.services import mailbox_delete
from provider.celery import app
from tests.backups import helpers
from tests.backups.helpers import imap, mailbox_contents, message
from tests.e2e.accessibility import assert_accessible
from tests.e2e.test_portal import USER_PASSWORD, log_in
from tests.factories import make_customer, make_domain, make_mailbox
from tests.integration.test_backups import wait

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
restore_side = helpers.restore_side
MESSAGES = 1000


def test_customer_restores_a_backup_with_live_progress(
    page: Page,
    live_server,
    dovecot,
    mail_server,
    celery_worker,
    restore_side,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    customer = make_customer("Bäckerei Müller")
    mailbox = make_mailbox("anna", domain=make_domain(customer, "baeckerei-restore.example"))
    User.objects.create_user(
        "inhaber@example.org",
        email="inhaber@example.org",
        password=USER_PASSWORD,
        customer=customer,
    )
    with imap(dovecot, mailbox.address) as client:
        for start in range(0, MESSAGES, 500):
            batch = [message(f"Rechnung {i}", f"Betrag {i}") for i in range(start, start + 500)]
            client.multiappend("INBOX", batch)
    before = mailbox_contents(dovecot, mailbox.address)
    backup = wait(services.backup_request(mailbox=mailbox, actor="test"))
    assert backup.status == JobStatus.DONE, backup.error
    with imap(dovecot, mailbox.address) as client:  # the customer deletes everything
        client.select_folder("INBOX")
        client.delete_messages(client.search())
        client.expunge()

    log_in(page, live_server.url, "inhaber@example.org", USER_PASSWORD)
    page.goto(f"{live_server.url}/backups/mailboxes/{mailbox.pk}/")
    row = page.locator(f"#snapshot-{backup.snapshot.pk}")
    expect(row).to_contain_text(str(MESSAGES))  # its message count
    row.get_by_text("Restore…").click()
    assert_accessible(page, "backups, restore opened")
    row.get_by_label("Into a new folder").uncheck()  # back where the mail was
    # The worker stops taking backup work for a moment, so the job is seen waiting first.
    app.control.cancel_consumer("backup", reply=True)
    try:
        row.get_by_role("button", name="Restore", exact=True).click()
        expect(page.get_by_text("The restore has been started.")).to_be_visible()
        progress = page.locator("[id^=restore-job-]")
        expect(progress).to_contain_text(re.compile("queued", re.I))
        shot(page, "restore-queued")
        assert_accessible(page, "restore queued")
        page.evaluate("window.notReloaded = true")
    finally:
        app.control.add_consumer("backup", reply=True)
    expect(progress).to_contain_text(re.compile(r"\bdone\b", re.I), timeout=60_000)
    expect(progress).to_contain_text(f"{MESSAGES} restored")
    assert page.evaluate("window.notReloaded") is True  # htmx updated it in place
    shot(page, "restore-done")
    assert_accessible(page, "restore done")

    assert mailbox_contents(dovecot, mailbox.address) == before


def test_customer_picks_two_messages_from_a_backup_and_gets_them_back(
    page: Page,
    live_server,
    dovecot,
    mail_server,
    celery_worker,
    restore_side,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    customer = make_customer("Café Zucker")
    mailbox = make_mailbox("ben", domain=make_domain(customer, "cafe-restore.example"))
    User.objects.create_user(
        "ben@example.org", email="ben@example.org", password=USER_PASSWORD, customer=customer
    )
    wanted = [message("Angebot Hochzeitstorte"), message("Lieferschein März")]
    with imap(dovecot, mailbox.address) as client:
        client.multiappend("INBOX", [message("Newsletter"), *wanted, message("Werbung")])
    backup = wait(services.backup_request(mailbox=mailbox, actor="test"))
    assert backup.status == JobStatus.DONE, backup.error

    log_in(page, live_server.url, "ben@example.org", USER_PASSWORD)
    page.goto(f"{live_server.url}/backups/mailboxes/{mailbox.pk}/")
    page.locator(f"#snapshot-{backup.snapshot.pk}").get_by_role("link", name="Messages…").click()
    expect(page.get_by_role("row")).to_have_count(5)  # the heading and four messages
    page.get_by_role("row", name="Angebot Hochzeitstorte").get_by_role("checkbox").check()
    page.get_by_role("row", name="Lieferschein März").get_by_role("checkbox").check()
    shot(page, "messages-chosen")
    assert_accessible(page, "messages chosen")
    page.get_by_role("button", name="Restore the chosen messages").click()

    expect(page.get_by_text("The restore has been started.")).to_be_visible()
    progress = page.locator("[id^=restore-job-]")
    expect(progress).to_contain_text(re.compile(r"\bdone\b", re.I), timeout=60_000)
    expect(progress).to_contain_text("2 restored")
    restored = {name: items for name, items in mailbox_contents(dovecot, mailbox.address).items()
                if name.startswith("Restored ")}  # fmt: skip
    assert [len(items) for items in restored.values()] == [2]
    hashes = {sha for sha, _flags, _date in next(iter(restored.values()))}
    assert hashes == {hashlib.sha256(raw).hexdigest() for raw in wanted}


def test_customer_restores_a_deleted_mailbox_into_its_successor(
    page: Page,
    live_server,
    dovecot,
    mail_server,
    celery_worker,
    restore_side,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    customer = make_customer("Blumen Berta")
    domain = make_domain(customer, "blumen-restore.example")
    old = make_mailbox("laden", domain=domain)
    User.objects.create_user(
        "berta@example.org", email="berta@example.org", password=USER_PASSWORD, customer=customer
    )
    kept = [message("Lieferantenliste"), message("Preise 2026")]
    with imap(dovecot, old.address) as client:
        client.multiappend("INBOX", kept)
    backup = wait(services.backup_request(mailbox=old, actor="test"))
    assert backup.status == JobStatus.DONE, backup.error
    mailbox_delete(mailbox=old, actor="test")
    successor = make_mailbox("shop", domain=domain)

    log_in(page, live_server.url, "berta@example.org", USER_PASSWORD)
    page.get_by_role("link", name=old.address).click()  # under "Backups of deleted mailboxes"
    expect(page.get_by_text("This mailbox was deleted.")).to_be_visible()
    page.get_by_text("Restore…").click()
    page.get_by_label("Into the mailbox").select_option(label=successor.display_address)
    page.get_by_label("Into a new folder").uncheck()
    shot(page, "restore-deleted-mailbox")
    assert_accessible(page, "deleted mailbox, restore opened")
    page.get_by_role("button", name="Restore", exact=True).click()

    progress = page.locator("[id^=restore-job-]")
    expect(progress).to_contain_text(re.compile(r"\bdone\b", re.I), timeout=60_000)
    expect(progress).to_contain_text(f"into {successor.display_address}")
    inbox = mailbox_contents(dovecot, successor.address)["INBOX"]
    assert sorted(sha for sha, _flags, _date in inbox) == sorted(
        hashlib.sha256(raw).hexdigest() for raw in kept
    )
