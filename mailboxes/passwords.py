"""Mailbox passwords: hashes in a scheme Dovecot verifies itself, never clear text.

Postamt hashes new passwords as ``{ARGON2ID}``. A CSV import may bring hashes made elsewhere
(another panel, a migration) in the other schemes Dovecot verifies natively, ``{SHA512-CRYPT}``
and ``{BLF-CRYPT}``; ``clean_password_hash`` accepts exactly those, in a form Dovecot can match.

Postamt itself never checks a mailbox password in production: every IMAP and POP3 login is
verified by Dovecot from the ``dovecot_users`` view. ``verify_password`` answers as Dovecot
would for every scheme stored here (the crypt schemes through the same libc ``crypt`` Dovecot
calls), for tests and checks.
"""

from __future__ import annotations

import ctypes
import re
import secrets
import string
import threading
from functools import cache
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from django.contrib.auth.password_validation import PasswordValidator

# OWASP's argon2id minimum (19 MiB, t=2, p=1): ~20 ms per login instead of ~115 ms at 64 MiB,
# which matters when every IMAP/POP3 login of the fleet pays it.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
ARGON2_PREFIX = "{ARGON2ID}"
_ALPHABET = string.ascii_letters + string.digits

# The schemes a stored hash may have, and the exact form Dovecot can match for each.
#
# ARGON2ID: libsodium's encoded form (argon2-cffi, Django after its ``argon2`` prefix); a salt
# of at least 8 bytes and a hash of at least 16 (libsodium refuses shorter ones).
# SHA512-CRYPT and BLF-CRYPT are checked by libc's crypt(), which recomputes the whole string
# from its settings and compares: a salt longer than it uses, rounds outside 1000–999999999 or
# leading zeros, or unused bits set in the last character of a salt or hash (crypt writes them
# as zero) make a string no password can ever match.
_HASH_FORMATS = {
    "ARGON2ID": re.compile(
        r"\$argon2id\$v=19\$m=(?P<m>[1-9][0-9]{0,9}),t=(?P<t>[1-9][0-9]{0,9}),"
        r"p=(?P<p>[1-9][0-9]{0,7})\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{22,}"
    ),
    "SHA512-CRYPT": re.compile(
        r"\$6\$(?:rounds=(?P<rounds>[1-9][0-9]{3,8})\$)?[./0-9A-Za-z]{1,16}"
        r"\$[./0-9A-Za-z]{85}[./01]"
    ),
    "BLF-CRYPT": re.compile(
        r"\$2[aby]\$(?:0[4-9]|[12][0-9]|3[01])\$"
        r"[./A-Za-z0-9]{21}[.Oeu][./A-Za-z0-9]{30}[.CGKOSWaeimquy26]"
    ),
}
HASH_SCHEMES = tuple(_HASH_FORMATS)
# A bare hash (no ``{SCHEME}``), as some panels store them, is unambiguous by its own prefix.
_BARE_PREFIXES = {"$argon2id$": "ARGON2ID", "$6$": "SHA512-CRYPT", "$2a$": "BLF-CRYPT"} | {
    "$2b$": "BLF-CRYPT",
    "$2y$": "BLF-CRYPT",
}
_SCHEME_RE = re.compile(r"^\{([A-Za-z0-9._-]+)\}(.*)$", re.DOTALL)


def hash_password(password: str) -> str:
    return ARGON2_PREFIX + _hasher.hash(password)


def _scheme_list() -> str:
    return ", ".join(f"{{{scheme}}}" for scheme in HASH_SCHEMES)


def clean_password_hash(value: str) -> str:
    """The hash as stored for Dovecot (``{SCHEME}`` in upper case first), or ValidationError
    saying why Dovecot would refuse every login with it. The hash itself is never repeated."""
    value = value.strip()
    match = _SCHEME_RE.match(value)
    if match:
        scheme, body = match.group(1).upper(), match.group(2)
    else:
        scheme = next((s for p, s in _BARE_PREFIXES.items() if value.startswith(p)), "")
        body = value
        if not scheme:
            raise ValidationError(
                _(
                    "This is not a password hash Dovecot understands: give it with its scheme, "
                    "one of %(schemes)s (for example {SHA512-CRYPT}$6$…)."
                )
                % {"schemes": _scheme_list()}
            )
    pattern = _HASH_FORMATS.get(scheme)
    if pattern is None:
        raise ValidationError(
            _("The password scheme {%(scheme)s} is not accepted; use one of %(schemes)s.")
            % {"scheme": scheme, "schemes": _scheme_list()}
        )
    found = pattern.fullmatch(body)
    if found is None or not _sane_parameters(scheme, found):
        raise ValidationError(
            _(
                "This is not a valid {%(scheme)s} hash (cut short, a wrong character or a "
                "parameter out of range): Dovecot would refuse every login with it."
            )
            % {"scheme": scheme}
        )
    return f"{{{scheme}}}{body}"


def _sane_parameters(scheme: str, found: re.Match[str]) -> bool:
    if scheme == "SHA512-CRYPT":
        return found.group("rounds") is None or 1000 <= int(found.group("rounds")) <= 999_999_999
    if scheme == "ARGON2ID":
        memory, passes, lanes = (int(found.group(n)) for n in ("m", "t", "p"))
        # Argon2's own limits: 8 KiB of memory per lane, lanes below 2^24, memory below 2^32 KiB.
        return lanes < 2**24 and 8 * lanes <= memory < 2**32 and passes < 2**32
    return True


@cache
def _libcrypt() -> ctypes.CDLL:
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib


# crypt() returns a static buffer: one call at a time.
_crypt_lock = threading.Lock()


def _crypt(password: str, setting: str) -> str:
    with _crypt_lock:
        result = _libcrypt().crypt(password.encode(), setting.encode())
    return (result or b"*").decode("ascii", "replace")


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` logs in against ``stored``, as Dovecot decides it."""
    match = _SCHEME_RE.match(stored)
    if match is None:
        return False
    scheme, body = match.group(1).upper(), match.group(2)
    if scheme == "ARGON2ID":
        try:
            return _hasher.verify(body, password)
        except (VerificationError, InvalidHashError):
            return False
    if scheme in ("SHA512-CRYPT", "BLF-CRYPT"):
        computed = _crypt(password, body)
        return not computed.startswith("*") and secrets.compare_digest(computed, body)
    return False


def generate_password(length: int = 20) -> str:
    """A random password that reads unambiguously and survives copy and paste."""
    while True:
        candidate = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        if any(c.isdigit() for c in candidate) and any(c.isupper() for c in candidate):
            return candidate


_VALIDATORS: list[PasswordValidator] = [
    password_validation.CommonPasswordValidator(),
    password_validation.NumericPasswordValidator(),
]


def validate_mailbox_password(password: str, address: str) -> None:
    """Raise ValidationError listing every rule the password breaks."""
    errors: list[str] = []
    minimum = settings.MAILBOX_MIN_PASSWORD_LENGTH
    if len(password) < minimum:
        errors.append(_("The password must have at least %(min)d characters.") % {"min": minimum})
    if any(c.isspace() for c in password) or any(ord(c) < 32 for c in password):
        errors.append(_("The password must not contain spaces or control characters."))
    local_part = address.split("@", 1)[0].lower()
    if len(local_part) >= 3 and local_part in password.lower():
        errors.append(_("The password must not contain the mailbox name."))
    for validator in _VALIDATORS:
        try:
            validator.validate(password)
        except ValidationError as exc:
            errors.extend(exc.messages)
    if errors:
        raise ValidationError(errors)
