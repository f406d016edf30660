"""A bar's level comes from its plan's warning thresholds, the same ones that send the emails."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from mailboxes import quota_warnings
from mailboxes.models import MIB, Mailbox, Plan, QuotaWarning
from tests.factories import make_domain, make_mailbox, make_plan

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("thresholds", "percent", "level"),
    [
        ([80, 90, 95, 100], 79, "ok"),
        ([80, 90, 95, 100], 80, "warn"),
        ([80, 90, 95, 100], 94, "warn"),
        ([80, 90, 95, 100], 95, "danger"),
        ([80, 90, 95, 100], 100, "full"),
        ([50, 75, 100], 49, "ok"),
        ([50, 75, 100], 60, "warn"),
        ([50, 75, 100], 75, "danger"),
        ([90], 89, "ok"),
        ([90], 90, "warn"),
        ([100], 99, "ok"),
        ([], 120, "full"),
    ],
)
def test_levels_follow_the_plans_thresholds(thresholds: list[int], percent: int, level: str):
    assert Plan(warning_thresholds=thresholds).usage_level(percent) == level


@pytest.fixture
def early_warning_mailbox(customer) -> Mailbox:  # type: ignore[no-untyped-def]
    plan = make_plan(warning_thresholds=[50, 75, 100])
    mailbox = make_mailbox(
        "anna", domain=make_domain(customer, "early.example"), plan=plan, quota_bytes=100 * MIB
    )
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=60 * MIB)
    mailbox.refresh_from_db()
    return mailbox


def test_a_plan_warning_at_50_shows_60_percent_as_a_warning_everywhere(
    client: Client, early_warning_mailbox: Mailbox, owner: User, staff: User
):
    client.force_login(owner)
    portal = client.get(reverse("portal:mailbox_detail", args=[early_warning_mailbox.pk]))
    overview = client.get(reverse("portal:overview"))
    client.force_login(staff)
    staff_page = client.get(reverse("staff:mailbox_detail", args=[early_warning_mailbox.pk]))
    for response in (portal, overview, staff_page):
        assert response.status_code == 200
        html = response.content.decode()
        assert "usage-meter level-warn" in html and "level-ok" not in html


def test_the_warning_email_is_coloured_by_the_same_level(early_warning_mailbox: Mailbox):
    warning = QuotaWarning.objects.create(
        mailbox=early_warning_mailbox,
        kind=QuotaWarning.Kind.WARNING,
        threshold=50,
        used_bytes=60 * MIB,
        quota_bytes=100 * MIB,
        recipient="owner@example.org",
        language="en",
    )
    html = quota_warnings.build_email(warning).alternatives[0][0]
    assert "#d97706" in html  # amber: the plan's first threshold is crossed
