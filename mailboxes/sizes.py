"""Human sizes such as ``500M`` or ``1.5GiB``, read as bytes for quotas.

Units are binary (1 K = 1024 bytes) whether written ``K``, ``KB`` or ``KiB``: Postamt shows
sizes with Django's ``filesizeformat``, which is binary too, so a limit copied from one of its
messages ("at most 10.0 GB") means the same thing when it is typed back in.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

_UNITS = {"": 1, "b": 1} | {
    suffix: 1024**power
    for power, letter in enumerate("kmgt", start=1)
    for suffix in (letter, f"{letter}b", f"{letter}ib")
}

_SIZE_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([a-z]*)$", re.IGNORECASE)

# What a BigIntegerField holds.
MAX_SIZE = 2**63 - 1


def parse_size(text: str) -> int:
    """Bytes for ``text``; fractions are rounded down to whole bytes."""
    match = _SIZE_RE.match(text.strip())
    if not match or match.group(2).lower() not in _UNITS:
        raise ValidationError(
            _(
                "“%(value)s” is not a size: give a number of bytes, or a number followed by "
                "K, M, G or T (for example 500M or 1.5G)."
            )
            % {"value": text},
            code="invalid",
        )
    size = int(Decimal(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise ValidationError(
            _("“%(value)s” is not a size greater than zero.") % {"value": text}, code="min_value"
        )
    if size > MAX_SIZE:
        raise ValidationError(_("“%(value)s” is too large.") % {"value": text}, code="max_value")
    return size


def size_text(size: int) -> str:
    """``size`` bytes as ``parse_size`` reads it back: ``5G``, ``500M``, else MB with a decimal."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size / 1024**2:.1f}M"
