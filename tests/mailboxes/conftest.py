"""The three kinds of user (owner, stranger, staff) of tests/audiences.py."""

from tests.audiences import (
    bigger_plan,
    customer,
    mailbox,
    other_customer,
    other_mailbox,
    other_request,
    owner,
    owner_client,
    pending_request,
    plan,
    server,
    staff,
    stranger,
)

__all__ = [
    "server",
    "plan",
    "bigger_plan",
    "customer",
    "mailbox",
    "owner",
    "other_customer",
    "other_mailbox",
    "stranger",
    "staff",
    "owner_client",
    "pending_request",
    "other_request",
]
