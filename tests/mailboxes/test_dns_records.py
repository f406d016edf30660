"""The DNS records a hoster publishes per domain, and the check of them against a real DNS
server (a small one started by the test on loopback, never the internet)."""

from __future__ import annotations

import socket

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Customer, User
from mailboxes import dns_records
from mailboxes.models import Domain, Mailbox
from tests.dnsserver import LocalDNS
from tests.factories import make_domain, make_mailbox

pytestmark = pytest.mark.django_db

GOOD = {
    ("autoconfig.shop.example", "CNAME"): ["panel.hoster.example."],
    ("autodiscover.shop.example", "CNAME"): ["panel.hoster.example."],
    ("_imaps._tcp.shop.example", "SRV"): ["0 1 993 test.mail.hoster.example."],
    ("_pop3s._tcp.shop.example", "SRV"): ["0 0 0 ."],
    ("_submission._tcp.shop.example", "SRV"): ["0 1 587 smtp.hoster.example."],
    ("shop.example", "MX"): ["10 test.mail.hoster.example."],
}


@pytest.fixture(autouse=True)
def _hoster(settings):  # type: ignore[no-untyped-def]
    settings.SITE_URL = "https://panel.hoster.example"
    settings.POSTAMT_DISCOVERY_HOST = ""
    settings.POSTAMT_MAIL_HOSTNAME = "{server}.mail.hoster.example"
    settings.POSTAMT_MAIL_SECURITY = "ssl"
    settings.POSTAMT_SUBMISSION_HOST = "smtp.hoster.example"
    settings.POSTAMT_SUBMISSION_SECURITY = "starttls"
    settings.POSTAMT_MX_HOSTS = []
    settings.POSTAMT_DNS_TIMEOUT = 1.0


@pytest.fixture
def shop(customer: Customer) -> Domain:
    domain = make_domain(customer, "shop.example")
    make_mailbox("anna", protocol="imap", domain=domain)
    return domain


def use(settings, server: LocalDNS) -> None:  # type: ignore[no-untyped-def]
    settings.POSTAMT_DNS_RESOLVERS = ["127.0.0.1"]
    settings.POSTAMT_DNS_PORT = server.port


def test_the_records_of_an_imap_domain(shop: Domain) -> None:
    records = {(r.name, r.type): r.value for r in dns_records.expected_records(shop)}
    assert records == {key: values[0] for key, values in GOOD.items()}


def test_a_pop3_domain_with_starttls_and_implicit_tls_submission(settings, customer) -> None:  # type: ignore[no-untyped-def]
    settings.POSTAMT_MAIL_SECURITY = "starttls"
    settings.POSTAMT_SUBMISSION_SECURITY = "ssl"
    settings.POSTAMT_MX_HOSTS = ["5 in1.hoster.example", "in2.hoster.example"]
    domain = make_domain(customer, "bäckerei.example")
    make_mailbox("kasse", protocol="pop3", domain=domain)
    records = {(r.name, r.type, r.value) for r in dns_records.expected_records(domain)}
    assert (
        "_pop3._tcp.xn--bckerei-5wa.example",
        "SRV",
        "0 1 110 test.mail.hoster.example.",
    ) in records
    assert ("_imap._tcp.xn--bckerei-5wa.example", "SRV", "0 0 0 .") in records
    assert (
        "_submissions._tcp.xn--bckerei-5wa.example",
        "SRV",
        "0 1 465 smtp.hoster.example.",
    ) in records
    assert ("xn--bckerei-5wa.example", "MX", "5 in1.hoster.example.") in records
    assert ("xn--bckerei-5wa.example", "MX", "10 in2.hoster.example.") in records


def test_a_mixed_domain_publishes_both_protocols(shop: Domain) -> None:
    make_mailbox("kasse", protocol="pop3", domain=shop)
    records = {(r.name, r.value) for r in dns_records.expected_records(shop)}
    assert ("_pop3s._tcp.shop.example", "0 1 995 test.mail.hoster.example.") in records


def test_all_records_present_and_correct(shop: Domain, settings) -> None:  # type: ignore[no-untyped-def]
    with LocalDNS(GOOD) as server:
        use(settings, server)
        results = dns_records.check(shop)
    assert {r.record.name + " " + r.record.type: r.status for r in results} == {
        f"{name} {rtype}": "ok" for name, rtype in GOOD
    }
    assert ("autoconfig.shop.example", "CNAME") in server.queries


def test_missing_and_wrong_records_are_told_apart(shop: Domain, settings) -> None:  # type: ignore[no-untyped-def]
    partial = dict(GOOD)
    del partial[("autodiscover.shop.example", "CNAME")]
    partial[("_imaps._tcp.shop.example", "SRV")] = ["0 1 143 test.mail.hoster.example."]
    partial[("shop.example", "MX")] = ["10 mx.elsewhere.example."]
    # Priority and weight are the hoster's to choose: only port and target must match.
    partial[("_submission._tcp.shop.example", "SRV")] = ["10 5 587 SMTP.hoster.example."]
    with LocalDNS(partial) as server:
        use(settings, server)
        status = {(r.record.name, r.record.type): r for r in dns_records.check(shop)}
    assert status[("autodiscover.shop.example", "CNAME")].status == "missing"
    assert status[("_imaps._tcp.shop.example", "SRV")].status == "wrong"
    assert status[("_imaps._tcp.shop.example", "SRV")].found == [
        "0 1 143 test.mail.hoster.example."
    ]
    assert status[("shop.example", "MX")].status == "wrong"
    assert status[("_submission._tcp.shop.example", "SRV")].status == "ok"
    assert status[("autoconfig.shop.example", "CNAME")].status == "ok"


def test_an_unreachable_resolver_is_could_not_check(shop: Domain, settings) -> None:  # type: ignore[no-untyped-def]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        settings.POSTAMT_DNS_RESOLVERS = ["127.0.0.1"]
        settings.POSTAMT_DNS_PORT = silent.getsockname()[1]
        settings.POSTAMT_DNS_TIMEOUT = 0.2
        results = dns_records.check(shop)
    assert {r.status for r in results} == {"unknown"}


# --- The pages ------------------------------------------------------------------------------


def test_the_customer_sees_the_records_and_checks_them(
    owner_client: Client, shop: Domain, mailbox: Mailbox, settings
) -> None:  # type: ignore[no-untyped-def]
    url = reverse("portal:domain_dns", args=[shop.pk])
    assert url in owner_client.get(reverse("portal:overview")).content.decode()
    html = owner_client.get(url).content.decode()
    assert "_imaps._tcp.shop.example" in html and "0 1 993 test.mail.hoster.example." in html
    assert 'data-status=""' in html  # nothing asked of DNS yet
    partial = dict(GOOD)
    del partial[("autoconfig.shop.example", "CNAME")]
    with LocalDNS(partial) as server:
        use(settings, server)
        checked = owner_client.get(url + "?check=1").content.decode()
    assert 'data-record="CNAME autoconfig.shop.example" data-status="missing"' in checked
    assert 'data-record="MX shop.example" data-status="ok"' in checked
    assert "Some records are missing or different" in checked


def test_the_customer_sees_it_in_german(
    owner_client: Client, shop: Domain, customer: Customer
) -> None:
    Customer.objects.filter(pk=customer.pk).update(language="de")
    html = owner_client.get(reverse("portal:domain_dns", args=[shop.pk])).content.decode()
    assert "DNS von shop.example" in html


def test_staff_see_the_same_records_and_check(
    client: Client, staff: User, shop: Domain, settings
) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff)
    url = reverse("staff:domain_dns", args=[shop.pk])
    assert (
        url
        in client.get(reverse("staff:customer_detail", args=[shop.customer_id])).content.decode()
    )
    with LocalDNS(GOOD) as server:
        use(settings, server)
        html = client.get(url + "?check=1").content.decode()
    assert "All records are present and correct." in html


def test_another_customers_domain_is_404(client: Client, stranger: User, shop: Domain) -> None:
    client.force_login(stranger)
    assert client.get(reverse("portal:domain_dns", args=[shop.pk])).status_code == 404
