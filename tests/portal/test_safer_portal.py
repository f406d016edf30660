"""A safer portal: a mailbox password changes only with the user's own password, and the
contact address hears of it; only plans offered in the portal can be asked for; a disabled
login's sessions end."""

from __future__ import annotations

import smtplib

import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import Customer, User
from accounts.services import customer_user_set_active
from mailboxes import password_notices
from mailboxes.models import Mailbox, Plan, PlanChangeRequest
from mailboxes.passwords import verify_password
from mailboxes.services import mailbox_set_password, plan_set_self_service
from tests.audiences import OWNER_PASSWORD
from tests.factories import PASSWORD, make_plan

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Quiet-Harbour-7359"
IP = "198.51.100.77"


def change(client: Client, mailbox: Mailbox, current: str | None, ip: str = IP):  # type: ignore[no-untyped-def]
    data = {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    if current is not None:
        data["current_password"] = current
    return client.post(reverse("portal:mailbox_password", args=[mailbox.pk]), data, REMOTE_ADDR=ip)


# --- The user's own password ------------------------------------------------------------------


@pytest.mark.parametrize("current", [None, "", "not-my-password"])
def test_a_mailbox_password_needs_the_users_own_password(
    owner_client: Client, mailbox: Mailbox, current: str | None
) -> None:
    response = change(owner_client, mailbox, current)
    assert response.status_code == 400
    assert response.context["password_form"].errors["current_password"]
    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, PASSWORD)


def test_with_the_users_own_password_it_changes_and_a_notice_is_queued(
    owner_client: Client, mailbox: Mailbox, sent_tasks, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=True):
        response = change(owner_client, mailbox, OWNER_PASSWORD)
    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, NEW_PASSWORD)
    assert mailbox.password_notice_due
    assert ("mailboxes.send_password_notice", (mailbox.pk,), {}) in sent_tasks


def test_wrong_own_passwords_count_as_failed_logins(
    owner_client: Client, owner: User, mailbox: Mailbox, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    for _ in range(3):
        change(owner_client, mailbox, "guess")
    response = change(owner_client, mailbox, OWNER_PASSWORD)  # right, but too late
    assert response.status_code == 400
    assert "Too many wrong passwords" in str(response.context["password_form"].errors)
    # The login form counts the same: guessing here locks the login there too.
    login = Client().post(
        reverse("accounts:login"),
        {"username": owner.username, "password": OWNER_PASSWORD},
        REMOTE_ADDR=IP,
    )
    assert "Too many failed logins" in login.content.decode()


# --- The notice to the contact address -------------------------------------------------------


def test_the_contact_address_hears_of_a_changed_password_once(
    mailbox: Mailbox, owner: User, customer: Customer
) -> None:
    Customer.objects.filter(pk=customer.pk).update(language="de")
    mailbox_set_password(mailbox=mailbox, password=NEW_PASSWORD, actor=owner, ip=IP)
    assert password_notices.send(mailbox.pk) is True
    assert password_notices.send(mailbox.pk) is False  # a redelivered task sends nothing
    (message,) = mail.outbox
    assert message.to == [customer.contact_email]
    assert "anna@baeckerei.example" in message.subject
    assert "Passwort" in message.subject
    assert "inhaber@example.org" in message.body
    assert NEW_PASSWORD not in message.body


def test_staff_changes_are_announced_by_role_not_by_name(mailbox: Mailbox, staff: User) -> None:
    mailbox_set_password(mailbox=mailbox, password=NEW_PASSWORD, actor=staff)
    password_notices.send(mailbox.pk)
    (message,) = mail.outbox
    assert "hanna" not in message.body
    assert "Administrator" in message.body or "admin" in message.body.lower()


def test_an_smtp_failure_gives_the_notice_back_for_the_retry_and_the_sweeper(
    mailbox: Mailbox, owner: User, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    mailbox_set_password(mailbox=mailbox, password=NEW_PASSWORD, actor=owner)

    def refuse(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise smtplib.SMTPServerDisconnected("gone")

    monkeypatch.setattr("django.core.mail.message.EmailMessage.send", refuse)
    with pytest.raises(smtplib.SMTPException):
        password_notices.send(mailbox.pk)
    assert Mailbox.objects.get(pk=mailbox.pk).password_notice_due
    from datetime import timedelta

    assert password_notices.pending(older_than=timedelta(0)) == [mailbox.pk]


# --- Only the plans offered in the portal -----------------------------------------------------


def test_the_plan_form_offers_only_plans_marked_for_the_portal(
    owner_client: Client, mailbox: Mailbox, bigger_plan: Plan
) -> None:
    hidden = make_plan(protocol="imap", name="Staff only", self_service=False)
    response = owner_client.get(reverse("portal:mailbox_plan", args=[mailbox.pk]))
    choices = {plan.pk for plan in response.context["form"].fields["plan"].queryset}
    assert bigger_plan.pk in choices and mailbox.plan_id in choices
    assert hidden.pk not in choices
    assert "Staff only" not in response.content.decode()


def test_a_plan_not_offered_is_refused_even_when_posted(
    owner_client: Client, mailbox: Mailbox
) -> None:
    hidden = make_plan(protocol="imap", name="Staff only", self_service=False)
    response = owner_client.post(
        reverse("portal:mailbox_plan", args=[mailbox.pk]), {"plan": hidden.pk, "protocol": ""}
    )
    assert response.status_code == 400
    assert not PlanChangeRequest.objects.exists()


def test_the_mailboxs_own_plan_stays_choosable_for_a_protocol_change(
    owner_client: Client, mailbox: Mailbox
) -> None:
    Plan.objects.filter(pk=mailbox.plan_id).update(self_service=False, allows_pop3=True)
    response = owner_client.post(
        reverse("portal:mailbox_plan", args=[mailbox.pk]),
        {"plan": mailbox.plan_id, "protocol": "pop3"},
    )
    assert response.status_code == 302
    assert PlanChangeRequest.objects.get().protocol == "pop3"


def test_plan_offer_command_marks_and_withdraws(bigger_plan: Plan) -> None:
    from django.core.management import call_command

    call_command("plan_offer", bigger_plan.name, "--withdraw")
    assert not Plan.objects.get(pk=bigger_plan.pk).self_service
    call_command("plan_offer", bigger_plan.name)
    assert Plan.objects.get(pk=bigger_plan.pk).self_service


def test_withdrawing_a_plan_is_audited(bigger_plan: Plan, staff: User) -> None:
    from accounts.models import AuditEntry

    plan_set_self_service(plan=bigger_plan, offered=False, actor=staff)
    assert AuditEntry.objects.filter(action="plan.self_service").count() == 1


# --- A disabled login's sessions end ----------------------------------------------------------


def test_a_disabled_login_is_logged_out_on_its_next_request(
    owner_client: Client, owner: User, staff: User, mailbox: Mailbox
) -> None:
    assert owner_client.get(reverse("portal:overview")).status_code == 200
    assert Session.objects.count() == 1
    customer_user_set_active(user=owner, active=False, actor=staff)
    response = owner_client.get(reverse("portal:overview"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    # And it cannot log in again.
    login = Client().post(
        reverse("accounts:login"), {"username": owner.username, "password": OWNER_PASSWORD}
    )
    assert login.status_code == 200


def test_disabling_deletes_the_logins_stored_sessions(
    owner_client: Client, owner: User, staff: User, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    other = Client()
    other.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        customer_user_set_active(user=owner, active=False, actor=staff)
    remaining = [s.get_decoded().get("_auth_user_id") for s in Session.objects.all()]
    assert remaining == [str(staff.pk)]


def test_staff_disable_and_enable_a_login_from_the_customer_page(
    client: Client, owner: User, staff: User, customer: Customer
) -> None:
    client.force_login(staff)
    url = reverse("staff:customer_user_active", args=[customer.pk, owner.pk])
    page = client.get(reverse("staff:customer_detail", args=[customer.pk])).content.decode()
    assert url in page
    assert client.post(url, {"active": "0"}).status_code == 302
    assert not User.objects.get(pk=owner.pk).is_active
    assert client.post(url, {"active": "1"}).status_code == 302
    assert User.objects.get(pk=owner.pk).is_active


def test_a_login_of_another_customer_is_404_on_that_route(
    client: Client, staff: User, customer: Customer, stranger: User
) -> None:
    client.force_login(staff)
    url = reverse("staff:customer_user_active", args=[customer.pk, stranger.pk])
    assert client.post(url, {"active": "0"}).status_code == 404
    assert User.objects.get(pk=stranger.pk).is_active


def test_customers_cannot_disable_logins(
    owner_client: Client, owner: User, customer: Customer
) -> None:
    url = reverse("staff:customer_user_active", args=[customer.pk, owner.pk])
    assert owner_client.post(url, {"active": "0"}).status_code == 404
