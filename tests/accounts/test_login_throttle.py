"""Guessing passwords is slowed down: failures lock an account out for a while, per address."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("ops", email="ops@hoster.example", password="Right-Pass-2041")


def login(client: Client, username: str, password: str, ip: str = "198.51.100.7"):  # type: ignore[no-untyped-def]
    return client.post(
        reverse("accounts:login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_five_failures_lock_the_account_out_from_that_address(client, staff, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 5
    for _ in range(5):
        assert login(client, "ops", "wrong").status_code == 200
    response = login(client, "ops", "Right-Pass-2041")
    assert response.status_code == 200  # the form again, not the redirect of a login
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_same_account_still_works_from_another_address(client, staff, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    for _ in range(3):
        login(client, "ops", "wrong")
    assert login(client, "ops", "Right-Pass-2041", ip="203.0.113.9").status_code == 302


def test_many_failures_from_one_address_block_it_for_every_account(client, staff, settings):
    settings.LOGIN_FAILURES_PER_IP = 4
    for name in ("a", "b", "c", "d"):
        login(client, name, "wrong")
    assert "Too many failed logins" in login(client, "ops", "Right-Pass-2041").content.decode()


def test_successful_logins_are_not_counted(client, staff, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT = 2
    for _ in range(3):
        assert login(client, "ops", "Right-Pass-2041").status_code == 302
        client.logout()


# --- Password-reset emails -------------------------------------------------------------------


def ask_for_link(client: Client, email: str, ip: str = "198.51.100.7"):  # type: ignore[no-untyped-def]
    return client.post(reverse("accounts:password_reset"), {"email": email}, REMOTE_ADDR=ip)


def test_reset_links_for_one_address_are_limited(client, staff, settings, mailoutbox):
    settings.PASSWORD_RESETS_PER_ADDRESS = 3
    for _ in range(3):
        assert ask_for_link(client, "ops@hoster.example").status_code == 302

    refused = ask_for_link(client, "OPS@hoster.example", ip="203.0.113.9")

    assert refused.status_code == 429
    assert "Too many links were asked for. Please wait 60 minutes" in refused.content.decode()
    assert len(mailoutbox) == 3


def test_an_unknown_address_is_refused_alike(client, settings, mailoutbox):
    """The limit counts addresses, not accounts: a refusal tells nothing about an account."""
    settings.PASSWORD_RESETS_PER_ADDRESS = 1
    assert ask_for_link(client, "nobody@example.org").status_code == 302
    assert ask_for_link(client, "nobody@example.org").status_code == 429
    assert mailoutbox == []


def test_one_client_cannot_mail_many_addresses(client, staff, settings, mailoutbox):
    settings.PASSWORD_RESETS_PER_IP = 2
    ask_for_link(client, "a@example.org")
    ask_for_link(client, "b@example.org")

    assert ask_for_link(client, "ops@hoster.example").status_code == 429
    assert ask_for_link(client, "ops@hoster.example", ip="203.0.113.9").status_code == 302
    assert len(mailoutbox) == 1


def test_rotating_addresses_do_not_reset_an_accounts_count(client, staff, settings):
    settings.LOGIN_FAILURES_PER_ACCOUNT_ANYWHERE = 6
    for i in range(6):
        login(client, "ops", "wrong", ip=f"203.0.113.{i + 1}")
    response = login(client, "ops", "Right-Pass-2041", ip="198.51.100.99")
    assert "Too many failed logins" in response.content.decode()


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(client, staff, settings):
    """Without the proxy list everybody behind the proxy would share one count; with it, a
    client cannot escape its count by writing its own X-Forwarded-For."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    from web.client import _trusted

    _trusted.cache_clear()
    settings.LOGIN_FAILURES_PER_ACCOUNT = 2

    def via_proxy(forwarded: str, password: str = "wrong"):  # type: ignore[no-untyped-def]
        return client.post(
            reverse("accounts:login"),
            {"username": "ops", "password": password},
            REMOTE_ADDR="10.1.2.3",
            HTTP_X_FORWARDED_FOR=forwarded,
        )

    via_proxy("1.2.3.4, 198.51.100.7")  # a forged first entry; the proxy appended the truth
    via_proxy("5.6.7.8, 198.51.100.7")
    assert "Too many failed logins" in via_proxy("9.9.9.9, 198.51.100.7").content.decode()
    assert via_proxy("198.51.100.8", "Right-Pass-2041").status_code == 302  # another client
    _trusted.cache_clear()


def test_logins_are_refused_while_the_counters_cannot_be_reached(client, staff, settings):
    """Without Redis nothing could be counted: refusing is safe, letting anyone guess is not."""
    from accounts import throttle

    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"}
    }
    throttle._client.cache_clear()
    try:
        response = login(client, "ops", "Right-Pass-2041")
        assert response.status_code == 200
        assert "not possible for a moment" in response.content.decode()
        assert "_auth_user_id" not in client.session
    finally:
        throttle._client.cache_clear()
