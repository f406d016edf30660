"""Start-up checks of what mail programs are told."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core import checks

from .client_settings import INCOMING_SECURITY_MODES


def check_mail_security(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[Any]:
    """Refuse to start telling customers a TLS mode the mail servers would refuse."""
    mode = settings.POSTAMT_MAIL_SECURITY.strip().lower()
    if mode in INCOMING_SECURITY_MODES:
        return []
    return [
        checks.Error(
            f"POSTAMT_MAIL_SECURITY is {settings.POSTAMT_MAIL_SECURITY!r}.",
            hint="Use ssl or starttls: Dovecot refuses cleartext logins off loopback.",
            id="mailboxes.E001",
        )
    ]
