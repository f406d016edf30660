"""Services for customer logins: creating them and inviting them."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from accounts.emails import send_invite
from accounts.models import AuditEntry, Customer, User
from accounts.services import customer_user_create
from tests.factories import make_customer

pytestmark = pytest.mark.django_db


# --- Customer users -------------------------------------------------------------------------


def test_customer_user_gets_an_unusable_password_and_an_invitation_after_commit(
    customer: Customer, staff: User, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        user = customer_user_create(
            customer=customer, email=" Lena.Berg@Example.ORG ", actor=staff, ip="192.0.2.1"
        )
    assert (user.username, user.email, user.customer) == (
        "lena.berg@example.org",
        "lena.berg@example.org",
        customer,
    )
    assert not user.has_usable_password() and not user.is_staff
    assert len(callbacks) == 1  # the invitation is queued only once the user exists
    entry = AuditEntry.objects.get(action="user.create")
    assert (entry.actor, entry.customer, entry.ip_address) == (staff, customer, "192.0.2.1")


def test_invitation_is_in_the_customers_language_with_a_working_link(client) -> None:  # type: ignore[no-untyped-def]
    customer = make_customer("Bäckerei Müller", language="de")
    user = customer_user_create(customer=customer, email="lena@example.org", actor="test")
    assert send_invite(user.pk)
    message = mail.outbox[0]
    assert message.to == ["lena@example.org"]
    assert "Bäckerei Müller" in message.subject and "Zugang" in message.subject
    assert "Passwort" in message.body
    assert message.alternatives and "<a href=" in message.alternatives[0][0]
    link = next(w for w in message.body.split() if "/accounts/password/reset/" in w)
    path = link.split("://", 1)[1].split("/", 1)[1]
    page = client.get("/" + path, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert page.context["validlink"]
    # The set-password page speaks the customer's language too, not the browser's.
    assert '<html lang="de"' in page.content.decode()
    assert "Passwort" in page.content.decode()


def test_no_invitation_once_a_password_is_set(customer: Customer) -> None:
    user = customer_user_create(customer=customer, email="lena@example.org", actor="test")
    user.set_password("Chosen-Pass-2041")
    user.save()
    assert not send_invite(user.pk)
    assert not send_invite(987654)
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("email", "text"),
    [
        ("not-an-address", "valid email address"),
        ("inhaber@example.org", "already a login"),
        ("INHABER@example.org", "already a login"),
        ("hanna", "valid email address"),
    ],
)
def test_customer_user_refusals(
    customer: Customer, owner: User, staff: User, email: str, text: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        customer_user_create(customer=customer, email=email, actor="test")
    assert text in " ".join(exc.value.message_dict["email"])
    assert User.objects.count() == 2
