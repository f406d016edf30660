"""Services for customer logins, notification settings, refreshes and plan change requests."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from accounts.emails import send_invite
from accounts.models import AuditEntry, Customer, PlanChangeRequest, User
from accounts.services import (
    customer_update_notifications,
    customer_user_create,
    mailbox_request_refresh,
    plan_change_approve,
    plan_change_cancel,
    plan_change_decline,
    plan_change_request,
    self_service_allowed,
)
from mailboxes.models import GIB, MIB, Mailbox, Plan
from tests.factories import make_customer, make_plan

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
    page = client.get("/" + path, follow=True)
    assert page.context["validlink"]


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


# --- Notification settings ------------------------------------------------------------------


def test_unchanged_settings_write_no_audit_entry(customer: Customer) -> None:
    customer_update_notifications(
        customer=customer,
        contact_email=customer.contact_email,
        language=customer.language,
        only_full_warnings=customer.only_full_warnings,
        copy_warnings_to_mailbox=customer.copy_warnings_to_mailbox,
        actor="test",
    )
    assert not AuditEntry.objects.filter(action="customer.notifications").exists()


def test_settings_refuse_bad_input_with_every_problem(customer: Customer) -> None:
    with pytest.raises(ValidationError) as exc:
        customer_update_notifications(
            customer=customer,
            contact_email="nope",
            language="fr",
            only_full_warnings=False,
            copy_warnings_to_mailbox=False,
            actor="test",
        )
    assert set(exc.value.message_dict) == {"contact_email", "language"}


def test_idn_mailbox_is_recognised_as_the_customers_own(customer: Customer, plan: Plan) -> None:
    from tests.factories import make_domain, make_mailbox

    make_mailbox("info", domain=make_domain(customer, "bücher.example"), plan=plan)
    with pytest.raises(ValidationError):
        customer_update_notifications(
            customer=customer,
            contact_email="INFO@Bücher.example",
            language="de",
            only_full_warnings=False,
            copy_warnings_to_mailbox=False,
            actor="test",
        )


# --- Refresh --------------------------------------------------------------------------------


def test_refresh_is_audited_only_when_it_gets_through(
    mailbox: Mailbox, staff: User, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        assert mailbox_request_refresh(mailbox=mailbox, actor=staff)
        assert not mailbox_request_refresh(mailbox=mailbox, actor=staff)
    assert len(callbacks) == 1  # one measurement queued
    assert AuditEntry.objects.filter(action="mailbox.refresh").count() == 1


# --- Plan change requests -------------------------------------------------------------------


def test_approval_changes_the_plan_once_and_is_audited(
    pending_request: PlanChangeRequest, mailbox: Mailbox, bigger_plan: Plan, staff: User
) -> None:
    plan_change_approve(plan_request=pending_request, actor=staff, ip="192.0.2.9")
    mailbox.refresh_from_db()
    assert mailbox.plan == bigger_plan
    pending_request.refresh_from_db()
    assert (pending_request.status, pending_request.decided_by_name) == ("approved", "hanna")
    actions = set(AuditEntry.objects.filter(actor=staff).values_list("action", flat=True))
    assert actions == {"plan_request.approve", "mailbox.plan"}
    with pytest.raises(ValidationError, match="already dealt with"):
        plan_change_approve(plan_request=pending_request, actor=staff)
    with pytest.raises(ValidationError, match="already dealt with"):
        plan_change_decline(plan_request=pending_request, actor=staff)


def test_decline_keeps_the_plan_and_the_reason(
    pending_request: PlanChangeRequest, mailbox: Mailbox, staff: User
) -> None:
    plan_change_decline(plan_request=pending_request, reason=" Erst im Mai ", actor=staff)
    mailbox.refresh_from_db()
    assert mailbox.plan.name == "IMAP Standard"
    pending_request.refresh_from_db()
    assert (pending_request.status, pending_request.decision_note) == ("declined", "Erst im Mai")
    with pytest.raises(ValidationError):
        plan_change_cancel(plan_request=pending_request, actor="test")


def test_one_pending_request_per_mailbox(
    pending_request: PlanChangeRequest, mailbox: Mailbox, bigger_plan: Plan
) -> None:
    with pytest.raises(ValidationError, match="already a request"):
        plan_change_request(mailbox=mailbox, plan=bigger_plan, protocol="pop3", actor="test")
    plan_change_cancel(plan_request=pending_request, actor="test")
    plan_change_request(mailbox=mailbox, plan=bigger_plan, protocol="pop3", actor="test")


def test_a_protocol_the_plan_lacks_is_refused(mailbox: Mailbox, plan: Plan) -> None:
    pop3_only = make_plan(protocol="pop3")
    with pytest.raises(ValidationError) as exc:
        plan_change_request(mailbox=mailbox, plan=pop3_only, protocol="imap", actor="test")
    assert "does not include IMAP" in exc.value.message_dict["protocol"][0]


@pytest.mark.parametrize(
    ("setting", "max_quota", "expected"),
    [
        (False, 50 * GIB, False),
        (True, 50 * GIB, True),
        (["IMAP Business"], 50 * GIB, True),
        (["Other"], 50 * GIB, False),
        (True, 50 * MIB, False),  # would cut the quota: always for staff to decide
    ],
)
def test_self_service_rules(
    settings: object, mailbox: Mailbox, setting: object, max_quota: int, expected: bool
) -> None:
    settings.POSTAMT_SELF_SERVICE_PLAN_CHANGES = setting  # type: ignore[attr-defined]
    plan = make_plan(
        protocol="imap",
        name="IMAP Business",
        max_quota_bytes=max_quota,
        default_quota_bytes=min(max_quota, 10 * MIB),
    )
    assert self_service_allowed(mailbox, plan) is expected
