"""The warning engine: once per crossing, highest only, hysteresis, reminders, never stale."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from mailboxes.models import MIB, Mailbox, QuotaWarning
from mailboxes.quota_warnings import evaluate, send
from mailboxes.services import mailbox_set_quota
from tests.factories import make_customer, make_domain, make_mailbox, make_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailbox(django_capture_on_commit_callbacks):
    make_server()
    return make_mailbox("anna", quota_bytes=100 * MIB)


def use(mailbox: Mailbox, percent: float, state: str = Mailbox.UsageState.OK) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=int(mailbox.quota_bytes * percent / 100),
        usage_state=state,
        usage_checked_at=timezone.now(),
    )


def warnings_sent(mailbox: Mailbox) -> list[tuple[str, int]]:
    warnings = QuotaWarning.objects.filter(mailbox=mailbox).order_by("pk")
    return [(w.kind, w.threshold) for w in warnings]


def test_crossing_sends_one_warning_and_no_more(mailbox):
    use(mailbox, 50)
    assert evaluate() == []
    use(mailbox, 81)
    assert len(evaluate()) == 1
    assert evaluate() == []  # still at 81 %: nothing new
    use(mailbox, 84)
    assert evaluate() == []
    assert warnings_sent(mailbox) == [("warning", 80)]


def test_a_jump_over_several_thresholds_sends_only_the_highest(mailbox):
    use(mailbox, 96)
    evaluate()
    assert warnings_sent(mailbox) == [("warning", 95)]


def test_re_arms_only_below_threshold_minus_hysteresis(mailbox):
    use(mailbox, 81)
    evaluate()
    use(mailbox, 78)  # below 80 but not below 75: still armed-off
    evaluate()
    use(mailbox, 82)
    evaluate()
    assert warnings_sent(mailbox) == [("warning", 80)]
    use(mailbox, 70)  # below 75: re-armed, quietly
    evaluate()
    assert Mailbox.objects.get(pk=mailbox.pk).warning_level == 0
    use(mailbox, 81)
    evaluate()
    assert warnings_sent(mailbox) == [("warning", 80), ("warning", 80)]


def test_falling_from_95_to_89_rearms_95_but_keeps_90(mailbox):
    use(mailbox, 96)
    evaluate()
    use(mailbox, 89)
    evaluate()
    assert Mailbox.objects.get(pk=mailbox.pk).warning_level == 90
    use(mailbox, 91)
    evaluate()  # 90 was passed already: nothing
    use(mailbox, 95)
    evaluate()
    assert warnings_sent(mailbox) == [("warning", 95), ("warning", 95)]


def test_lowering_the_quota_crosses_at_once(mailbox, django_capture_on_commit_callbacks):
    use(mailbox, 50)
    evaluate()
    mailbox.refresh_from_db()
    with django_capture_on_commit_callbacks() as callbacks:
        mailbox_set_quota(mailbox=mailbox, quota_bytes=55 * MIB, actor="test")
    assert len(callbacks) == 1  # re-evaluation queued after commit
    evaluate(mailbox_ids=[mailbox.pk])
    assert warnings_sent(mailbox) == [("warning", 90)]  # 50 MiB of 55 MiB = 90.9 %


@pytest.mark.parametrize("state", [Mailbox.UsageState.STALE, Mailbox.UsageState.DRIFT])
def test_stale_usage_neither_triggers_nor_clears(mailbox, state):
    use(mailbox, 99, state=state)
    assert evaluate() == []
    use(mailbox, 91)
    evaluate()
    use(mailbox, 10, state=state)
    evaluate()
    assert Mailbox.objects.get(pk=mailbox.pk).warning_level == 90


def test_never_measured_mailbox_is_not_warned(mailbox):
    assert Mailbox.objects.get(pk=mailbox.pk).used_bytes is None
    assert evaluate() == []


def test_full_mailbox_is_reminded_at_most_daily(mailbox):
    use(mailbox, 100)
    evaluate()
    assert evaluate() == []
    Mailbox.objects.filter(pk=mailbox.pk).update(
        warning_sent_at=timezone.now() - timedelta(hours=25)
    )
    evaluate()
    assert evaluate() == []
    assert warnings_sent(mailbox) == [("warning", 100), ("reminder", 100)]


def test_opt_out_skips_early_warnings_but_never_the_full_one(mailbox):
    customer = mailbox.domain.customer
    customer.only_full_warnings = True
    customer.save()
    use(mailbox, 92)
    evaluate()
    assert warnings_sent(mailbox) == []
    use(mailbox, 100)
    evaluate()
    assert warnings_sent(mailbox) == [("warning", 100)]


def test_evaluation_is_set_based(mailbox, django_assert_max_num_queries):
    domain = make_domain(make_customer("Big"))
    for i in range(30):
        use(make_mailbox(f"user{i}", domain=domain, plan=mailbox.plan, quota_bytes=100 * MIB), 85)
    with django_assert_max_num_queries(12):
        assert len(evaluate()) == 30


def test_email_is_in_the_customers_language(mailbox):
    customer = mailbox.domain.customer
    customer.language = "de"
    customer.save()
    use(mailbox, 91)
    [warning_id] = evaluate()
    assert send(warning_id) is True
    assert send(warning_id) is False  # sent once, never twice
    [message] = mail.outbox
    assert message.to == [customer.contact_email]
    assert "91 %" in message.subject
    assert "Papierkorb" in message.body
    assert "91,0\xa0MB von 100,0\xa0MB (91 %)" in message.body  # German number format
    html = message.alternatives[0][0]
    assert 'lang="de"' in html
