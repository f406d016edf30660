"""The staff import in a real Chromium: a file with bad rows, then a good one, confirmed, its
generated passwords downloaded once, and an imported mailbox logging in over IMAP."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from accounts.models import User
from mailboxes.models import GIB, Mailbox, MailServer
from tests.e2e.test_portal import log_in_staff
from tests.factories import make_plan
from tests.integration.test_dovecot_logins import imap_can_login
from tests.integration.test_import_logins import doveadm_pw
from tests.twofactor import totp_device

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

HEADER = "customer;contact_email;language;domain;mailbox;plan;password_hash"
ANNA = "Bäckerei Müller;inhaber@mueller.example;de;bäckerei-müller.de;anna;IMAP 10G;"


def test_staff_checks_fixes_imports_and_downloads_the_passwords(
    page: Page,
    live_server,
    dovecot,
    mail_server: MailServer,
    tmp_path: Path,
    shot,  # type: ignore[no-untyped-def]
) -> None:
    make_plan(name="IMAP 10G", default_quota_bytes=GIB, max_quota_bytes=10 * GIB)
    device = totp_device(
        User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    )
    sha = doveadm_pw("SHA512-CRYPT", "Migrated-Pass-1")
    bad = tmp_path / "kunden.csv"
    bad.write_text(
        "\ufeff"
        + "\r\n".join(
            [
                HEADER,
                ANNA + sha,
                "Bäckerei Müller;;;bäckerei-müller.de;anna;IMAP 10G;",
                "Bäckerei Müller;;;bäckerei-müller.de;laden;Gold;{MD5-CRYPT}$1$x$y",
            ]
        ),
        encoding="utf-8",
    )

    log_in_staff(page, live_server.url, "hanna", "Staff-Pass-2041", device)
    page.get_by_role("link", name="Import and export").click()
    page.get_by_label("CSV file").set_input_files(str(bad))
    page.get_by_role("button", name="Check the file").click()

    problems = page.locator("#import-problems")
    expect(problems).to_contain_text("kunden.csv: 2 rows cannot be imported")
    expect(problems).to_contain_text("The mailbox anna@bäckerei-müller.de is also in row 2.")
    expect(problems).to_contain_text("There is no plan “Gold”")
    expect(problems).to_contain_text("{MD5-CRYPT} is not accepted")
    shot(page, "problems")

    good = tmp_path / "kunden-korrigiert.csv"
    good.write_text(
        "\r\n".join(
            [
                HEADER,
                ANNA + sha,
                "Bäckerei Müller;;;bäckerei-müller.de;laden;IMAP 10G;",
            ]
        ),
        encoding="utf-8",
    )
    page.get_by_label("CSV file").set_input_files(str(good))
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_text("Every row is fine")).to_be_visible()
    expect(page.get_by_text("1 mailbox has no password")).to_be_visible()
    shot(page, "checked")
    assert not Mailbox.objects.exists()

    page.get_by_role("button", name="Import now").click()
    expect(page.get_by_text("Imported. Created:")).to_be_visible()
    shot(page, "imported")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the passwords (CSV)").click()
    lines = Path(download_info.value.path()).read_text(encoding="utf-8").splitlines()
    shown, login, password = lines[1].split(",")
    assert shown == "laden@bäckerei-müller.de"

    assert imap_can_login(dovecot, "anna@xn--bckerei-mller-bfb28a.de", "Migrated-Pass-1")
    assert imap_can_login(dovecot, login, password)
    page.reload()
    expect(page.get_by_text("The generated passwords were downloaded on")).to_be_visible()
