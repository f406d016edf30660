"""The staff lists of customers, domains and mailboxes as querysets: search, filters, orders.

Everything here is SQL the indexes answer (see the ``0009`` migration): the address is
searched through a trigram index, the usage sort and the usage bands through the expression
index ``mailbox_usage_order``, the address order through the address's unique index. Paging
(keyset) and the HTTP side live in ``staff/lists.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.expressions import Combinable
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from accounts.models import Customer

from .idn import label_to_ascii
from .models import (
    FULL_PERCENT,
    UNMEASURED_USAGE,
    USAGE_STEPS_PER_PERCENT,
    Domain,
    Mailbox,
    MailServer,
    Plan,
    login_order,
    usage_order,
)
from .selectors import _count, not_logged_in_since

# A search that matches more domains by customer name than this is a common word ("GmbH"):
# its domains are then matched by a subquery instead of a list of ids (``_customer_domains``).
CUSTOMER_DOMAINS_LISTED = 500

# Usage levels of ``Plan.usage_level`` and "unknown" (never measured), in the order shown.
BANDS: dict[str, Promise] = {
    "ok": _("below the first warning"),
    "warn": _("filling up"),
    "danger": _("almost full"),
    "full": _("full"),
    "unknown": _("not measured yet"),
}


# --- Orders -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    """A sort of a list, and its keyset: ``keys`` together are unique (the last one is the
    primary key or a unique column) and all go one way, so "the rows after this one" is a row
    comparison that an index on the same columns answers directly, on page 2 as on 2,000."""

    label: Promise
    keys: tuple[tuple[str, Combinable, type], ...]  # (name, expression, type of its value)
    descending: bool = False


def _usage_keys() -> tuple[tuple[str, Combinable, type], ...]:
    return (("usage", usage_order(), int), ("id", F("id"), int))


def _login_keys() -> tuple[tuple[str, Combinable, type], ...]:
    return (("login", login_order(), datetime), ("id", F("id"), int))


# Adding an order is one entry and an index on its keys (see the model's indexes).
MAILBOX_ORDERS: dict[str, Order] = {
    "address": Order(_("address"), (("address", F("address"), str),)),
    "-usage": Order(_("fullest first"), _usage_keys(), descending=True),
    "usage": Order(_("emptiest first"), _usage_keys()),
    # Unused longest first, never used before all: the POP3 box nobody collects any more.
    "login": Order(_("longest without login first"), _login_keys()),
    "-login": Order(_("latest login first"), _login_keys(), descending=True),
}
DOMAIN_ORDERS: dict[str, Order] = {
    "name": Order(_("name"), (("name", F("name"), str),)),
    "-created": Order(
        _("newest first"),
        (("created", F("created_at"), datetime), ("id", F("id"), int)),
        descending=True,
    ),
}
CUSTOMER_ORDERS: dict[str, Order] = {
    "name": Order(_("name"), (("name", F("name"), str), ("id", F("id"), int))),
    "-created": Order(
        _("newest first"),
        (("created", F("created_at"), datetime), ("id", F("id"), int)),
        descending=True,
    ),
}


# --- Search -------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"([.@])")


@dataclass(frozen=True)
class SearchTerm:
    """What was typed, and the ways it is found in the stored names, which are punycode.

    ``text``: as typed, for the names of customers. ``forms``: each a set of pieces that a
    stored name must all contain; the term is found if one form is. ASCII is one piece,
    lower-cased. With Unicode in it: whole labels in punycode (``müller.de`` →
    ``xn--mller-kva.de``), and labels that may be typed only in part by their ASCII letters:
    punycode keeps those in order at the front of the label (``bäckerei-müller`` →
    ``xn--bckerei-mller-…``), so ``bäck`` finds it while it is typed, through ``xn--`` and
    ``bck``. Every piece is a plain "contains", which the trigram index answers.
    """

    text: str
    forms: tuple[tuple[str, ...], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.text)


def search_term(text: str) -> SearchTerm:
    text = " ".join(text.split())[:200]
    lowered = text.lower()
    if not text or lowered.isascii():
        return SearchTerm(text, ((lowered,),) if text else ())
    parts = _SEPARATORS.split(lowered)  # labels at even positions, "." and "@" between
    # A name holding the term converted label by label (``müller.de`` → ``xn--mller-kva.de``)
    # holds these pieces too; and they find it while the term is still being typed.
    partial = _partial_form(parts)
    return SearchTerm(text, (partial,) if partial else ())


def _partial_form(parts: list[str]) -> tuple[str, ...]:
    """The pieces of a fragment whose first or last label may be only part of a stored one.

    The first label may begin inside a stored label and the last may end inside one; the
    labels between are whole. A Unicode label typed in part is its ASCII letters after
    ``xn--`` (directly so when the label begins there), and the rest of the stored label
    (more letters, then the encoded non-ASCII ones) separates it from what follows.
    """
    pieces: list[str] = []
    current = ""
    last = len(parts) - 1
    for i, part in enumerate(parts):
        if i % 2 or part.isascii():
            current += part
            continue
        skeleton = "".join(c for c in part if c.isascii())
        if 0 < i < last:
            whole = label_to_ascii(part)
            if whole is None:
                return ()  # no stored label is like this one
            current += whole
        elif i == 0:
            pieces += ["xn--", skeleton]  # from somewhere inside a stored label
        else:
            current += "xn--" + skeleton
    pieces.append(current)
    return tuple(dict.fromkeys(p for p in pieces if p))


def _address_matches(term: SearchTerm, column: str) -> Q:
    condition = Q(pk__in=[])
    for form in term.forms:
        every = Q()
        for piece in form:
            every &= Q(**{f"{column}__contains": piece})
        condition |= every
    return condition


def _customer_domains(term: SearchTerm) -> Q:
    """Mailboxes of the customers whose name contains the term. Costs one query.

    A short list of their domains' ids lets PostgreSQL read them from an index and combine
    that with the address's trigram index (one bitmap each). A common word ("GmbH") matches
    most domains; a list would be long, and a subquery, which PostgreSQL hashes once and
    checks each row against while it walks the page's order, is cheaper.
    """
    matching = Domain.objects.filter(customer__name__icontains=term.text).order_by().values("pk")
    ids = [row["pk"] for row in matching[: CUSTOMER_DOMAINS_LISTED + 1]]
    if len(ids) <= CUSTOMER_DOMAINS_LISTED:
        return Q(domain_id__in=ids) if ids else Q(pk__in=[])
    return Q(domain_id__in=matching)


# --- Usage bands --------------------------------------------------------------------------


def band_ranges(plan: Plan) -> dict[str, list[tuple[int, int | None]]]:
    """The percent ranges ``[low, high)`` of each usage level on ``plan`` (None: no end).

    Read off ``Plan.usage_level`` itself, percent by percent, so that the filter and the
    bars cannot disagree whatever the plan's thresholds or the rule become.
    """
    ranges: dict[str, list[tuple[int, int | None]]] = {}
    start, level = 0, plan.usage_level(0)
    for percent in range(1, FULL_PERCENT + 1):
        current = plan.usage_level(percent)
        if current != level:
            ranges.setdefault(level, []).append((start, percent))
            start, level = percent, current
    ranges.setdefault(level, []).append((start, None))  # from here on, over quota too
    return ranges


def band_condition(band: str, plans: Iterable[Plan]) -> Q:
    """Mailboxes whose bar shows ``band``, as ranges of the indexed usage expression (aliased
    ``usage``) per plan: percent = usage // 100, so ``percent >= p`` is ``usage >= 100 p``."""
    if band == "unknown":
        return Q(usage=UNMEASURED_USAGE)
    condition = Q(pk__in=[])
    for plan in plans:
        for low, high in band_ranges(plan).get(band, []):
            step = Q(plan_id=plan.pk, usage__gte=low * USAGE_STEPS_PER_PERCENT)
            if high is not None:
                step &= Q(usage__lt=high * USAGE_STEPS_PER_PERCENT)
            condition |= step
    return condition


# --- The lists ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MailboxFilters:
    search: str = ""
    protocol: str | None = None
    plan: int | None = None
    status: str | None = None
    server: int | None = None
    band: str | None = None
    customer: int | None = None
    domain: int | None = None
    # No IMAP or POP3 login at or after this moment (Dovecot's last-login records).
    no_login_since: datetime | None = None


# What a row of the list (and of its CSV) shows; ``with_plans_and_servers`` adds those two.
MAILBOX_LIST_FIELDS = (
    "address",
    "local_part",
    "protocol",
    "status",
    "quota_bytes",
    "used_bytes",
    "usage_state",
    "usage_checked_at",
    "created_at",
    "last_login_at",
    "plan_id",
    "mail_server_id",
    "domain__name",
    "domain__customer__name",
)


def mailbox_list(filters: MailboxFilters, plans: Sequence[Plan]) -> QuerySet[Mailbox]:
    """The staff's mailbox list; ``plans`` are all plans (for the usage bands)."""
    mailboxes = (
        Mailbox.objects.select_related("domain__customer")
        .only(*MAILBOX_LIST_FIELDS)
        .alias(usage=usage_order())
    )
    term = search_term(filters.search)
    if term:
        mailboxes = mailboxes.filter(_address_matches(term, "address") | _customer_domains(term))
    exact = {
        "protocol": filters.protocol,
        "plan_id": filters.plan,
        "status": filters.status,
        "mail_server_id": filters.server,
        "domain__customer_id": filters.customer,
        "domain_id": filters.domain,
    }
    mailboxes = mailboxes.filter(**{k: v for k, v in exact.items() if v is not None})
    if filters.band:
        mailboxes = mailboxes.filter(band_condition(filters.band, plans))
    if filters.no_login_since is not None:
        # As the report counts them: a mailbox younger than that is not "unused that long".
        mailboxes = not_logged_in_since(
            mailboxes.filter(created_at__lt=filters.no_login_since), filters.no_login_since
        )
    return mailboxes


def with_plans_and_servers(
    mailboxes: Iterable[Mailbox], plans: Iterable[Plan], servers: Iterable[MailServer]
) -> Iterator[Mailbox]:
    """Each mailbox with its plan and server from those already loaded (for the filters):
    a handful of rows, cheaper than a join for every mailbox."""
    plans_by_id = {plan.pk: plan for plan in plans}
    servers_by_id = {server.pk: server for server in servers}
    for mailbox in mailboxes:
        if mailbox.plan_id in plans_by_id:
            mailbox.plan = plans_by_id[mailbox.plan_id]
        if mailbox.mail_server_id in servers_by_id:
            mailbox.mail_server = servers_by_id[mailbox.mail_server_id]
        yield mailbox


def domain_list(
    *, search: str = "", server: int | None = None, customer: int | None = None
) -> QuerySet[Domain]:
    domains = (
        Domain.objects.select_related("customer", "mail_server")
        .only("name", "created_at", "customer__name", "mail_server__name")
        .annotate(mailbox_count=_count(Mailbox.objects.all(), "domain"))
    )
    term = search_term(search)
    if term:
        domains = domains.filter(
            _address_matches(term, "name") | Q(customer__name__icontains=term.text)
        )
    if server is not None:
        domains = domains.filter(mail_server_id=server)
    if customer is not None:
        domains = domains.filter(customer_id=customer)
    return domains


def customer_list(*, search: str = "") -> QuerySet[Customer]:
    customers = Customer.objects.annotate(
        domain_count=_count(Domain.objects.all(), "customer"),
        mailbox_count=_count(Mailbox.objects.all(), "domain__customer"),
    )
    term = search_term(search)
    if term:
        owns = Domain.objects.filter(_address_matches(term, "name"), customer=OuterRef("pk"))
        customers = customers.filter(
            Q(name__icontains=term.text) | Q(contact_email__icontains=term.text) | Exists(owns)
        )
    return customers
