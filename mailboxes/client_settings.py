"""What a mail program needs to reach a mailbox: host, port, TLS mode, login, per protocol.

One selector for every way a client is set up (Thunderbird's autoconfig, Outlook's
autodiscover, Apple profiles, the portal's "set up your devices" page and the QR code), so
they can never disagree about a mailbox.

The rules:

- A mailbox is offered only the protocol it was sold with: Dovecot refuses an IMAP login of a
  POP3 mailbox and the other way round, so offering both would set up a broken account.
- Where the hoster has a submission host (``POSTAMT_SUBMISSION_HOST``), SMTP is offered too.
- The answer for an address never tells whether that address exists. An unknown address on a
  hosted domain gets an answer of the same shape as a real one: the domain's protocol when all
  its mailboxes share one; on a domain with IMAP and POP3 mailboxes, one of the two chosen by
  a keyed hash of the address (stable, so asking twice gives the same answer, and not
  predictable without the secret key). Offering both to unknown addresses instead would give
  real addresses away, since theirs would be the only single-protocol answers.
- Without an address (Thunderbird asking ``autoconfig.<domain>`` with no ``emailaddress``),
  every protocol the domain's mailboxes use is offered: there is no address to give away.
- A domain that is not hosted here gets nothing (None): that it is not ours is public anyway,
  in its DNS.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.crypto import salted_hmac

from .idn import domain_to_ascii, domain_to_unicode
from .models import Domain, Mailbox, MailServer, Protocol

SSL = "ssl"
STARTTLS = "starttls"
PLAIN = "none"
SECURITY_MODES = (SSL, STARTTLS, PLAIN)
INCOMING_SECURITY_MODES = (SSL, STARTTLS)
SMTP = "smtp"

# Submission's ports per TLS mode (IANA; RFC 8314 for implicit TLS). IMAP and POP3 are
# offered on each mail server's own ports (993, 143, 995 and 110 unless changed).
STANDARD_PORTS = {
    (SMTP, SSL): 465,
    (SMTP, STARTTLS): 587,
    (SMTP, PLAIN): 587,
}


@dataclass(frozen=True)
class Server:
    """One server a client talks to: ``protocol`` is "imap", "pop3" or "smtp"."""

    protocol: str
    hostname: str
    port: int
    security: str  # SSL, STARTTLS or PLAIN


@dataclass(frozen=True)
class ClientSettings:
    domain: str  # as stored: lower-case punycode
    login: str | None  # the login name (the address as Dovecot knows it); None: generic
    incoming: tuple[Server, ...]  # in order of preference; one unless generic
    outgoing: Server | None

    @property
    def display_domain(self) -> str:
        return domain_to_unicode(self.domain)

    @property
    def protocols(self) -> list[str]:
        return [server.protocol for server in self.incoming]


def split_address(text: str) -> tuple[str, str] | None:
    """``Anna@Müller.de`` → ``("anna", "xn--mller-kva.de")``; None for anything else."""
    local, at, domain = text.strip().rpartition("@")
    if not at or not local or not domain or len(local) > 64:
        return None
    try:
        return local.lower(), domain_to_ascii(domain)
    except ValidationError:
        return None


def _security(value: str) -> str:
    mode = value.strip().lower()
    if mode not in SECURITY_MODES:
        raise ValueError(f"unknown TLS mode {value!r}: use one of {', '.join(SECURITY_MODES)}")
    return mode


def public_hostname(server: MailServer) -> str:
    """The name clients use for ``server``: ``POSTAMT_MAIL_HOSTNAME`` (``{server}`` in it is
    replaced by the server's name, for hosters with more than one), else its host."""
    template = settings.POSTAMT_MAIL_HOSTNAME
    return template.replace("{server}", server.name) if template else server.hostname


def incoming_server(server: MailServer, protocol: str) -> Server:
    """IMAP or POP3 over TLS on the server's port for the configured mode; Dovecot refuses
    cleartext logins off loopback, so "none" is never offered."""
    security = _security(settings.POSTAMT_MAIL_SECURITY)
    if security not in INCOMING_SECURITY_MODES:
        raise ValueError(
            f"POSTAMT_MAIL_SECURITY={security!r}: mail servers require TLS, use "
            f"{' or '.join(INCOMING_SECURITY_MODES)}"
        )
    configured = {
        Protocol.IMAP.value: settings.POSTAMT_MAIL_IMAP_PORT,
        Protocol.POP3.value: settings.POSTAMT_MAIL_POP3_PORT,
    }[protocol]
    own = {
        (Protocol.IMAP.value, SSL): server.imaps_port,
        (Protocol.IMAP.value, STARTTLS): server.imap_port,
        (Protocol.POP3.value, SSL): server.pop3s_port,
        (Protocol.POP3.value, STARTTLS): server.pop3_port,
    }[(protocol, security)]
    return Server(protocol, public_hostname(server), configured or own, security)


def outgoing_server() -> Server | None:
    if not settings.POSTAMT_SUBMISSION_HOST:
        return None
    security = _security(settings.POSTAMT_SUBMISSION_SECURITY)
    port = settings.POSTAMT_SUBMISSION_PORT or STANDARD_PORTS[(SMTP, security)]
    return Server(SMTP, settings.POSTAMT_SUBMISSION_HOST, port, security)


def domain_protocols(domain: Domain) -> list[str]:
    """The protocols the domain's mailboxes use, IMAP first; both when it has none yet."""
    used = set(domain.mailboxes.values_list("protocol", flat=True).distinct())
    return [p.value for p in Protocol if p.value in used] or [p.value for p in Protocol]


def _unknown_address_protocol(login: str, protocols: list[str]) -> str:
    """A protocol for an address with no mailbox that looks like a real answer (see above)."""
    if len(protocols) == 1:
        return protocols[0]
    digest = salted_hmac("mailboxes.client_settings.unknown", login).digest()
    return protocols[digest[0] % len(protocols)]


def for_mailbox(mailbox: Mailbox) -> ClientSettings:
    return ClientSettings(
        domain=mailbox.domain.name,
        login=mailbox.address,
        incoming=(incoming_server(mailbox.mail_server, mailbox.protocol),),
        outgoing=outgoing_server(),
    )


def for_domain(name: str) -> ClientSettings | None:
    """The generic settings of a hosted domain (no address given), or None."""
    try:
        domain = Domain.objects.select_related("mail_server").get(name=domain_to_ascii(name))
    except (ValidationError, Domain.DoesNotExist):
        return None
    return ClientSettings(
        domain=domain.name,
        login=None,
        incoming=tuple(incoming_server(domain.mail_server, p) for p in domain_protocols(domain)),
        outgoing=outgoing_server(),
    )


def for_address(text: str) -> ClientSettings | None:
    """The settings for whatever address a client typed; None if its domain is not hosted."""
    parts = split_address(text)
    if parts is None:
        return None
    local, domain_name = parts
    domain = Domain.objects.select_related("mail_server").filter(name=domain_name).first()
    if domain is None:
        return None
    login = f"{local}@{domain.name}"
    # Asked for known and unknown addresses alike, so that the time an answer takes does not
    # tell them apart either.
    protocols = domain_protocols(domain)
    mailbox = Mailbox.objects.select_related("domain", "mail_server").filter(address=login).first()
    if mailbox is not None:
        return for_mailbox(mailbox)
    # Same server, same shape as a real answer: see the module's docstring.
    protocol = _unknown_address_protocol(login, protocols)
    return ClientSettings(
        domain=domain.name,
        login=login,
        incoming=(incoming_server(domain.mail_server, protocol),),
        outgoing=outgoing_server(),
    )
