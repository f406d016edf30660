"""A customer's grant for support to look into its backups: the rule in ``accounts.roles`` and
the services that give and take it back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts import roles
from accounts.models import AuditEntry, Customer, StaffRole, SupportAccessGrant, User
from accounts.services import (
    SUPPORT_ACCESS_HOURS,
    support_access_grant,
    support_access_revoke,
)
from portal.forms import SupportAccessForm

pytestmark = pytest.mark.django_db

GATED = sorted(roles.BY_GRANT)


def staff(role: str) -> User:
    return User.objects.create_user(f"{role}-user", is_staff=True, staff_role=role)


@pytest.fixture
def support() -> User:
    return staff(StaffRole.SUPPORT)


def granted(customer: Customer, owner: User, hours: int = 1) -> SupportAccessGrant:
    return support_access_grant(customer=customer, hours=hours, actor=owner)


@pytest.mark.parametrize("action", GATED)
def test_support_is_refused_without_the_customers_grant(
    customer: Customer, support: User, action: str
) -> None:
    assert not roles.may(support, action, customer_id=customer.pk)
    with pytest.raises(roles.GrantRequired):
        roles.authorize(support, action, customer_id=customer.pk)


@pytest.mark.parametrize("action", GATED)
def test_support_may_while_the_grant_lasts_and_gets_the_grant_back(
    customer: Customer, owner: User, support: User, action: str
) -> None:
    grant = granted(customer, owner)
    assert roles.may(support, action, customer_id=customer.pk)
    assert roles.authorize(support, action, customer_id=customer.pk) == grant


@pytest.mark.parametrize("action", GATED)
def test_a_grant_is_for_its_own_customer_only(
    customer: Customer, owner: User, other_customer: Customer, support: User, action: str
) -> None:
    granted(customer, owner)
    with pytest.raises(roles.GrantRequired):
        roles.authorize(support, action, customer_id=other_customer.pk)
    assert not roles.may(support, action)  # nobody named: no grant to rely on


@pytest.mark.parametrize("action", GATED)
def test_support_is_refused_once_the_grant_ran_out(
    customer: Customer, owner: User, support: User, action: str
) -> None:
    grant = granted(customer, owner)
    SupportAccessGrant.objects.filter(pk=grant.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(roles.GrantRequired):
        roles.authorize(support, action, customer_id=customer.pk)


@pytest.mark.parametrize("action", GATED)
def test_support_is_refused_once_the_customer_revoked_the_grant(
    customer: Customer, owner: User, support: User, action: str
) -> None:
    granted(customer, owner, hours=7 * 24)
    support_access_revoke(customer=customer, actor=owner)
    with pytest.raises(roles.GrantRequired):
        roles.authorize(support, action, customer_id=customer.pk)


@pytest.mark.parametrize("action", GATED)
def test_admins_need_no_grant_and_auditors_never_get_in(
    customer: Customer, owner: User, action: str
) -> None:
    """Auditors read the panel, not the customers' mail: not even a grant lets them in."""
    assert roles.authorize(staff(StaffRole.ADMIN), action, customer_id=customer.pk) is None
    granted(customer, owner)
    auditor = staff(StaffRole.AUDITOR)
    assert not roles.may(auditor, action, customer_id=customer.pk)
    with pytest.raises(PermissionDenied) as refused:
        roles.authorize(auditor, action, customer_id=customer.pk)
    assert not isinstance(refused.value, roles.GrantRequired)


def test_granting_is_recorded_with_its_end(customer: Customer, owner: User) -> None:
    before = timezone.now()
    grant = support_access_grant(customer=customer, hours=24, actor=owner, ip="198.51.100.7")

    assert before + timedelta(hours=24) <= grant.expires_at <= timezone.now() + timedelta(hours=24)
    assert grant.granted_by == owner
    entry = AuditEntry.objects.get(action="support_access.grant")
    assert entry.customer == customer and entry.actor == owner
    assert str(entry.ip_address) == "198.51.100.7"
    assert entry.details == {
        "grant": grant.pk,
        "hours": 24,
        "until": grant.expires_at.isoformat(),
        "replaced": False,
    }


def test_a_new_grant_moves_the_end_of_the_active_one(customer: Customer, owner: User) -> None:
    """One grant at a time: choosing an hour after a week shortens it, it does not add up."""
    week = granted(customer, owner, hours=7 * 24)
    hour = granted(customer, owner, hours=1)

    assert hour.pk == week.pk
    assert SupportAccessGrant.objects.filter(customer=customer).active().count() == 1
    assert hour.expires_at < timezone.now() + timedelta(hours=2)
    last = AuditEntry.objects.filter(action="support_access.grant").first()
    assert last is not None and last.details["replaced"] is True


def test_a_grant_after_one_ran_out_is_a_new_one(customer: Customer, owner: User) -> None:
    old = granted(customer, owner)
    SupportAccessGrant.objects.filter(pk=old.pk).update(expires_at=timezone.now())
    assert granted(customer, owner).pk != old.pk


def test_revoking_ends_the_grant_now_and_is_recorded(customer: Customer, owner: User) -> None:
    grant = granted(customer, owner, hours=24)

    revoked = support_access_revoke(customer=customer, actor=owner, ip="198.51.100.7")

    assert revoked is not None and revoked.pk == grant.pk
    assert revoked.revoked_by == owner and revoked.revoked_at is not None
    entry = AuditEntry.objects.get(action="support_access.revoke")
    assert entry.customer == customer and entry.details["grant"] == grant.pk


def test_revoking_without_a_grant_changes_and_records_nothing(
    customer: Customer, owner: User
) -> None:
    assert support_access_revoke(customer=customer, actor=owner) is None
    assert not AuditEntry.objects.filter(action="support_access.revoke").exists()


def test_only_the_offered_durations_are_accepted(customer: Customer, owner: User) -> None:
    with pytest.raises(ValidationError):
        support_access_grant(customer=customer, hours=24 * 365, actor=owner)
    assert not SupportAccessGrant.objects.exists()


def test_the_portal_form_offers_exactly_the_services_durations() -> None:
    offered = [value for value, _label in SupportAccessForm().fields["hours"].choices]
    assert tuple(offered) == SUPPORT_ACCESS_HOURS


def test_a_customer_cannot_grant_or_revoke_for_another_customer(
    customer: Customer, owner: User, other_customer: Customer, stranger: User
) -> None:
    with pytest.raises(PermissionDenied):
        support_access_grant(customer=customer, hours=1, actor=stranger)
    granted(customer, owner)
    with pytest.raises(PermissionDenied):
        support_access_revoke(customer=customer, actor=stranger)
    assert SupportAccessGrant.objects.filter(customer=customer).active().exists()


@pytest.mark.parametrize("role", [StaffRole.SUPPORT, StaffRole.ADMIN, StaffRole.AUDITOR])
def test_staff_cannot_grant_themselves_access(customer: Customer, role: str) -> None:
    with pytest.raises(PermissionDenied):
        support_access_grant(customer=customer, hours=1, actor=staff(role))
    assert not SupportAccessGrant.objects.exists()
