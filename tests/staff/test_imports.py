"""The import and export pages: upload → every bad row, or what would be created → confirm →
the result and the generated passwords, once; large files on a worker with a progress bar."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, Customer, User
from mailboxes import imports
from mailboxes.models import GIB, ImportJob, Mailbox, Plan
from mailboxes.passwords import verify_password
from tests.factories import make_customer, make_domain, make_plan, make_server
from tests.mailboxes.test_imports import HEADER, SHA512

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan() -> Plan:
    make_server("mx1")
    return make_plan(name="IMAP 10G", default_quota_bytes=2 * GIB, max_quota_bytes=10 * GIB)


@pytest.fixture
def staff(client: Client) -> User:
    user = User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    client.force_login(user)
    return user


def upload(client: Client, *rows: str, name: str = "kunden.csv", bom: bool = True):  # type: ignore[no-untyped-def]
    text = ("\ufeff" if bom else "") + "\r\n".join([HEADER, *rows]) + "\r\n"
    file = SimpleUploadedFile(name, text.encode(), content_type="text/csv")
    return client.post(reverse("staff:import_start"), {"file": file})


def test_only_staff_reach_the_pages(client: Client, plan) -> None:
    job = ImportJob.objects.create(file_name="x.csv", actor_name="x")
    urls = [
        reverse("staff:import_start"),
        reverse("staff:import_job", args=[job.pk]),
        reverse("staff:import_run", args=[job.pk]),
        reverse("staff:import_passwords", args=[job.pk]),
        reverse("staff:export"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    client.force_login(User.objects.create_user("kunde", customer=make_customer()))
    for url in urls:
        assert client.get(url).status_code == 404, url
        assert client.post(url).status_code == 404, url
    assert ImportJob.objects.get().status == ImportJob.Status.CHECKED


def test_the_page_explains_the_columns_and_links_the_export(client: Client, staff) -> None:
    response = client.get(reverse("staff:import_start"))

    page = response.content.decode()
    assert response.status_code == 200
    assert HEADER in page
    assert reverse("staff:export") in page
    assert 'aria-current="page">Import and export' in page


def test_bad_rows_are_listed_with_line_column_and_reason_and_nothing_is_kept(
    client: Client, staff, plan
) -> None:
    response = upload(
        client,
        f"Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,{SHA512}",
        f"Acme,,,acme.example,,info,,IMAP 10G,,,{SHA512}",
        "Acme,,,acme.example,,shop,,IMAP 10G,,,{SHA512-CRYPT}$6$abc$cut",
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "kunden.csv: 2 rows cannot be imported" in page
    assert "The mailbox info@acme.example is also in row 2." in page
    assert "Dovecot would refuse every login with it" in page
    rows = re.findall(r'<td class="num">(\d+)</td>\s*<td><code>(\w+)</code></td>', page)
    assert rows == [("3", "mailbox"), ("4", "password_hash")]
    assert not ImportJob.objects.exists()
    assert not Customer.objects.exists()


def test_a_file_that_cannot_be_read_is_a_form_error(client: Client, staff) -> None:
    file = SimpleUploadedFile("x.csv", "customer\nM\xfcller\n".encode("latin-1"))

    response = client.post(reverse("staff:import_start"), {"file": file})

    assert response.status_code == 400
    assert "not UTF-8 text (line 2)" in response.content.decode()


def test_a_good_file_is_confirmed_then_imported_with_the_passwords_offered_once(
    client: Client, staff, plan
) -> None:
    # A semicolon file, as German spreadsheets write it.
    text = "\ufeff" + "\r\n".join(
        [
            HEADER.replace(",", ";"),
            "Bäckerei Müller;inhaber@mueller.example;de;bäckerei-müller.de;;"
            f"anna;;IMAP 10G;5G;;{SHA512}",
            "Bäckerei Müller;;;bäckerei-müller.de;;laden;;IMAP 10G;;;",
        ]
    )
    file = SimpleUploadedFile("kunden.csv", text.encode(), content_type="text/csv")
    response = client.post(reverse("staff:import_start"), {"file": file})

    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:import_job", args=[job.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Every row is fine" in page
    assert "<dt>Mailboxes</dt><dd>2</dd>" in page
    assert "1 mailbox has no password" in page
    assert not Customer.objects.exists()  # a dry run so far

    response = client.post(reverse("staff:import_run", args=[job.pk]), REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()

    assert "Imported. Created:" in page
    assert Mailbox.objects.count() == 2
    assert Mailbox.objects.get(local_part="anna").password_hash == SHA512
    entry = AuditEntry.objects.get(action="import.run")
    assert (entry.actor, entry.ip_address) == (staff, "203.0.113.7")
    assert "1 password was generated. Download it now" in page

    download = client.post(reverse("staff:import_passwords", args=[job.pk]))
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in download["Content-Disposition"]
    lines = download.content.decode().splitlines()
    assert lines[0] == "mailbox,login,password"
    shown, login, password = lines[1].split(",")
    assert (shown, login) == ("laden@bäckerei-müller.de", "laden@xn--bckerei-mller-bfb28a.de")
    assert verify_password(Mailbox.objects.get(local_part="laden").password_hash, password)

    again = client.post(reverse("staff:import_passwords", args=[job.pk]), follow=True)
    assert "given out only once" in again.content.decode()
    assert password not in again.content.decode()
    assert (
        "were downloaded on"
        in client.get(reverse("staff:import_job", args=[job.pk])).content.decode()
    )


def test_confirming_twice_imports_once(client: Client, staff, plan) -> None:
    upload(client, f"Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,{SHA512}")
    job = ImportJob.objects.get()

    client.post(reverse("staff:import_run", args=[job.pk]))
    response = client.post(reverse("staff:import_run", args=[job.pk]), follow=True)

    assert "This import was started already." in response.content.decode()
    assert Mailbox.objects.count() == 1


def test_only_who_ran_the_import_gets_its_passwords(client: Client, staff, plan) -> None:
    upload(client, "Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,")
    job = ImportJob.objects.get()
    client.post(reverse("staff:import_run", args=[job.pk]))
    client.force_login(User.objects.create_user("otto", is_staff=True))

    page = client.get(reverse("staff:import_job", args=[job.pk])).content.decode()
    response = client.post(reverse("staff:import_passwords", args=[job.pk]))

    assert "offered only to whoever ran the import" in page
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.passwords  # still there for hanna


def test_a_large_file_runs_on_a_worker_and_the_page_polls_its_progress(
    client: Client, staff, plan, sent_tasks, django_capture_on_commit_callbacks
) -> None:
    rows = [
        f"Kunde {i // 50},k{i // 50}@example.org,,k{i // 50}.example,,u{i},,IMAP 10G,,,{SHA512}"
        for i in range(imports.INLINE_MAX_ROWS + 1)
    ]
    upload(client, *rows)
    job = ImportJob.objects.get()
    url = reverse("staff:import_job", args=[job.pk])
    assert "A worker imports it" in client.get(url).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("staff:import_run", args=[job.pk]))

    assert sent_tasks == [("mailboxes.run_import", (job.pk,), {})]
    assert not Mailbox.objects.exists()
    page = client.get(url).content.decode()
    assert f'hx-get="{url}"' in page and "Waiting for a worker" in page
    partial = client.get(url, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200
    assert "<html" not in partial.content.decode()
    assert 'hx-trigger="every 1s"' in partial.content.decode()

    imports.run_job(job.pk)  # what the worker does

    done = client.get(url, HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # htmx stops polling
    assert "Imported. Created:" in done.content.decode()
    assert "hx-get" not in done.content.decode()
    assert Mailbox.objects.count() == imports.INLINE_MAX_ROWS + 1


def test_a_run_that_finds_new_conflicts_shows_them_and_imports_nothing(
    client: Client, staff, plan
) -> None:
    upload(client, f"Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,{SHA512}")
    job = ImportJob.objects.get()
    make_domain(make_customer("Schneller"), "acme.example")

    response = client.post(reverse("staff:import_run", args=[job.pk]), follow=True)

    page = response.content.decode()
    assert "Nothing was imported." in page
    assert "The domain acme.example belongs to the customer “Schneller”." in page
    assert not Mailbox.objects.exists()


def test_the_export_is_a_csv_download_in_the_import_columns(client: Client, staff, plan) -> None:
    upload(client, f"Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,{SHA512}")
    client.post(reverse("staff:import_run", args=[ImportJob.objects.get().pk]))

    response = client.get(reverse("staff:export"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'attachment; filename="postamt-' in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert body.splitlines() == [
        "\ufeff" + HEADER,
        f"Acme,it@acme.example,en,acme.example,mx1,info,imap,IMAP 10G,{2 * GIB},,",
    ]
    assert SHA512 not in body


def test_the_pages_speak_german(client: Client, staff, plan) -> None:
    client.cookies["django_language"] = "de"
    page = client.get(reverse("staff:import_start"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Importieren und exportieren" in page

    response = upload(client, f"Acme,it@acme.example,,acme.example,,info,,Gold,,,{SHA512}")
    assert "Es gibt keinen Tarif „Gold“" in response.content.decode()
