"""A changed mailbox password reaches the customer's contact address over real SMTP, once,
sent by the real worker after the change committed; the new password works over IMAP."""

from __future__ import annotations

import time

import pytest

from accounts.models import User
from mailboxes.models import Mailbox
from mailboxes.services import mailbox_set_password
from mailboxes.tasks import send_password_notice
from tests.factories import make_customer, make_domain, make_mailbox
from tests.mailclients import imaps
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

NEW_PASSWORD = "Quiet-Harbour-7359"


def test_the_contact_address_gets_one_notice_over_smtp(
    dovecot, mail_server, celery_worker, smtp_server
) -> None:  # type: ignore[no-untyped-def]
    customer = make_customer("Bäckerei Müller", language="de")
    mailbox = make_mailbox("anna", domain=make_domain(customer, "baeckerei-notice.example"))
    owner = User.objects.create_user(
        "inhaber@example.org", email="inhaber@example.org", password="x", customer=customer
    )
    mailbox_set_password(mailbox=mailbox, password=NEW_PASSWORD, actor=owner, ip="198.51.100.9")

    wait_for(lambda: len(smtp_server.messages) >= 1, "the notice", timeout=20)
    (message,) = smtp_server.messages
    assert message["To"] == customer.contact_email
    assert "Das Passwort von anna@baeckerei-notice.example wurde geändert" in message["Subject"]
    body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "inhaber@example.org" in body
    assert NEW_PASSWORD not in body
    assert not Mailbox.objects.get(pk=mailbox.pk).password_notice_due

    # A redelivered task sends nothing more.
    send_password_notice.delay(mailbox.pk).get(timeout=20)
    time.sleep(0.5)
    assert len(smtp_server.messages) == 1

    client = imaps(dovecot)
    client.login(mailbox.address, NEW_PASSWORD)
    client.logout()
