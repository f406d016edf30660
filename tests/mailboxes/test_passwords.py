"""Stored password hashes: only forms Dovecot can match, verified as Dovecot verifies them."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from argon2 import PasswordHasher
from django.core.exceptions import ValidationError

from mailboxes.passwords import clean_password_hash, hash_password, verify_password


def doveadm_hash(scheme: str, password: str) -> str:
    """A hash made by Dovecot's own tool, as a migration from another server brings it."""
    if shutil.which("doveadm") is None:
        pytest.skip("doveadm is not installed")
    out = subprocess.run(
        ["doveadm", "pw", "-s", scheme, "-p", password], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "BLF-CRYPT", "ARGON2ID"])
def test_hashes_made_by_doveadm_are_accepted_and_verify(scheme: str) -> None:
    made = doveadm_hash(scheme, "Brave-Otter-2041")

    stored = clean_password_hash(made)

    assert stored == made
    assert verify_password(stored, "Brave-Otter-2041")
    assert not verify_password(stored, "Brave-Otter-2042")


def test_postamts_own_and_djangos_argon2_hashes_are_accepted() -> None:
    own = hash_password("Brave-Otter-2041")
    django_style = "{ARGON2ID}" + PasswordHasher(parallelism=8, memory_cost=1024).hash("x-Pass-1")

    assert clean_password_hash(own) == own
    assert verify_password(clean_password_hash(django_style), "x-Pass-1")


def test_a_scheme_is_written_as_dovecot_spells_it_and_a_bare_hash_gets_its_scheme() -> None:
    made = doveadm_hash("SHA512-CRYPT", "secret-Pass-1")
    bare = made.removeprefix("{SHA512-CRYPT}")

    assert clean_password_hash(" {sha512-crypt}" + bare + " ") == made
    assert clean_password_hash(bare) == made


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{MD5-CRYPT}$1$abcdefgh$0123456789abcdefghijkl", "{MD5-CRYPT} is not accepted"),
        ("{PLAIN}secret", "{PLAIN} is not accepted"),
        ("secret", "not a password hash Dovecot understands"),
        ("{SHA512-CRYPT}$6$abc$short", "not a valid {SHA512-CRYPT} hash"),
        ("{BLF-CRYPT}$2y$05$tooshort", "not a valid {BLF-CRYPT} hash"),
        ("{ARGON2ID}$argon2id$v=19$m=4,t=1,p=1$c2FsdHNhbHQ$" + "A" * 22, "{ARGON2ID} hash"),
    ],
)
def test_a_hash_dovecot_would_refuse_is_refused_without_repeating_it(
    value: str, message: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        clean_password_hash(value)

    text = " ".join(exc.value.messages)
    assert message in text
    assert value.split("}", 1)[-1] not in text


def test_verify_refuses_what_it_does_not_know() -> None:
    assert not verify_password("{PLAIN}secret", "secret")
    assert not verify_password("secret", "secret")
    assert not verify_password("{SHA512-CRYPT}$6$abc$short", "secret")
