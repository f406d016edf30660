"""What can go wrong when Postamt asks a mail server; every message is fit to show to staff."""

from __future__ import annotations


class MailServerError(Exception):
    """The server could not be asked; the reason is fit to show to staff."""


class MailServerUnavailable(MailServerError):
    """Transient: the server is down or unreachable. Worth a retry."""


class SessionLost(MailServerUnavailable):
    """The connection broke or timed out in the middle of a session: what was sent last may
    or may not have been done, so the caller retries the whole job, not the command."""


class MasterLoginRejected(MailServerError):
    """The server refused the master login: a configuration problem, not worth a retry."""


class UntrustedCertificate(MailServerError):
    """The server's TLS certificate does not verify against POSTAMT_MAIL_CA_FILE (or the
    system CAs), or does not name the host: a configuration problem, or someone in between."""


class MailboxUnknown(MailServerError):
    """The server does not list this mailbox among its users."""


class CommandRefused(MailServerError):
    """The server is up and answered, but refused the command (NO or BAD)."""


class FolderError(CommandRefused):
    """A folder cannot be opened, created or (un)subscribed; e.g. it was deleted since it
    was listed."""


class OverQuota(CommandRefused):
    """The mailbox is full: the server refused to store more."""


class UnexpectedAnswer(MailServerError):
    """The server answered in a form the adapter does not read."""
