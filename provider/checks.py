"""Start-up checks of the settings (Django system checks): what production must not run with.

Run by ``manage.py check``, ``migrate`` and ``runserver``, and before gunicorn starts in the
container (docker/Dockerfile). Registered by ``web.apps``. Each kind of process is asked only
for the secrets it holds: Celery workers and beat check theirs as they start
(provider/celery.py), ``manage.py dovecot`` its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

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


# What each kind of process holds in production (docs/operations.md, "Secrets per process"):
# only these are required of it. Workers by the queues they consume: SECRET_KEY signs the
# links in invitations and password emails (default queue); the master password logs workers
# in to the mail servers. The web and beat need neither of the latter; Dovecot no SECRET_KEY.
PROCESS_SECRETS: dict[str, tuple[str, ...]] = {
    "web": ("SECRET_KEY",),
    "beat": (),
    "dovecot": ("POSTAMT_MASTER_PASSWORD",),
}
QUEUE_SECRETS: dict[str, tuple[str, ...]] = {
    "default": ("SECRET_KEY", "POSTAMT_MASTER_PASSWORD"),
    "poll": ("POSTAMT_MASTER_PASSWORD",),
    "backup": ("POSTAMT_MASTER_PASSWORD",),
    "restore": ("POSTAMT_MASTER_PASSWORD",),
    "webhooks": (),
}
# Checked whenever they are set, in any process.
OPTIONAL_SECRETS = (
    "SECRET_KEY",
    "POSTAMT_MASTER_PASSWORD",
    "POSTAMT_DOVEADM_API_KEY",
    "EMAIL_HOST_PASSWORD",
)


def _value(name: str) -> str:
    try:
        return str(getattr(settings, name) or "")
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        return ""


def process_secret_errors(process: str, queues: Sequence[str] = ()) -> list[checks.Error]:
    """With DEBUG off: the secrets ``process`` (or a worker on ``queues``) needs are set, and
    every secret that is set is neither a placeholder nor short. Never shows a value."""
    if settings.DEBUG:
        return []
    required = set(PROCESS_SECRETS.get(process, ()))
    for queue in queues:
        # A mail server's own queue (poll.<server>, backup.<server>) is its kind's.
        kind = queue if queue in QUEUE_SECRETS else queue.partition(".")[0]
        required.update(QUEUE_SECRETS.get(kind, ("SECRET_KEY", "POSTAMT_MASTER_PASSWORD")))
    errors = []
    for name in OPTIONAL_SECRETS:
        value = _value(name)
        if not value and name not in required:
            continue
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


def check_secrets(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[checks.Error]:
    """The web's secrets, for ``manage.py check`` before gunicorn starts (and migrate and the
    other commands, which need the same). Workers and beat check theirs as they start
    (provider/celery.py), ``manage.py dovecot`` its own."""
    return process_secret_errors("web")
