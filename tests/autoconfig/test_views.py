"""The discovery endpoints as mail programs call them: Thunderbird's autoconfig, Outlook's
autodiscover (POX and JSON v2) and Apple profiles by link, for IMAP and POP3 mailboxes,
unknown and IDN addresses; checked against the formats' published examples and rate limited.
"""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET

import pytest
from django.test import Client
from django.urls import reverse

from mailboxes import profiles
from mailboxes.models import Domain, Mailbox
from tests.factories import make_domain, make_mailbox, make_server

pytestmark = pytest.mark.django_db

IP = "198.51.100.40"
AD_RESPONSE = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
AD_OUTLOOK = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

# The elements and values of Thunderbird's config-v1.1 format (wiki.mozilla.org
# Thunderbird:Autoconfiguration:ConfigFileFormat), for the parts we write.
TB_SERVER_CHILDREN = {"hostname", "port", "socketType", "authentication", "username", "pop3"}
TB_SOCKET_TYPES = {"plain", "SSL", "STARTTLS"}
TB_AUTH = {"password-cleartext", "password-encrypted", "NTLM", "GSSAPI", "none", "OAuth2"}


@pytest.fixture(autouse=True)
def _public_names(settings):  # type: ignore[no-untyped-def]
    settings.POSTAMT_MAIL_HOSTNAME = "mail.hoster.example"
    settings.POSTAMT_MAIL_SECURITY = "ssl"
    settings.POSTAMT_SUBMISSION_HOST = "smtp.hoster.example"
    settings.POSTAMT_SUBMISSION_SECURITY = "ssl"
    # Only the panel's own names: autoconfig.<domain> gets in through DiscoveryHostMiddleware.
    settings.SITE_URL = "https://panel.hoster.example"
    settings.ALLOWED_HOSTS = ["testserver", "panel.hoster.example"]


@pytest.fixture
def domain() -> Domain:
    make_server("mx1")
    return make_domain(name="shop.example")


@pytest.fixture
def imap_box(domain: Domain) -> Mailbox:
    return make_mailbox("anna", protocol="imap", domain=domain)


@pytest.fixture
def pop3_box(domain: Domain) -> Mailbox:
    return make_mailbox("bob", protocol="pop3", domain=domain)


def thunderbird(client: Client, address: str, **extra: str):  # type: ignore[no-untyped-def]
    return client.get(
        reverse("autoconfig:thunderbird"), {"emailaddress": address}, REMOTE_ADDR=IP, **extra
    )


def tb_servers(body: bytes) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Incoming and outgoing servers of a config-v1.1 document, checked for its format."""
    root = ET.fromstring(body)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    (provider,) = root.findall("emailProvider")
    assert provider.get("id") and provider.findtext("domain")
    assert provider.findtext("displayName") and provider.findtext("displayShortName")

    def read(element: ET.Element) -> dict[str, str]:
        assert {child.tag for child in element} <= TB_SERVER_CHILDREN
        assert element.findtext("socketType") in TB_SOCKET_TYPES
        assert element.findtext("authentication") in TB_AUTH
        assert int(element.findtext("port") or "0") > 0
        values = {child.tag: (child.text or "").strip() for child in element if child.tag != "pop3"}
        return {"type": element.get("type", ""), **values}

    incoming = [read(e) for e in provider.findall("incomingServer")]
    outgoing = [read(e) for e in provider.findall("outgoingServer")]
    assert all(s["type"] in ("imap", "pop3") for s in incoming)
    assert all(s["type"] == "smtp" for s in outgoing)
    return incoming, outgoing


# --- Thunderbird ----------------------------------------------------------------------------


def test_thunderbird_gets_imap_only_for_an_imap_mailbox(client, imap_box, pop3_box) -> None:  # type: ignore[no-untyped-def]
    response = thunderbird(client, "Anna@shop.example")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert response["Cache-Control"] == "no-store"
    incoming, outgoing = tb_servers(response.content)
    assert incoming == [
        {
            "type": "imap",
            "hostname": "mail.hoster.example",
            "port": "993",
            "socketType": "SSL",
            "authentication": "password-cleartext",
            "username": "anna@shop.example",
        }
    ]
    assert outgoing[0]["hostname"] == "smtp.hoster.example" and outgoing[0]["port"] == "465"


def test_thunderbird_gets_pop3_only_for_a_pop3_mailbox(client, imap_box, pop3_box) -> None:  # type: ignore[no-untyped-def]
    incoming, _ = tb_servers(thunderbird(client, "bob@shop.example").content)
    assert [(s["type"], s["port"], s["username"]) for s in incoming] == [
        ("pop3", "995", "bob@shop.example")
    ]


def test_thunderbird_on_the_autoconfig_host_without_an_address_gets_the_generic_settings(
    client, imap_box, pop3_box
) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/mail/config-v1.1.xml", HTTP_HOST="autoconfig.shop.example")
    incoming, _ = tb_servers(response.content)
    assert [s["type"] for s in incoming] == ["imap", "pop3"]
    assert {s["username"] for s in incoming} == {"%EMAILADDRESS%"}


def test_thunderbird_on_the_autoconfig_host_with_an_address(client, pop3_box) -> None:  # type: ignore[no-untyped-def]
    response = client.get(
        "/mail/config-v1.1.xml",
        {"emailaddress": "bob@shop.example"},
        HTTP_HOST="autoconfig.shop.example",
    )
    incoming, _ = tb_servers(response.content)
    assert [s["type"] for s in incoming] == ["pop3"]


def test_an_unknown_address_gets_an_answer_like_a_real_one(client, pop3_box) -> None:  # type: ignore[no-untyped-def]
    real = thunderbird(client, "bob@shop.example")
    unknown = thunderbird(client, "nobody@shop.example")
    assert unknown.status_code == real.status_code == 200
    assert unknown.content.replace(b"nobody@", b"bob@") == real.content


def test_an_idn_address_gets_its_punycode_login(client) -> None:  # type: ignore[no-untyped-def]
    make_server("mx1")
    make_mailbox("anna", protocol="pop3", domain=make_domain(name="bäckerei.example"))
    incoming, _ = tb_servers(thunderbird(client, "anna@Bäckerei.example").content)
    assert [(s["type"], s["username"]) for s in incoming] == [
        ("pop3", "anna@xn--bckerei-5wa.example")
    ]
    generic = client.get("/mail/config-v1.1.xml", HTTP_HOST="autoconfig.xn--bckerei-5wa.example")
    assert generic.status_code == 200


def test_a_domain_not_hosted_here_gets_404(client, imap_box) -> None:  # type: ignore[no-untyped-def]
    assert thunderbird(client, "anna@elsewhere.example").status_code == 404


# --- Outlook --------------------------------------------------------------------------------


def pox(address: str, schema: str = OUTLOOK_SCHEMA) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
        'requestschema/2006"><Request>'
        f"<EMailAddress>{address}</EMailAddress>"
        f"<AcceptableResponseSchema>{schema}</AcceptableResponseSchema>"
        "</Request></Autodiscover>"
    ).encode()


def autodiscover(client: Client, body: bytes, path: str = "/autodiscover/autodiscover.xml"):  # type: ignore[no-untyped-def]
    return client.post(path, body, content_type="text/xml", REMOTE_ADDR=IP)


def ad_protocols(body: bytes) -> list[dict[str, str]]:
    """The Protocol elements of a POX response, checked against the Outlook response schema's
    structure (Autodiscover > Response > Account > AccountType/Action/Protocol)."""
    root = ET.fromstring(body)
    assert root.tag == f"{AD_RESPONSE}Autodiscover"
    account = root.find(f"{AD_OUTLOOK}Response/{AD_OUTLOOK}Account")
    assert account is not None
    assert account.findtext(f"{AD_OUTLOOK}AccountType") == "email"
    assert account.findtext(f"{AD_OUTLOOK}Action") == "settings"
    protocols = []
    for element in account.findall(f"{AD_OUTLOOK}Protocol"):
        values = {child.tag.removeprefix(AD_OUTLOOK): child.text or "" for child in element}
        assert values["SSL"] in ("on", "off") and values["SPA"] in ("on", "off")
        assert values["Encryption"] in ("None", "SSL", "TLS", "Auto")
        protocols.append(values)
    return protocols


def ad_error(body: bytes) -> str:
    root = ET.fromstring(body)
    return root.findtext(f"{AD_RESPONSE}Response/{AD_RESPONSE}Error/{AD_RESPONSE}ErrorCode") or ""


@pytest.mark.parametrize(
    "path", ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"]
)
def test_outlook_gets_imap_and_smtp_for_an_imap_mailbox(client, imap_box, path) -> None:  # type: ignore[no-untyped-def]
    response = autodiscover(client, pox("anna@shop.example"), path)
    assert response.status_code == 200
    protocols = ad_protocols(response.content)
    assert [(p["Type"], p["Server"], p["Port"], p["Encryption"]) for p in protocols] == [
        ("IMAP", "mail.hoster.example", "993", "SSL"),
        ("SMTP", "smtp.hoster.example", "465", "SSL"),
    ]
    assert {p["LoginName"] for p in protocols} == {"anna@shop.example"}


def test_outlook_gets_pop3_for_a_pop3_mailbox(client, pop3_box) -> None:  # type: ignore[no-untyped-def]
    protocols = ad_protocols(autodiscover(client, pox("BOB@shop.example")).content)
    assert [p["Type"] for p in protocols] == ["POP3", "SMTP"]


def test_outlook_unknown_address_looks_like_a_real_one(client, pop3_box) -> None:  # type: ignore[no-untyped-def]
    real = ad_protocols(autodiscover(client, pox("bob@shop.example")).content)
    unknown = ad_protocols(autodiscover(client, pox("nobody@shop.example")).content)
    for p in real:
        p["LoginName"] = "nobody@shop.example"
    assert unknown == real


def test_outlook_idn_address(client) -> None:  # type: ignore[no-untyped-def]
    make_server("mx1")
    make_mailbox("anna", protocol="imap", domain=make_domain(name="bäckerei.example"))
    protocols = ad_protocols(autodiscover(client, pox("anna@bäckerei.example")).content)
    assert protocols[0]["LoginName"] == "anna@xn--bckerei-5wa.example"


def test_autodiscover_json_for_an_idn_address(client) -> None:  # type: ignore[no-untyped-def]
    make_server("mx1")
    make_mailbox("anna", protocol="pop3", domain=make_domain(name="bäckerei.example"))
    for address in ("anna@bäckerei.example", "anna@xn--bckerei-5wa.example", "x@bäckerei.example"):
        response = client.get(
            "/autodiscover/autodiscover.json",
            {"Email": address, "Protocol": "AutodiscoverV1"},
            REMOTE_ADDR=IP,
        )
        assert response.status_code == 200, address
        assert response.json()["Protocol"] == "AutodiscoverV1"


def test_outlook_errors(client, imap_box) -> None:  # type: ignore[no-untyped-def]
    mobilesync = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
    assert ad_error(autodiscover(client, pox("anna@shop.example", mobilesync)).content) == "601"
    assert ad_error(autodiscover(client, b"<nonsense").content) == "600"
    assert ad_error(autodiscover(client, pox("anna@elsewhere.example")).content) == "500"
    entity = b'<!DOCTYPE x [<!ENTITY a "b">]>' + pox("anna@shop.example")
    assert ad_error(autodiscover(client, entity).content) == "600"
    assert client.get("/autodiscover/autodiscover.xml", REMOTE_ADDR=IP).status_code == 405


def test_autodiscover_json_points_at_the_pox_endpoint(client, imap_box) -> None:  # type: ignore[no-untyped-def]
    for url in (
        "/autodiscover/autodiscover.json?Email=anna@shop.example&Protocol=AutodiscoverV1",
        "/autodiscover/autodiscover.json/v1.0/anna@shop.example?Protocol=AutodiscoverV1",
        "/Autodiscover/Autodiscover.json/v1.0/nobody@shop.example?Protocol=AutodiscoverV1",
    ):
        response = client.get(url, REMOTE_ADDR=IP)
        assert response.status_code == 200, url
        assert response.json() == {
            "Protocol": "AutodiscoverV1",
            "Url": "https://panel.hoster.example/autodiscover/autodiscover.xml",
        }
    other = client.get(
        "/autodiscover/autodiscover.json/v1.0/anna@shop.example?Protocol=ActiveSync",
        REMOTE_ADDR=IP,
    )
    assert other.status_code == 400 and other.json()["ErrorCode"] == "InvalidProtocol"
    missing = client.get(
        "/autodiscover/autodiscover.json/v1.0/a@elsewhere.example?Protocol=AutodiscoverV1",
        REMOTE_ADDR=IP,
    )
    assert missing.status_code == 404


# --- Apple profiles by link -----------------------------------------------------------------


def test_a_profile_link_downloads_the_mailboxs_profile(client, pop3_box) -> None:  # type: ignore[no-untyped-def]
    url = reverse("autoconfig:profile_link", args=[profiles.link_token(pop3_box)])
    response = client.get(url, REMOTE_ADDR=IP)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(response.content)
    (account,) = profile["PayloadContent"]
    assert account["EmailAccountType"] == "EmailTypePOP"
    assert account["IncomingMailServerPortNumber"] == 995
    assert account["IncomingMailServerUsername"] == "bob@shop.example"


def test_a_forged_or_expired_profile_link_is_404(client, pop3_box, settings) -> None:  # type: ignore[no-untyped-def]
    token = profiles.link_token(pop3_box)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(reverse("autoconfig:profile_link", args=[forged])).status_code == 404
    settings.POSTAMT_PROFILE_LINK_MAX_AGE = -1
    assert client.get(reverse("autoconfig:profile_link", args=[token])).status_code == 404


# --- Rate limit -----------------------------------------------------------------------------


def test_the_endpoints_are_rate_limited_per_client_address(client, imap_box, settings) -> None:  # type: ignore[no-untyped-def]
    settings.AUTOCONFIG_REQUESTS_PER_IP = 3
    for _ in range(2):
        assert thunderbird(client, "anna@shop.example").status_code == 200
    assert autodiscover(client, pox("anna@shop.example")).status_code == 200
    limited = thunderbird(client, "anna@shop.example")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert autodiscover(client, pox("anna@shop.example")).status_code == 429
    other_ip = client.get(
        reverse("autoconfig:thunderbird"),
        {"emailaddress": "anna@shop.example"},
        REMOTE_ADDR="203.0.113.5",
    )
    assert other_ip.status_code == 200


def test_without_redis_nothing_is_answered(client, imap_box, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from accounts import throttle

    def down(ip: str | None) -> bool:
        raise throttle.Unavailable

    monkeypatch.setattr(throttle, "discovery_allowed", down)
    assert thunderbird(client, "anna@shop.example").status_code == 503


def test_autodiscover_json_on_the_autodiscover_host_points_at_the_panel(client, imap_box) -> None:  # type: ignore[no-untyped-def]
    response = client.get(
        "/autodiscover/autodiscover.json/v1.0/anna@shop.example?Protocol=AutodiscoverV1",
        HTTP_HOST="autodiscover.shop.example",
        REMOTE_ADDR=IP,
    )
    assert response.json()["Url"] == "https://panel.hoster.example/autodiscover/autodiscover.xml"


def test_other_pages_are_not_served_under_the_discovery_names(client, imap_box) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/accounts/login/", HTTP_HOST="autoconfig.shop.example").status_code == 400
    assert client.get("/mail/config-v1.1.xml", HTTP_HOST="evil.example").status_code == 400
