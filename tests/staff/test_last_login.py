"""The staff mailbox page says when the mailbox last logged in, per protocol."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from mailboxes.models import Mailbox, MailboxLogin
from mailboxes.selectors import LAST_LOGIN_MIGRATION
from tests.factories import make_mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client) -> User:
    user = User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    client.force_login(user)
    return user


def last_login_text(client: Client, mailbox: Mailbox, language: str = "en") -> str:
    url = reverse("staff:mailbox_detail", args=[mailbox.pk])
    html = client.get(url, HTTP_ACCEPT_LANGUAGE=language).content.decode()
    match = re.search(r'(?s)<dd id="last-login">(.*?)</dd>', html)
    assert match, "no last login on the page"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def recording_began(at: datetime) -> None:
    app, name = LAST_LOGIN_MIGRATION
    MigrationRecorder.Migration.objects.filter(app=app, name=name).update(applied=at)


def created(mailbox: Mailbox, at: datetime) -> Mailbox:
    Mailbox.objects.filter(pk=mailbox.pk).update(created_at=at)
    return mailbox


def test_staff_see_the_last_login_per_protocol(client: Client, staff: User) -> None:
    recording_began(timezone.now() - timedelta(days=1000))
    mailbox = created(make_mailbox("anna"), timezone.now() - timedelta(days=10))
    two_hours_ago = timezone.now() - timedelta(hours=2)
    MailboxLogin.objects.create(
        username=mailbox.address, protocol="imap", last_login=int(two_hours_ago.timestamp())
    )

    assert last_login_text(client, mailbox) == "IMAP 2 hours ago · POP3 never"
    assert last_login_text(client, mailbox, "de") == "IMAP vor 2 Stunden · POP3 nie"


def test_a_mailbox_older_than_the_recording_shows_none_since_then(
    client: Client, staff: User
) -> None:
    mailbox = created(make_mailbox("anna"), timezone.now() - timedelta(days=400))
    began = timezone.now() - timedelta(days=3)
    recording_began(began)

    date = timezone.localtime(began).strftime("%m/%d/%Y")
    assert last_login_text(client, mailbox) == f"IMAP none since {date} · POP3 none since {date}"
