"""Mail programs as the tests' customers use them: over TLS, trusting the test run's CA."""

from __future__ import annotations

import poplib
import ssl

from django.conf import settings
from imapclient import IMAPClient

from mailserver.dovecot import DovecotInstance


def tls_context() -> ssl.SSLContext:
    """Verifies Dovecot's certificate and host name against the run's private CA."""
    return ssl.create_default_context(cafile=settings.POSTAMT_MAIL_CA_FILE)


def imaps(dovecot: DovecotInstance, timeout: float = 10) -> IMAPClient:
    return IMAPClient(
        dovecot.listen, port=dovecot.imaps_port, ssl_context=tls_context(), timeout=timeout
    )


def pop3s(dovecot: DovecotInstance, timeout: float = 10) -> poplib.POP3_SSL:
    return poplib.POP3_SSL(
        dovecot.listen, dovecot.pop3s_port, context=tls_context(), timeout=timeout
    )
