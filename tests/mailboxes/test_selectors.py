"""The one definition of a customer's mailboxes."""

from __future__ import annotations

import pytest

from mailboxes.selectors import customer_mailboxes
from mailboxes.services import mailbox_suspend
from tests.factories import make_customer, make_domain, make_mailbox

pytestmark = pytest.mark.django_db


def test_a_customers_mailboxes_include_suspended_ones_unless_only_active_are_asked_for():
    customer = make_customer("Bäckerei")
    domain = make_domain(customer, "baeckerei.example")
    anna = make_mailbox("anna", domain=domain)
    bert = make_mailbox("bert", domain=domain)
    make_mailbox("other", domain=make_domain(make_customer("Other"), "other.example"))
    mailbox_suspend(mailbox=bert, actor="test")

    assert list(customer_mailboxes(customer)) == [anna, bert]
    assert list(customer_mailboxes(customer.pk, active_only=True)) == [anna]
