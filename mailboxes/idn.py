"""Internationalised domain names: stored as punycode, shown as Unicode (IDNA 2008, UTS 46)."""

from __future__ import annotations

from functools import lru_cache

import idna
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


def domain_to_ascii(name: str) -> str:
    """Normalise user input (``Müller.de.``) to the lower-case punycode Dovecot sees."""
    cleaned = name.strip().rstrip(".")
    if not cleaned or "." not in cleaned:
        raise ValidationError(_("“%(name)s” is not a valid domain name.") % {"name": name})
    try:
        ascii_name = idna.encode(cleaned, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValidationError(_("“%(name)s” is not a valid domain name.") % {"name": name}) from exc
    if len(ascii_name) > 253:
        raise ValidationError(_("A domain name has at most 253 characters."))
    return ascii_name.lower()


@lru_cache(maxsize=8192)
def domain_to_unicode(ascii_name: str) -> str:
    """``xn--mller-kva.de`` → ``müller.de``; cached, since every row of a list shows one."""
    if "xn--" not in ascii_name:
        return ascii_name  # stored names are lower-case already: nothing to decode
    try:
        return idna.decode(ascii_name)
    except idna.IDNAError:
        return ascii_name


def label_to_ascii(label: str) -> str | None:
    """One label as stored (``müller`` → ``xn--mller-kva``), None if it is no valid label.

    For searching: a whole label typed in Unicode is found in the punycode Dovecot sees."""
    if label.isascii():
        return label.lower()
    try:
        return idna.encode(label, uts46=True).decode("ascii").lower()
    except idna.IDNAError:
        return None
