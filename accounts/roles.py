"""Who may do what: the one permission table, checked by the services themselves, so pages,
CLI and API get the same answer.

Staff have a role: *support* reads everything and handles the day-to-day (suspend, reactivate,
new password, refresh, back up now); *admin* may do everything; *auditor* reads everything,
the audit log included, and changes nothing. A customer's users act on their own things through
the portal (the portal's selectors already confine them to those). Command-line and worker
actors (``cli:root``, ``schedule``) are the hoster's own machinery and may do everything.

Reading a customer's mail is not "reading the panel": support may list the messages of a
customer's backups or download them only while that customer allows it from the portal
(``SupportAccessGrant``, for a limited time; ``BY_GRANT``), and auditors never may. Whoever asks
about such an action names the customer (``customer_id``), so the answer can depend on it.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from .models import StaffRole as Role
from .models import SupportAccessGrant, User
from .selectors import active_support_grant

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
    # Customers make and revoke keys for their own things only (checked by the service).
    "api_key.create": frozenset({Role.ADMIN, CUSTOMER}),
    "api_key.revoke": frozenset({Role.ADMIN, CUSTOMER}),
    "support_access.grant": frozenset({CUSTOMER}),
    "support_access.revoke": frozenset({CUSTOMER}),
}
ADMIN_ONLY = frozenset({Role.ADMIN})

# Actions support may also do for a customer, but only while that customer's grant lasts.
BY_GRANT = frozenset({"backup.browse", "backup.download"})


class GrantRequired(PermissionDenied):
    """Support asked for a ``BY_GRANT`` action on a customer that has not granted access."""

    def __init__(self, action: str, customer_id: int | None) -> None:
        super().__init__(f"support may {action} only with the customer's grant")
        self.action = action
        self.customer_id = customer_id


def kind(actor: User | str | None) -> str:
    """``support``, ``admin``, ``auditor``, ``customer``, or ``system`` for CLI and workers."""
    if not isinstance(actor, User):
        return "system"
    if actor.is_staff:
        return actor.staff_role
    if actor.customer_id is not None:
        return CUSTOMER
    return "nobody"


def _by_role(who: str, action: str) -> bool:
    return who == "system" or who in ALLOWED.get(action, ADMIN_ONLY)


def _needs_grant(who: str, action: str) -> bool:
    return who == Role.SUPPORT and action in BY_GRANT


def may(actor: User | str | None, action: str, *, customer_id: int | None = None) -> bool:
    """Whether to offer ``action``; for the actions support needs a grant for, only with the
    customer it concerns (without one, support is not offered them)."""
    who = kind(actor)
    if _by_role(who, action):
        return True
    return _needs_grant(who, action) and active_support_grant(customer_id) is not None


def authorize(
    actor: User | str | None, action: str, *, customer_id: int | None = None
) -> SupportAccessGrant | None:
    """Refuse ``action`` to an actor whose role does not allow it (a 403 on the pages), and a
    customer's user acting on another customer's things (``customer_id``: whose they are).

    Support doing a ``BY_GRANT`` action gets the customer's grant back (the caller records
    that it was used), or ``GrantRequired`` without one; everyone else gets None."""
    who = kind(actor)
    if not _by_role(who, action):
        if not _needs_grant(who, action):
            raise PermissionDenied(f"{who} may not {action}")
        grant = active_support_grant(customer_id)
        if grant is None:
            raise GrantRequired(action, customer_id)
        return grant
    if (
        customer_id is not None
        and isinstance(actor, User)
        and kind(actor) == CUSTOMER
        and actor.customer_id != customer_id
    ):
        raise PermissionDenied(f"{actor} acts for another customer")
    return None


def public_name(actor: User | None, name: str) -> str:
    """How a customer sees who acted: staff by their role, never by name."""
    if actor is not None and actor.is_staff:
        return str(Role(actor.staff_role).label)
    return name
