"""Start-up checks of the settings (Django system checks): what production must not run with.

Run by ``manage.py check``, ``migrate`` and ``runserver``, and before gunicorn starts in the
container (docker/Dockerfile). Registered by ``web.apps``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core import checks

# Values copied from examples and never replaced, compared without case or punctuation.
PLACEHOLDERS = frozenset(
    {
        "changeme", "changemeplease", "change", "secret", "secretkey", "password", "passwd",
        "test", "example", "default", "todo", "xxx", "none", "null", "insecure", "admin",
        "master", "postamt", "key", "apikey",
    }
)  # fmt: skip
# Django's own rule for SECRET_KEY (its security.W009), made an error here.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE = 5
# Other secrets (the mail servers' master password, the doveadm API key, the SMTP password).
SECRET_MIN_LENGTH = 16


def is_placeholder(value: str) -> bool:
    folded = re.sub(r"[^a-z0-9]", "", value.lower())
    return (
        folded in PLACEHOLDERS
        or folded.startswith("changeme")
        or value.startswith("django-insecure")
        or set(folded) <= {"x"}
    )


def _weakness(value: str, *, min_length: int, min_unique: int = 1) -> str | None:
    if not value:
        return "is empty"
    if is_placeholder(value):
        return "is a placeholder"
    if len(value) < min_length or len(set(value)) < min_unique:
        return f"is shorter than {min_length} characters"
    return None


def check_secrets(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[checks.Error]:
    """With DEBUG off: SECRET_KEY long and not a placeholder; the master password set; any
    other secret that is set, not a placeholder nor short. Never shows a secret's value."""
    if settings.DEBUG:
        return []
    required = {
        "SECRET_KEY": settings.SECRET_KEY,
        "POSTAMT_MASTER_PASSWORD": settings.POSTAMT_MASTER_PASSWORD,
    }
    optional = {
        "POSTAMT_DOVEADM_API_KEY": settings.POSTAMT_DOVEADM_API_KEY,
        "EMAIL_HOST_PASSWORD": settings.EMAIL_HOST_PASSWORD,
    }
    errors = []
    for name, value in [*required.items(), *((n, v) for n, v in optional.items() if v)]:
        if name == "SECRET_KEY":
            problem = _weakness(
                value, min_length=SECRET_KEY_MIN_LENGTH, min_unique=SECRET_KEY_MIN_UNIQUE
            )
        else:
            problem = _weakness(value, min_length=SECRET_MIN_LENGTH)
        if problem:
            errors.append(
                checks.Error(
                    f"{name} {problem}.",
                    hint=f"Set {name} (or {name}_FILE) to a long random value, e.g. from "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
                    id="postamt.E001",
                )
            )
    return errors
