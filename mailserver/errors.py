"""What can go wrong when Postamt asks a mail server; every message is fit to show to staff."""

from __future__ import annotations


class MailServerError(Exception):
    """The server could not be asked; the reason is fit to show to staff."""


class MailServerUnavailable(MailServerError):
    """Transient: the server is down or unreachable. Worth a retry."""


class MasterLoginRejected(MailServerError):
    """The server refused the master login: a configuration problem, not worth a retry."""


class MailboxUnknown(MailServerError):
    """The server does not list this mailbox among its users."""
