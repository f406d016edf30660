"""Internationalised domain names: stored as punycode, shown as Unicode (IDNA 2008, UTS 46)."""

from __future__ import annotations

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


def domain_to_unicode(ascii_name: str) -> str:
    try:
        return idna.decode(ascii_name)
    except idna.IDNAError:
        return ascii_name
