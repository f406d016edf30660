"""The DNS records that let mail programs find a domain's settings, and a check of them.

Per domain:

- ``autoconfig.<domain>`` and ``autodiscover.<domain>``: CNAMEs to the host this panel answers
  on (``POSTAMT_DISCOVERY_HOST``, by default ``SITE_URL``'s), where Thunderbird and Outlook ask;
- RFC 6186 SRV records for the protocols the domain's mailboxes use (``_imaps._tcp`` and
  ``_pop3s._tcp`` with implicit TLS, ``_imap._tcp`` and ``_pop3._tcp`` with STARTTLS). A
  protocol none of them uses gets the RFC's "not offered here" record (target ``.``), so that a
  client trying SRV records in order does not set a POP3 mailbox up over IMAP;
- the submission SRV record when the hoster has a submission host (``_submission._tcp`` for
  STARTTLS on 587, RFC 8314's ``_submissions._tcp`` for implicit TLS on 465);
- MX: ``POSTAMT_MX_HOSTS``, by default the mail server's public name.

The check asks the resolvers in ``POSTAMT_DNS_RESOLVERS`` (the system's when empty) and says
per record whether it is there and right, missing, wrong (with what was found) or could not
be checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from . import client_settings
from .client_settings import PLAIN, SSL, STARTTLS
from .models import Domain, Protocol

OK = "ok"
MISSING = "missing"
WRONG = "wrong"
UNKNOWN = "unknown"

SRV_NAMES = {
    (Protocol.IMAP.value, SSL): "_imaps._tcp",
    (Protocol.IMAP.value, STARTTLS): "_imap._tcp",
    (Protocol.IMAP.value, PLAIN): "_imap._tcp",
    (Protocol.POP3.value, SSL): "_pop3s._tcp",
    (Protocol.POP3.value, STARTTLS): "_pop3._tcp",
    (Protocol.POP3.value, PLAIN): "_pop3._tcp",
    (client_settings.SMTP, SSL): "_submissions._tcp",
    (client_settings.SMTP, STARTTLS): "_submission._tcp",
    (client_settings.SMTP, PLAIN): "_submission._tcp",
}


@dataclass(frozen=True)
class Record:
    name: str  # fully qualified, lower-case punycode, no trailing dot
    type: str  # CNAME, SRV or MX
    value: str  # as in a zone file: "mail.example.net.", "0 1 993 mail.example.net.", …
    purpose: str | Promise

    @property
    def zone_line(self) -> str:
        return f"{self.name}. 3600 IN {self.type} {self.value}"


@dataclass
class Checked:
    record: Record
    status: str
    found: list[str] = field(default_factory=list)


def _fqdn(host: str) -> str:
    return host.rstrip(".").lower() + "."


def discovery_host() -> str:
    return settings.POSTAMT_DISCOVERY_HOST or urlsplit(settings.SITE_URL).hostname or "localhost"


def mx_hosts(domain: Domain) -> list[tuple[int, str]]:
    """``POSTAMT_MX_HOSTS`` entries are "host" or "priority host"; by default the server's name."""
    entries = settings.POSTAMT_MX_HOSTS or [client_settings.public_hostname(domain.mail_server)]
    hosts = []
    for entry in entries:
        parts = entry.split()
        priority, host = (int(parts[0]), parts[1]) if len(parts) == 2 else (10, parts[0])
        hosts.append((priority, host))
    return hosts


def expected_records(domain: Domain) -> list[Record]:
    name = domain.name
    target = _fqdn(discovery_host())
    records = [
        Record(f"autoconfig.{name}", "CNAME", target, _("Thunderbird and others find settings")),
        Record(f"autodiscover.{name}", "CNAME", target, _("Outlook finds settings")),
    ]
    used = set(client_settings.domain_protocols(domain))
    for protocol in Protocol:
        server = client_settings.incoming_server(domain.mail_server, protocol.value)
        srv = SRV_NAMES[(protocol.value, server.security)]
        if protocol.value in used:
            value = f"0 1 {server.port} {_fqdn(server.hostname)}"
            purpose = _("where %(protocol)s is") % {"protocol": protocol.label}
        else:
            value = "0 0 0 ."
            purpose = _("%(protocol)s is not offered for this domain") % {
                "protocol": protocol.label
            }
        records.append(Record(f"{srv}.{name}", "SRV", value, purpose))
    outgoing = client_settings.outgoing_server()
    if outgoing is not None:
        srv = SRV_NAMES[(client_settings.SMTP, outgoing.security)]
        value = f"0 1 {outgoing.port} {_fqdn(outgoing.hostname)}"
        records.append(Record(f"{srv}.{name}", "SRV", value, _("where to send mail from")))
    for priority, host in mx_hosts(domain):
        records.append(Record(name, "MX", f"{priority} {_fqdn(host)}", _("where mail arrives")))
    return records


def resolver() -> dns.resolver.Resolver:
    if not settings.POSTAMT_DNS_RESOLVERS:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(settings.POSTAMT_DNS_RESOLVERS)
        resolver.port = settings.POSTAMT_DNS_PORT
    resolver.lifetime = settings.POSTAMT_DNS_TIMEOUT
    return resolver


def _normalised(rtype: str, text: str) -> str:
    """What must match: the target of a CNAME, port and target of an SRV (priority and weight
    are the hoster's to choose), priority-free host of an MX."""
    parts = text.lower().split()
    if rtype == "SRV":
        return f"{parts[2]} {_fqdn(parts[3])}" if parts[3] != "." else "."
    if rtype == "MX":
        return _fqdn(parts[1])
    return _fqdn(parts[0])


def _lookup(res: dns.resolver.Resolver, name: str, rtype: str) -> list[str]:
    answer = res.resolve(dns.name.from_text(name), dns.rdatatype.from_text(rtype))
    return sorted(rdata.to_text() for rdata in answer)


def check(
    domain: Domain,
    *,
    lookup: Callable[[str, str], list[str]] | None = None,
) -> list[Checked]:
    """Each expected record with what DNS says about it."""
    if lookup is None:
        res = resolver()

        def lookup(name: str, rtype: str) -> list[str]:
            return _lookup(res, name, rtype)

    results = []
    for record in expected_records(domain):
        try:
            found = lookup(record.name, record.type)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            results.append(Checked(record, MISSING))
            continue
        except dns.exception.DNSException:
            results.append(Checked(record, UNKNOWN))
            continue
        wanted = _normalised(record.type, record.value)
        present = {_normalised(record.type, text) for text in found}
        status = OK if wanted in present else WRONG
        results.append(Checked(record, status, found))
    return results
