"""Set up your devices: the settings of the mailbox's own protocol in plain words, a QR code
with a link a phone can open, the profile, and the seed's POP3/IMAP advice in the customer's
language. Other customers get 404 (test_isolation.py walks these routes too)."""

from __future__ import annotations

import plistlib
import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Customer
from mailboxes.models import Mailbox
from tests.factories import make_domain, make_mailbox, make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _public_names(settings):  # type: ignore[no-untyped-def]
    settings.POSTAMT_MAIL_HOSTNAME = "mail.hoster.example"
    settings.POSTAMT_MAIL_SECURITY = "ssl"
    settings.POSTAMT_SUBMISSION_HOST = "smtp.hoster.example"
    settings.POSTAMT_SUBMISSION_SECURITY = "starttls"
    settings.SITE_URL = "https://panel.hoster.example"


@pytest.fixture
def pop3_mailbox(customer: Customer) -> Mailbox:
    return make_mailbox(
        "kasse",
        protocol="pop3",
        plan=make_plan(protocol="pop3"),
        domain=make_domain(customer, "bäckerei.example"),
    )


def page(client: Client, mailbox: Mailbox, **extra: str) -> str:
    response = client.get(reverse("portal:mailbox_devices", args=[mailbox.pk]), **extra)
    assert response.status_code == 200
    return response.content.decode()


def test_an_imap_mailbox_gets_imap_settings_and_the_imap_advice(
    owner_client: Client, mailbox: Mailbox
) -> None:
    html = page(owner_client, mailbox)
    assert "This mailbox uses IMAP" in html
    assert "Every device sees the same mail" in html
    assert "We back it up for you" in html
    assert "mail.hoster.example" in html and ">993<" in html and "SSL/TLS" in html
    assert "smtp.hoster.example" in html and ">587<" in html and "STARTTLS" in html
    assert ">995<" not in html and "POP3 logins" in html


def test_a_pop3_mailbox_gets_pop3_settings_and_the_pop3_advice(
    owner_client: Client, pop3_mailbox: Mailbox
) -> None:
    html = page(owner_client, pop3_mailbox)
    assert "This mailbox uses POP3" in html
    assert "back up that device" in html
    assert ">995<" in html and ">993<" not in html
    assert "xn--bckerei-5wa" in html  # the login name as the server knows it


def test_the_advice_is_in_the_customers_language(
    owner_client: Client, pop3_mailbox: Mailbox, customer: Customer
) -> None:
    Customer.objects.filter(pk=customer.pk).update(language="de")
    html = page(owner_client, pop3_mailbox)
    assert "Geräte einrichten" in html
    assert "Dieses Postfach verwendet POP3" in html


def test_the_qr_code_holds_a_working_link_to_the_profile(
    owner_client: Client, mailbox: Mailbox
) -> None:
    html = page(owner_client, mailbox)
    assert '<figure class="qr-code"' in html and "<svg" in html
    link = re.search(r'data-profile-link="([^"]+)"', html)
    assert link is not None
    anonymous = Client()
    assert link.group(1).startswith("https://panel.hoster.example/")
    response = anonymous.get(link.group(1).removeprefix("https://panel.hoster.example"))
    assert response.status_code == 200
    assert plistlib.loads(response.content)["PayloadContent"][0]["EmailAccountType"] == (
        "EmailTypeIMAP"
    )


def test_the_profile_downloads_from_the_portal(owner_client: Client, mailbox: Mailbox) -> None:
    response = owner_client.get(reverse("portal:mailbox_profile", args=[mailbox.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-apple-aspen-config"
    assert 'filename="anna_at_baeckerei.example.mobileconfig"' in response["Content-Disposition"]


def test_the_mailbox_page_and_the_overview_link_here(
    owner_client: Client, mailbox: Mailbox
) -> None:
    url = reverse("portal:mailbox_devices", args=[mailbox.pk])
    assert (
        url
        in owner_client.get(reverse("portal:mailbox_detail", args=[mailbox.pk])).content.decode()
    )
    assert url in owner_client.get(reverse("portal:overview")).content.decode()
