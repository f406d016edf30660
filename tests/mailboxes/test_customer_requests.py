"""A customer's notification settings, refresh requests and plan change requests."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AuditEntry, Customer, User
from mailboxes.models import GIB, MIB, Mailbox, Plan, PlanChangeRequest
from mailboxes.plan_changes import (
    plan_change_approve,
    plan_change_cancel,
    plan_change_decline,
    plan_change_request,
    self_service_allowed,
)
from mailboxes.services import customer_update_notifications, mailbox_request_refresh
from tests.factories import make_plan

pytestmark = pytest.mark.django_db


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
