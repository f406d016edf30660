"""``manage.py import_csv`` and ``export_csv``: the same checks as the staff page, for scripts."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from accounts.models import AuditEntry, Customer
from mailboxes.models import GIB, Mailbox, Plan
from mailboxes.passwords import verify_password
from tests.factories import make_plan, make_server
from tests.mailboxes.test_imports import HEADER, SHA512

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


@pytest.fixture
def plan() -> Plan:
    make_server("mx1")
    return make_plan(name="IMAP 10G", default_quota_bytes=2 * GIB, max_quota_bytes=10 * GIB)


def write(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "kunden.csv"
    path.write_text("\r\n".join([HEADER, *rows]) + "\r\n", encoding="utf-8")
    return path


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_dry_run_says_what_would_be_created_and_changes_nothing(tmp_path: Path, plan) -> None:
    path = write(
        tmp_path,
        f"Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,{SHA512}",
        "Acme,,,acme.example,,shop,,IMAP 10G,,,",
    )

    out, _err = run("import_csv", str(path), "--dry-run")

    assert out.strip() == (
        f"{path} is fine: it would create 1 customer, 1 domain and 2 mailboxes. 1 mailbox has "
        "no password: one would be generated. Nothing was changed (dry run)."
    )
    assert not Customer.objects.exists()


def test_bad_rows_are_listed_on_stderr_and_the_command_fails(tmp_path: Path, plan) -> None:
    path = write(
        tmp_path,
        f"Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,{SHA512}",
        f"Acme,,,acme.example,,in fo,,Gold,,,{SHA512}",
    )
    err = StringIO()

    with pytest.raises(CommandError) as exc:
        call_command("import_csv", str(path), stdout=StringIO(), stderr=err)

    assert exc.value.returncode == 1
    assert str(exc.value) == "1 row cannot be imported; nothing was changed."
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("row 3, mailbox: “in fo” is not a valid mailbox name")
    assert lines[1] == "row 3, plan: There is no plan “Gold”. Plans: IMAP 10G."
    assert not Customer.objects.exists()


def test_import_creates_everything_audited_as_the_cli_user(tmp_path: Path, plan) -> None:
    path = write(tmp_path, f"Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,{SHA512}")

    out, _err = run("import_csv", str(path), "--json")

    assert json.loads(out) == {
        "file": str(path),
        "rows": 1,
        "customers": 1,
        "domains": 1,
        "mailboxes": 1,
        "passwords_generated": 0,
        "dry_run": False,
        "problems": [],
    }
    assert Mailbox.objects.get().password_hash == SHA512
    entry = AuditEntry.objects.get(action="import.run")
    assert entry.actor_name == f"cli:{getpass.getuser()}"
    assert entry.details["file"] == "kunden.csv"


def test_generated_passwords_go_to_a_new_private_file(tmp_path: Path, plan) -> None:
    path = write(tmp_path, "Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,")
    target = tmp_path / "passwords.csv"

    out, _err = run("import_csv", str(path), "--passwords-to", str(target))

    assert "1 generated password is in" in out
    assert os.stat(target).st_mode & 0o777 == 0o600
    [header, line] = target.read_text().splitlines()
    assert header == "mailbox,login,password"
    address, login, password = line.split(",")
    assert (address, login) == ("info@acme.example", "info@acme.example")
    assert verify_password(Mailbox.objects.get().password_hash, password)


def test_generated_passwords_need_a_file_before_anything_is_created(tmp_path: Path, plan) -> None:
    path = write(tmp_path, "Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,")
    existing = tmp_path / "there.csv"
    existing.write_text("keep")

    with pytest.raises(CommandError, match="give --passwords-to FILE") as exc:
        run("import_csv", str(path))
    assert exc.value.returncode == 2
    with pytest.raises(CommandError, match="cannot be created"):
        run("import_csv", str(path), "--passwords-to", str(existing))

    assert existing.read_text() == "keep"
    assert not Customer.objects.exists()


def test_an_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as exc:
        run("import_csv", str(tmp_path / "missing.csv"))
    assert exc.value.returncode == 2


def test_a_file_that_is_not_csv_is_refused(tmp_path: Path, plan) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes("customer\r\nM\xfcller\r\n".encode("latin-1"))

    with pytest.raises(CommandError, match="not UTF-8 text"):
        run("import_csv", str(path))


def test_export_writes_what_import_reads(tmp_path: Path, plan) -> None:
    path = write(tmp_path, f"Acme,it@acme.example,,acme.example,,info,,IMAP 10G,,,{SHA512}")
    run("import_csv", str(path))

    out, _err = run("export_csv")
    target = tmp_path / "export.csv"
    run("export_csv", "--output", str(target))

    assert (
        out.splitlines()[1]
        == f"Acme,it@acme.example,en,acme.example,mx1,info,imap,IMAP 10G,{2 * GIB},,"
    )
    assert target.read_bytes().decode() == out
    with pytest.raises(CommandError, match="cannot be created"):
        run("export_csv", "--output", str(target))
