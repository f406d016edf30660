"""A login lasts SESSION_COOKIE_AGE (8 hours by default) and ends with the browser."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from accounts.models import User
from tests.factories import make_customer

pytestmark = pytest.mark.django_db

PASSWORD = "Sunny-Meadow-4471"


def log_in(client: Client) -> Session:
    User.objects.create_user(
        "inhaber@example.org", email="inhaber@example.org", password=PASSWORD,
        customer=make_customer("Bäckerei Müller"),
    )  # fmt: skip
    response = client.post(
        "/accounts/login/", {"username": "inhaber@example.org", "password": PASSWORD}
    )
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert not cookie["max-age"] and not cookie["expires"]  # gone when the browser closes
    return Session.objects.get(session_key=cookie.value)


def test_a_login_lasts_eight_hours(client: Client) -> None:
    assert settings.SESSION_COOKIE_AGE == 8 * 3600
    session = log_in(client)
    left = session.expire_date - timezone.now()
    assert timedelta(hours=7, minutes=59) < left <= timedelta(hours=8)


def test_an_expired_login_leads_back_to_the_login_page(client: Client) -> None:
    session = log_in(client)
    assert client.get("/portal/").status_code == 200
    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get("/portal/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
