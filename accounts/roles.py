"""Who may do what: the one permission table, checked by the services themselves, so pages,
CLI and API get the same answer.

Staff have a role: *support* reads everything and handles the day-to-day (suspend, reactivate,
new password, refresh, back up now); *admin* may do everything; *auditor* reads everything,
the audit log included, and changes nothing. A customer's users act on their own things through
the portal (the portal's selectors already confine them to those). Command-line and worker
actors (``cli:root``, ``schedule``) are the hoster's own machinery and may do everything.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from .models import StaffRole as Role
from .models import User

CUSTOMER = "customer"

# action -> who may do it; an action not listed is for admins only.
ALLOWED: dict[str, frozenset[str]] = {
    "mailbox.password": frozenset({Role.SUPPORT, Role.ADMIN, CUSTOMER}),
    "mailbox.suspend": frozenset({Role.SUPPORT, Role.ADMIN}),
    "mailbox.reactivate": frozenset({Role.SUPPORT, Role.ADMIN}),
    "mailbox.refresh": frozenset({Role.SUPPORT, Role.ADMIN, CUSTOMER}),
    "user.active": frozenset({Role.SUPPORT, Role.ADMIN}),
    "mailbox.plan": frozenset({Role.ADMIN, CUSTOMER}),  # customers through self-service
    "plan_request.create": frozenset({CUSTOMER}),
    "plan_request.cancel": frozenset({CUSTOMER}),
    "customer.notifications": frozenset({Role.ADMIN, CUSTOMER}),
    "backup.request": frozenset({Role.SUPPORT, Role.ADMIN, CUSTOMER}),
    "backup.restore": frozenset({Role.ADMIN, CUSTOMER}),
    "backup.browse": frozenset({Role.ADMIN, CUSTOMER}),
    "backup.download": frozenset({Role.ADMIN, CUSTOMER}),
}


def kind(actor: User | str | None) -> str:
    """``support``, ``admin``, ``auditor``, ``customer``, or ``system`` for CLI and workers."""
    if not isinstance(actor, User):
        return "system"
    if actor.is_staff:
        return actor.staff_role
    if actor.customer_id is not None:
        return CUSTOMER
    return "nobody"


def may(actor: User | str | None, action: str) -> bool:
    who = kind(actor)
    return who == "system" or who in ALLOWED.get(action, frozenset({Role.ADMIN}))


def authorize(actor: User | str | None, action: str, *, customer_id: int | None = None) -> None:
    """Refuse ``action`` to an actor whose role does not allow it (a 403 on the pages), and a
    customer's user acting on another customer's things (``customer_id``: whose they are)."""
    if not may(actor, action):
        raise PermissionDenied(f"{kind(actor)} may not {action}")
    if (
        customer_id is not None
        and isinstance(actor, User)
        and kind(actor) == CUSTOMER
        and actor.customer_id != customer_id
    ):
        raise PermissionDenied(f"{actor} acts for another customer")


def public_name(actor: User | None, name: str) -> str:
    """How a customer sees who acted: staff by their role, never by name."""
    if actor is not None and actor.is_staff:
        return str(Role(actor.staff_role).label)
    return name
