"""The one answer every mail-client set-up gives: a mailbox's own protocol, the domain's
generic settings for unknown addresses, and nothing that tells the two apart."""

from __future__ import annotations

import pytest

from mailboxes import client_settings
from mailboxes.checks import check_mail_security
from mailboxes.models import MailServer
from tests.factories import make_domain, make_mailbox, make_server

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _public_names(settings):  # type: ignore[no-untyped-def]
    settings.POSTAMT_MAIL_HOSTNAME = "{server}.mail.hoster.example"
    settings.POSTAMT_MAIL_SECURITY = "ssl"
    settings.POSTAMT_SUBMISSION_HOST = ""


@pytest.fixture
def server() -> MailServer:
    return make_server("mx1", hostname="10.0.0.5", imap_port=143, pop3_port=110)


def test_an_imap_mailbox_is_offered_imap_only(server: MailServer) -> None:
    mailbox = make_mailbox("anna", protocol="imap", domain=make_domain(name="shop.example"))
    found = client_settings.for_address("Anna@Shop.example")
    assert found is not None
    assert found.login == mailbox.address == "anna@shop.example"
    assert found.incoming == (
        client_settings.Server("imap", "mx1.mail.hoster.example", 993, "ssl"),
    )
    assert found.outgoing is None


def test_a_pop3_mailbox_is_offered_pop3_only(server: MailServer) -> None:
    make_mailbox("bob", protocol="pop3", domain=make_domain(name="shop.example"))
    found = client_settings.for_address("bob@shop.example")
    assert found is not None
    assert found.incoming == (
        client_settings.Server("pop3", "mx1.mail.hoster.example", 995, "ssl"),
    )


def test_starttls_and_configured_ports(server: MailServer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.POSTAMT_MAIL_SECURITY = "starttls"
    settings.POSTAMT_MAIL_POP3_PORT = 1110
    make_mailbox("bob", protocol="pop3", domain=make_domain(name="shop.example"))
    found = client_settings.for_address("bob@shop.example")
    assert found is not None
    assert found.incoming[0].port == 1110
    assert found.incoming[0].security == "starttls"


def test_clients_get_each_servers_own_host_and_tls_ports(settings) -> None:  # type: ignore[no-untyped-def]
    settings.POSTAMT_MAIL_HOSTNAME = ""
    make_server("local", hostname="127.0.0.1", imap_port=10143, imaps_port=10993, pop3s_port=10995)
    domain = make_domain(name="shop.example")
    make_mailbox("anna", protocol="imap", domain=domain)
    make_mailbox("bob", protocol="pop3", domain=domain)
    anna = client_settings.for_address("anna@shop.example")
    bob = client_settings.for_address("bob@shop.example")
    assert anna is not None and bob is not None
    assert anna.incoming == (client_settings.Server("imap", "127.0.0.1", 10993, "ssl"),)
    assert bob.incoming == (client_settings.Server("pop3", "127.0.0.1", 10995, "ssl"),)
    settings.POSTAMT_MAIL_SECURITY = "starttls"
    anna = client_settings.for_address("anna@shop.example")
    assert anna is not None
    assert anna.incoming == (client_settings.Server("imap", "127.0.0.1", 10143, "starttls"),)


def test_cleartext_is_never_offered_for_incoming_mail(server: MailServer, settings) -> None:  # type: ignore[no-untyped-def]
    """Dovecot refuses cleartext logins off loopback: a set-up told "none" would not work."""
    settings.POSTAMT_MAIL_SECURITY = "none"
    make_mailbox("anna", protocol="imap", domain=make_domain(name="shop.example"))
    with pytest.raises(ValueError, match="require TLS"):
        client_settings.for_address("anna@shop.example")
    assert [error.id for error in check_mail_security()] == ["mailboxes.E001"]
    settings.POSTAMT_MAIL_SECURITY = "starttls"
    assert check_mail_security() == []


def test_submission_is_offered_where_the_hoster_has_a_host(server: MailServer, settings) -> None:  # type: ignore[no-untyped-def]
    settings.POSTAMT_SUBMISSION_HOST = "smtp.hoster.example"
    settings.POSTAMT_SUBMISSION_SECURITY = "starttls"
    make_mailbox("anna", domain=make_domain(name="shop.example"))
    found = client_settings.for_address("anna@shop.example")
    assert found is not None
    assert found.outgoing == client_settings.Server("smtp", "smtp.hoster.example", 587, "starttls")


def test_an_unknown_address_on_a_one_protocol_domain_looks_like_a_real_one(
    server: MailServer,
) -> None:
    domain = make_domain(name="shop.example")
    make_mailbox("bob", protocol="pop3", domain=domain)
    real = client_settings.for_address("bob@shop.example")
    unknown = client_settings.for_address("nobody@shop.example")
    assert real is not None and unknown is not None
    assert unknown.incoming == real.incoming
    assert unknown.login == "nobody@shop.example"


def test_unknown_addresses_on_a_mixed_domain_get_one_stable_protocol_each(
    server: MailServer,
) -> None:
    domain = make_domain(name="shop.example")
    make_mailbox("anna", protocol="imap", domain=domain)
    make_mailbox("bob", protocol="pop3", domain=domain)
    answers = {}
    for n in range(40):
        found = client_settings.for_address(f"nobody{n}@shop.example")
        assert found is not None
        assert len(found.incoming) == 1  # the shape of a real answer: never both
        assert found == client_settings.for_address(f"nobody{n}@shop.example")  # stable
        answers[n] = found.protocols[0]
    assert set(answers.values()) == {"imap", "pop3"}  # not always the same: that would tell


def test_without_an_address_a_mixed_domain_offers_both(server: MailServer) -> None:
    domain = make_domain(name="shop.example")
    make_mailbox("anna", protocol="imap", domain=domain)
    make_mailbox("bob", protocol="pop3", domain=domain)
    found = client_settings.for_domain("shop.example")
    assert found is not None
    assert found.login is None
    assert found.protocols == ["imap", "pop3"]


def test_idn_addresses_are_looked_up_in_punycode(server: MailServer) -> None:
    mailbox = make_mailbox("anna", protocol="pop3", domain=make_domain(name="bäckerei.example"))
    found = client_settings.for_address("Anna@Bäckerei.example")
    assert found is not None
    assert found.login == mailbox.address == "anna@xn--bckerei-5wa.example"
    assert found.protocols == ["pop3"]
    assert found.display_domain == "bäckerei.example"


@pytest.mark.parametrize("text", ["", "anna", "@shop.example", "anna@", "anna@nowhere.example"])
def test_no_answer_for_nonsense_or_domains_not_hosted_here(server: MailServer, text: str) -> None:
    make_domain(name="shop.example")
    assert client_settings.for_address(text) is None
