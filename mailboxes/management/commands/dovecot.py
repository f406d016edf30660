"""Render and run the private Dovecot instance configured in settings.DOVECOT."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailboxes.services import mail_server_register_local
from mailserver.dovecot import DovecotError, DovecotInstance
from provider.checks import process_secret_errors


class Command(BaseCommand):
    help = "Render Postamt's Dovecot configuration (render) or run Dovecot in the foreground (run)."
    # Dovecot holds no SECRET_KEY: the checks of the web's secrets do not apply here.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["render", "run"])

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        instance = DovecotInstance.from_settings()
        if instance.role not in ("backend", "proxy"):
            raise CommandError(f"DOVECOT_ROLE is {instance.role!r}: use backend or proxy")
        # The proxy is no mail server of its own, and holds no master password. With a role
        # of its own (DOVECOT_DATABASE_URL) Dovecot may not write the row: then
        # `manage.py mailserver_save` records it, where Postamt's own login is.
        if instance.role == "backend":
            if instance.db is None:
                mail_server_register_local(instance)
            errors = process_secret_errors("dovecot")
            if errors:
                raise CommandError("\n".join(f"{e.id}: {e.msg}" for e in errors))
        try:
            config = instance.render()
            instance.check()
        except DovecotError as exc:
            raise CommandError(str(exc)) from exc
        if action == "render":
            self.stdout.write(str(config))
            return
        doveadm = f", doveadm HTTPS API {instance.listen}:{instance.doveadm_port}"
        if instance.role == "proxy":
            doveadm = " (proxy)"
        self.stdout.write(
            f"Dovecot: IMAPS {instance.listen}:{instance.imaps_port}, "
            f"POP3S {instance.listen}:{instance.pop3s_port}, "
            f"IMAP and POP3 with STARTTLS {instance.imap_port}, {instance.pop3_port}, "
            f"LMTP {instance.listen}:{instance.lmtp_port}"
            f"{doveadm if instance.doveadm_port else ''}; log {instance.root}/log/dovecot.log"
        )
        self.stdout.flush()
        os.execv(instance.binary, [instance.binary, "-F", "-c", str(config)])
