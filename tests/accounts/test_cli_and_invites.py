"""The customer_user_create command, and the invitation over real SMTP from a real worker."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import AuditEntry, Customer, User
from accounts.services import customer_user_create
from tests.factories import make_customer
from tests.waiting import wait_for


@pytest.mark.django_db
def test_cli_creates_a_login_audited_as_the_cli_user(customer: Customer) -> None:
    out = StringIO()
    call_command(
        "customer_user_create",
        "Lena@Example.org",
        "--customer",
        str(customer.pk),
        "--json",
        stdout=out,
    )
    data = json.loads(out.getvalue())
    user = User.objects.get(pk=data["id"])
    assert (user.email, user.customer, data["customer_id"]) == (
        "lena@example.org",
        customer,
        customer.pk,
    )
    assert AuditEntry.objects.get(action="user.create").actor_name.startswith("cli:")
    with pytest.raises(CommandError, match="already a login"):
        call_command("customer_user_create", "lena@example.org", "--customer", str(customer.pk))


@pytest.mark.integration
def test_invitation_reaches_real_smtp_through_the_worker(
    transactional_db: None, celery_worker: object, smtp_server
) -> None:  # type: ignore[no-untyped-def]
    customer = make_customer("Bäckerei Müller", language="de")
    user = customer_user_create(customer=customer, email="lena@example.org", actor="test")
    wait_for(lambda: smtp_server.messages, "the invitation", timeout=20)
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]
    assert message["To"] == "lena@example.org"
    assert "Bäckerei Müller" in message["Subject"]
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "/accounts/password/reset/" in body
    assert not User.objects.get(pk=user.pk).has_usable_password()
