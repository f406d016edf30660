"""age encryption: the worker seals with the public key only; the identity opens."""

from __future__ import annotations

import gzip
import io
import stat

import pyrage
import pytest
import zstandard
from django.core.management import CommandError, call_command

from backups import crypto


def test_sealed_data_is_zstd_inside_age(backup_settings, backup_keys):
    sealed = crypto.seal(b"Subject: hello\r\n\r\nsecret body\r\n", crypto.recipients())

    assert b"secret body" not in sealed
    assert sealed.startswith(b"age-encryption.org/v1")
    # What a hoster can do by hand: age -d -i identity | zstd -d
    inner = pyrage.decrypt(sealed, [backup_keys.identity])
    assert zstandard.ZstdDecompressor().decompress(inner) == (
        b"Subject: hello\r\n\r\nsecret body\r\n"
    )


def test_objects_written_with_gzip_before_zstd_still_open(restore_side, backup_keys):
    old = pyrage.encrypt(
        gzip.compress(b"from an older Postamt", mtime=0), [backup_keys.identity.to_public()]
    )

    assert crypto.unseal(old, crypto.identities()) == b"from an older Postamt"


def test_damaged_compressed_data_is_a_clear_failure(restore_side, backup_keys):
    damaged = pyrage.encrypt(
        b"\x28\xb5\x2f\xfd not really zstd", [backup_keys.identity.to_public()]
    )

    with pytest.raises(crypto.DecryptFailed):
        crypto.unseal(damaged, crypto.identities())


def test_the_worker_has_no_identity_and_a_wrong_one_cannot_open(backup_settings):
    sealed = crypto.seal(b"private", crypto.recipients())

    with pytest.raises(crypto.KeyMissing):
        crypto.identities()
    with pytest.raises(crypto.DecryptFailed):
        crypto.unseal(sealed, [pyrage.x25519.Identity.generate()])


def test_the_restore_side_opens_with_the_identity_file(restore_side):
    sealed = crypto.seal(b"private", crypto.recipients())
    assert crypto.unseal(sealed, crypto.identities()) == b"private"


def test_several_recipients_each_can_open(backup_settings, backup_keys):
    escrow = pyrage.x25519.Identity.generate()
    backup_settings.BACKUP_PUBLIC_KEY = f"{backup_keys.public}, {escrow.to_public()}"

    sealed = crypto.seal(b"both", crypto.recipients())

    assert crypto.unseal(sealed, [backup_keys.identity]) == b"both"
    assert crypto.unseal(sealed, [escrow]) == b"both"


def test_a_missing_or_bad_public_key_is_a_configuration_error(settings):
    settings.BACKUP_PUBLIC_KEY = ""
    with pytest.raises(crypto.KeyMissing):
        crypto.recipients()
    settings.BACKUP_PUBLIC_KEY = "age1notakey"
    with pytest.raises(crypto.KeyMissing):
        crypto.recipients()


def test_backup_keygen_writes_a_private_identity_and_prints_the_public_key(tmp_path, settings):
    path = tmp_path / "identity.txt"
    out = io.StringIO()

    call_command("backup_keygen", str(path), stdout=out, stderr=io.StringIO())

    public = out.getvalue().strip()
    assert public.startswith("age1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"# public key: {public}" in path.read_text()
    settings.BACKUP_PUBLIC_KEY = public
    settings.BACKUP_IDENTITY_FILE = str(path)
    assert crypto.unseal(crypto.seal(b"x", crypto.recipients()), crypto.identities()) == b"x"


def test_backup_keygen_never_overwrites_a_key_by_accident(tmp_path):
    path = tmp_path / "identity.txt"
    call_command("backup_keygen", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    before = path.read_text()

    with pytest.raises(CommandError, match="exists"):
        call_command("backup_keygen", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert path.read_text() == before

    call_command("backup_keygen", str(path), "--force", stdout=io.StringIO(), stderr=io.StringIO())
    assert path.read_text() != before
