"""Addresses that moved keep working for bookmarks, and the admin site is gone."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from tests.factories import make_customer

pytestmark = pytest.mark.django_db


def test_an_old_backup_link_sends_a_customer_to_the_portal(client: Client) -> None:
    client.force_login(User.objects.create_user("owner", customer=make_customer()))
    response = client.get("/backups/mailboxes/7/?page=2")
    assert response.status_code == 301
    assert response["Location"] == "/portal/backups/mailboxes/7/?page=2"


def test_an_old_backup_link_sends_staff_to_the_staff_pages(client: Client) -> None:
    client.force_login(User.objects.create_user("hanna", is_staff=True))
    response = client.get("/backups/snapshots/3/download/")
    assert response.status_code == 301
    assert response["Location"] == "/staff/backups/snapshots/3/download/"


def test_an_old_backup_link_asks_anonymous_visitors_to_log_in_first(client: Client) -> None:
    response = client.get("/backups/mailboxes/7/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/backups/mailboxes/7/")


def test_there_is_no_admin_site_to_bypass_the_login_throttle(client: Client) -> None:
    assert client.get("/admin/login/").status_code == 404
