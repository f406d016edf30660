"""Set up a mail account the way the clients do, then log in with what they were told.

Thunderbird asks ``http://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=…`` first,
then ``/.well-known/autoconfig/…`` on the domain itself; Outlook POSTs to
``/autodiscover/autodiscover.xml``. Here a plain Python HTTP client does the same against the
live server, and the answer's host, port, TLS mode and login name go to the real Dovecot.
"""

from __future__ import annotations

import http.client
import poplib
import xml.etree.ElementTree as ET
from urllib.parse import quote, urlsplit

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailboxes.idn import domain_to_ascii
from mailboxes.models import MailServer
from tests.factories import PASSWORD, make_domain, make_mailbox, make_plan
from tests.mailclients import tls_context

pytestmark = pytest.mark.integration

AD = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


@pytest.fixture(autouse=True)
def _the_test_dovecots_own_host(settings):  # type: ignore[no-untyped-def]
    """Clients are told the test Dovecot's own host and its IMAPS and POP3S ports."""
    settings.POSTAMT_MAIL_HOSTNAME = ""
    settings.POSTAMT_MAIL_SECURITY = "ssl"
    settings.POSTAMT_SUBMISSION_HOST = ""
    # Only the panel's own names: autoconfig.<domain> and autodiscover.<domain> are let in by
    # autoconfig.middleware.DiscoveryHostMiddleware.
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]


def fetch(base_url: str, host: str, path: str, body: bytes | None = None) -> bytes:
    """One HTTP request as a mail client sends it: to the server, with the name it looked up."""
    server = urlsplit(base_url)
    connection = http.client.HTTPConnection(server.hostname or "", server.port, timeout=10)
    headers = {"Host": host, "User-Agent": "Thunderbird-like test client"}
    if body is not None:
        headers["Content-Type"] = "text/xml"
    connection.request("POST" if body is not None else "GET", path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    assert response.status == 200, (response.status, data[:300])
    return data


def thunderbird_settings(base_url: str, address: str) -> list[dict[str, str]]:
    domain = domain_to_ascii(address.rpartition("@")[2])  # the DNS name the client looks up
    data = fetch(
        base_url, f"autoconfig.{domain}", f"/mail/config-v1.1.xml?emailaddress={quote(address)}"
    )
    # The second place Thunderbird looks (when the domain's own web site sends it here)
    # gives the same answer.
    assert data == fetch(
        base_url,
        urlsplit(base_url).netloc,
        f"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress={quote(address)}",
    )
    provider = ET.fromstring(data).find("emailProvider")
    assert provider is not None
    return [
        {"type": e.get("type", ""), **{child.tag: child.text or "" for child in e}}
        for e in provider.findall("incomingServer")
    ]


def outlook_settings(base_url: str, address: str) -> list[dict[str, str]]:
    domain = address.rpartition("@")[2]
    request = (
        '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/'
        'exchange/autodiscover/outlook/requestschema/2006"><Request>'
        f"<EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>"
        "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
        "</AcceptableResponseSchema></Request></Autodiscover>"
    ).encode()
    data = fetch(base_url, f"autodiscover.{domain}", "/autodiscover/autodiscover.xml", request)
    return [
        {child.tag.removeprefix(AD): child.text or "" for child in protocol}
        for protocol in ET.fromstring(data).iter(f"{AD}Protocol")
    ]


def imap_works(host: str, port: int, login: str, password: str) -> bool:
    client = IMAPClient(host, port=port, ssl_context=tls_context(), timeout=10)
    try:
        client.login(login, password)
    except LoginError:
        return False
    client.select_folder("INBOX")
    client.logout()
    return True


def pop3_works(host: str, port: int, login: str, password: str) -> bool:
    pop = poplib.POP3_SSL(host, port, context=tls_context(), timeout=10)
    try:
        pop.user(login)
        pop.pass_(password)
        pop.stat()
    except poplib.error_proto:
        return False
    finally:
        pop.quit()
    return True


LOGIN = {"imap": imap_works, "pop3": pop3_works}


def test_thunderbird_settings_log_in_over_each_mailboxs_protocol(
    dovecot, mail_server: MailServer, live_server
) -> None:  # type: ignore[no-untyped-def]
    domain = make_domain(name="laden.example")
    make_mailbox("anna", domain=domain, protocol="imap", plan=make_plan(protocol="imap"))
    make_mailbox("bob", domain=domain, protocol="pop3", plan=make_plan(protocol="pop3"))
    for address, protocol in (("anna@laden.example", "imap"), ("Bob@Laden.example", "pop3")):
        (server,) = thunderbird_settings(live_server.url, address)
        assert server["type"] == protocol
        assert server["socketType"] == "SSL"
        host, port, login = server["hostname"], int(server["port"]), server["username"]
        assert LOGIN[protocol](host, port, login, PASSWORD)
        # The protocol not offered would have been refused: that is why it is not offered.
        other = {"imap": "pop3", "pop3": "imap"}[protocol]
        other_port = {"imap": dovecot.imaps_port, "pop3": dovecot.pop3s_port}[other]
        assert not LOGIN[other](host, other_port, login, PASSWORD)


def test_thunderbird_settings_for_an_idn_address_log_in(
    dovecot, mail_server: MailServer, live_server
) -> None:  # type: ignore[no-untyped-def]
    domain = make_domain(name="broß.example")
    make_mailbox("kasse", domain=domain, protocol="pop3", plan=make_plan(protocol="pop3"))
    (server,) = thunderbird_settings(live_server.url, "Kasse@Broß.example")
    assert server["username"] == f"kasse@{domain.name}"
    assert pop3_works(server["hostname"], int(server["port"]), server["username"], PASSWORD)


def test_outlook_settings_log_in_over_each_mailboxs_protocol(
    dovecot, mail_server: MailServer, live_server
) -> None:  # type: ignore[no-untyped-def]
    domain = make_domain(name="laden.example")
    make_mailbox("anna", domain=domain, protocol="imap", plan=make_plan(protocol="imap"))
    make_mailbox("bob", domain=domain, protocol="pop3", plan=make_plan(protocol="pop3"))
    for address, protocol in (("anna@laden.example", "imap"), ("bob@laden.example", "pop3")):
        (server,) = outlook_settings(live_server.url, address)
        assert server["Type"] == protocol.upper()
        assert server["Encryption"] == "SSL"
        assert LOGIN[protocol](server["Server"], int(server["Port"]), server["LoginName"], PASSWORD)


def test_starttls_settings_log_in_after_starttls(
    dovecot, mail_server: MailServer, live_server, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.POSTAMT_MAIL_SECURITY = "starttls"
    domain = make_domain(name="laden.example")
    make_mailbox("anna", domain=domain, protocol="imap", plan=make_plan(protocol="imap"))
    make_mailbox("bob", domain=domain, protocol="pop3", plan=make_plan(protocol="pop3"))

    (imap,) = thunderbird_settings(live_server.url, "anna@laden.example")
    assert (imap["socketType"], int(imap["port"])) == ("STARTTLS", dovecot.imap_port)
    client = IMAPClient(imap["hostname"], port=int(imap["port"]), ssl=False, timeout=10)
    client.starttls(tls_context())
    client.login(imap["username"], PASSWORD)
    client.logout()

    (pop3,) = thunderbird_settings(live_server.url, "bob@laden.example")
    assert (pop3["socketType"], int(pop3["port"])) == ("STARTTLS", dovecot.pop3_port)
    pop = poplib.POP3(pop3["hostname"], int(pop3["port"]), timeout=10)
    pop.stls(tls_context())
    pop.user(pop3["username"])
    assert pop.pass_(PASSWORD).startswith(b"+OK")
    pop.quit()
