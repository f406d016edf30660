"""manage.py backup_check: what it finds, at each depth, and how it says so."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from backups.models import Blob, Pack
from backups.packs import pack_key
from tests.backups.helpers import make_snapshot, message
from tests.factories import make_mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailbox():  # type: ignore[no-untyped-def]
    return make_mailbox("anna")


@pytest.fixture
def snapshot(restore_side, mailbox):  # type: ignore[no-untyped-def]
    make_snapshot(mailbox, {"INBOX": [(message("one"), []), (message("two"), ["\\Seen"])]})
    return make_snapshot(mailbox, {"INBOX": [(message("two"), [])], "Archiv": [(message("x"), [])]})


def check(*args: str) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("backup_check", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


def pack_file(settings, snapshot) -> Path:  # type: ignore[no-untyped-def]
    pack = Pack.objects.filter(repository=snapshot.repository).order_by("pk").first()
    return Path(settings.BACKUP_ROOT) / pack_key(str(snapshot.repository.key), pack.name)


def test_a_sound_backup_is_ok_at_every_depth(snapshot):
    address = snapshot.repository.address
    for args in ((), ("--read-data",), (address.upper(), "--read-data")):
        out, _err, error = check(*args)
        assert error is None, out
        assert out.startswith(f"{address}: 2 snapshots, 3 stored messages in 2 packs")
        assert out.rstrip().endswith(": OK")


def test_a_missing_pack_is_found_without_reading_anything(snapshot, settings):
    pack_file(settings, snapshot).unlink()

    out, _err, error = check()

    assert error is not None and "1 backup has problems." in str(error)
    assert "pack missing:" in out


def test_a_flipped_bit_is_found_by_reading_the_data(snapshot, settings):
    path = pack_file(settings, snapshot)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))

    assert check()[2] is None  # same size: only reading finds it
    out, _err, error = check("--read-data")

    assert error is not None
    assert "pack damaged (its SHA-256 is not its name)" in out
    assert "message unreadable" in out  # and the message whose blob holds the bit


def test_the_index_pointing_at_the_wrong_blob_is_found_by_opening_messages(snapshot):
    first, second = Blob.objects.filter(repository=snapshot.repository).order_by("pk")[:2]
    first.offset, second.offset = second.offset, first.offset
    first.length, second.length = second.length, first.length
    first.save()
    second.save()

    out, _err, error = check("--read-data")

    assert error is not None and out.count("message unreadable:") == 2


def test_without_the_identity_it_says_what_it_could_not_open(snapshot, settings):
    settings.BACKUP_IDENTITY_FILE = ""
    path = pack_file(settings, snapshot)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))

    out, err, error = check("--read-data")

    assert "manifests and messages are not opened" in err
    assert error is not None and "pack damaged" in out and "message unreadable" not in out


def test_a_manifest_that_disagrees_with_the_database(snapshot, settings):
    Path(settings.BACKUP_ROOT, snapshot.manifest_key).write_bytes(
        Path(
            settings.BACKUP_ROOT, snapshot.repository.snapshots.get(seq=1).manifest_key
        ).read_bytes()
    )

    out, _err, error = check()

    assert error is not None and "snapshot 2: the manifest lists 2 messages, the database 2" in out


def test_an_unknown_address_is_refused(snapshot):
    _out, _err, error = check("nobody@example.com")
    assert error is not None and "No backups of: nobody@example.com" in str(error)


def test_what_prune_removes_while_the_check_runs_is_not_a_problem(snapshot, settings):
    from backups.check import check_repository
    from backups.crypto import identities

    repository = snapshot.repository
    first, second = Pack.objects.filter(repository=repository).order_by("pk")

    def prune_the_second_pack(line: str) -> None:
        if line.startswith("pack 1 "):  # as prune would: rows first, then the file
            Blob.objects.filter(pack=second).delete()
            second.delete()
            Path(settings.BACKUP_ROOT, pack_key(str(repository.key), second.name)).unlink()

    result = check_repository(
        repository, read_data=True, keys=identities(), progress=prune_the_second_pack
    )

    assert result.problems == []
    assert result.packs == 2 and result.blobs_opened == Blob.objects.filter(pack=first).count()
