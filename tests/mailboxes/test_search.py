"""The staff lists as querysets: search in both forms of a domain, filters, and usage bands
that always agree with the bars (``Plan.usage_level``)."""

from __future__ import annotations

import itertools

import pytest

from accounts.models import Customer
from mailboxes import search
from mailboxes.models import MIB, Domain, Mailbox, MailServer, Plan
from mailboxes.search import MailboxFilters, band_ranges, search_term
from mailboxes.selectors import usage_summary
from tests.factories import make_plan, make_server

pytestmark = pytest.mark.django_db

_seq = itertools.count(1)


def add_mailbox(
    domain: Domain,
    local_part: str | None = None,
    *,
    plan: Plan,
    used: int | None = None,
    quota: int = 100 * MIB,
    **fields: object,
) -> Mailbox:
    """A row straight into the table: the lists read it, the services are not under test."""
    local_part = local_part or f"m{next(_seq)}"
    values: dict[str, object] = {
        "protocol": "imap",
        "mail_server": domain.mail_server,
        "password_hash": "{ARGON2ID}x",
        "storage_path": f"{domain.name}/{local_part}",
        "used_bytes": used,
        "usage_state": "unknown" if used is None else "ok",
    }
    values.update(fields)
    return Mailbox.objects.create(
        domain=domain,
        local_part=local_part,
        address=f"{local_part}@{domain.name}",
        plan=plan,
        quota_bytes=quota,
        **values,
    )


def add_domain(name: str, customer: Customer, server: MailServer | None = None) -> Domain:
    return Domain.objects.create(name=name, customer=customer, mail_server=server or make_server())


def customer(name: str) -> Customer:
    return Customer.objects.create(name=name, contact_email=f"c{next(_seq)}@example.org")


def addresses(queryset) -> set[str]:  # type: ignore[no-untyped-def]
    return set(queryset.values_list("address", flat=True))


@pytest.fixture
def plan() -> Plan:
    return make_plan()


@pytest.fixture
def idn(plan: Plan) -> Mailbox:
    """anna@bäckerei-müller.example, stored as punycode."""
    domain = add_domain("xn--bckerei-mller-bfb28a.example", customer("Bäckerei Müller"))
    return add_mailbox(domain, "anna", plan=plan)


@pytest.fixture
def plain(plan: Plan) -> Mailbox:
    return add_mailbox(add_domain("firma.example", customer("Firma GmbH")), "bert", plan=plan)


def found(text: str, plans: list[Plan]) -> set[str]:
    return addresses(search.mailbox_list(MailboxFilters(search=text), plans))


# --- Search ---------------------------------------------------------------------------------


def test_a_unicode_domain_is_found_by_either_form(idn: Mailbox, plain: Mailbox, plan: Plan):
    for text in (
        "bäckerei-müller.example",
        "BÄCKEREI-MÜLLER.EXAMPLE",
        "anna@bäckerei-müller.example",
        "xn--bckerei-mller-bfb28a.example",
        "xn--bckerei-mller",
    ):
        assert found(text, [plan]) == {idn.address}, text


def test_a_unicode_label_is_found_while_it_is_being_typed(idn: Mailbox, plain: Mailbox, plan: Plan):
    for text in ("bä", "bäck", "bäckerei-mü", "müller", "anna@bäck", "ckerei-müller.exa"):
        assert found(text, [plan]) == {idn.address}, text


def test_search_finds_parts_of_addresses_and_customer_names(
    idn: Mailbox, plain: Mailbox, plan: Plan
):
    assert found("bert@", [plan]) == {plain.address}
    assert found("firma.ex", [plan]) == {plain.address}
    assert found("gmbh", [plan]) == {plain.address}  # the customer's name
    assert found("bäckerei müller", [plan]) == {idn.address}  # ditto, with its space
    assert found("nobody", [plan]) == set()
    assert found("   ", [plan]) == {idn.address, plain.address}


def test_a_customer_name_shared_by_many_domains_still_finds_them_all(plan: Plan):
    """Past CUSTOMER_DOMAINS_LISTED domains the ids are no longer listed; same result."""
    owner = customer("Grosskunde AG")
    server = make_server()
    domains = Domain.objects.bulk_create(
        Domain(name=f"d{i}.example", customer=owner, mail_server=server)
        for i in range(search.CUSTOMER_DOMAINS_LISTED + 5)
    )
    mailboxes = [add_mailbox(d, "info", plan=plan) for d in domains[:3] + domains[-3:]]
    add_mailbox(add_domain("other.example", customer("Other")), plan=plan)
    assert found("grosskunde", [plan]) == {m.address for m in mailboxes}


def test_search_term_forms():
    assert search_term("  Anna  ").forms == (("anna",),)
    assert search_term("").forms == ()
    # Whole labels in punycode, a label typed in part by its ASCII letters after "xn--".
    assert search_term("anna@bäck").forms == (("anna@xn--bck",),)
    assert search_term("a.ü.b").forms == (("a.xn--tda.b",),)
    assert search_term("müller").forms == (("xn--", "mller"),)
    assert search_term("a.ü#.b").forms == ()  # no stored label looks like that


def test_domain_and_customer_lists_search_both_forms(idn: Mailbox, plain: Mailbox):
    names = set(search.domain_list(search="müller").values_list("name", flat=True))
    assert names == {idn.domain.name}
    assert set(search.domain_list(search="xn--bckerei").values_list("name", flat=True)) == names
    assert set(search.domain_list(search="Firma GmbH").values_list("name", flat=True)) == {
        plain.domain.name
    }
    # A customer is found by a domain it owns, in either form, and by its contact address.
    for text in ("bäckerei-müller.example", "xn--bckerei-mller", "Müller"):
        assert list(search.customer_list(search=text)) == [idn.customer], text
    contact = plain.customer.contact_email
    assert list(search.customer_list(search=contact.upper())) == [plain.customer]


# --- Filters --------------------------------------------------------------------------------


def test_filters_combine(plan: Plan):
    other_plan = make_plan(protocol="pop3")
    mx2 = make_server("mx2")
    acme = customer("Acme")
    acme_domain = add_domain("acme.example", acme)
    a = add_mailbox(acme_domain, "a", plan=plan)
    b = add_mailbox(acme_domain, "b", plan=other_plan, protocol="pop3", status="suspended")
    c = add_mailbox(add_domain("zeta.example", customer("Zeta"), mx2), "c", plan=plan)
    plans = [plan, other_plan]

    def listed(**filters: object) -> set[str]:
        return addresses(search.mailbox_list(MailboxFilters(**filters), plans))  # type: ignore[arg-type]

    assert listed() == {a.address, b.address, c.address}
    assert listed(protocol="pop3") == {b.address}
    assert listed(plan=plan.pk) == {a.address, c.address}
    assert listed(status="suspended") == {b.address}
    assert listed(server=mx2.pk) == {c.address}
    assert listed(customer=acme.pk) == {a.address, b.address}
    assert listed(domain=acme_domain.pk, status="active") == {a.address}
    assert listed(customer=acme.pk, server=mx2.pk) == set()


# --- Usage bands ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        (
            [80, 90, 95, 100],
            {"ok": [(0, 80)], "warn": [(80, 95)], "danger": [(95, 100)], "full": [(100, None)]},
        ),
        ([75, 90, 100], {"ok": [(0, 75)], "warn": [(75, 90)], "danger": [(90, 100)]}),
        ([90], {"ok": [(0, 90)], "warn": [(90, 100)], "full": [(100, None)]}),
        ([], {"ok": [(0, 100)], "full": [(100, None)]}),
    ],
)
def test_band_ranges_are_read_off_the_plans_rule(thresholds: list[int], expected: dict):
    ranges = band_ranges(Plan(warning_thresholds=thresholds))
    assert {k: v for k, v in ranges.items() if k in expected} == expected


def test_every_band_lists_exactly_the_mailboxes_whose_bar_shows_it():
    """Usage on both sides of every threshold, on plans with different thresholds: each
    mailbox is in the band its bar shows, and in no other."""
    plans = [
        make_plan(),  # 80 / 90 / 95 / 100
        make_plan(warning_thresholds=[75, 90, 100]),
        make_plan(warning_thresholds=[50]),
        make_plan(warning_thresholds=[]),
    ]
    domain = add_domain("bands.example", customer("Bands"))
    quota = 1000 * MIB + 7  # not a round number: percent is rounded down, like the bars
    for plan in plans:
        for percent in (0, 49, 50, 74, 75, 79, 80, 89, 90, 94, 95, 99, 100, 130):
            for delta in (-1, 0, 1):
                used = max(0, quota * percent // 100 + delta)
                add_mailbox(domain, plan=plan, used=used, quota=quota)
        add_mailbox(domain, plan=plan, used=None, quota=quota)

    everything = list(Mailbox.objects.select_related("plan"))
    shown = {m.address: usage_summary(m).level for m in everything}
    assert set(shown.values()) == set(search.BANDS)
    for band in search.BANDS:
        listed = addresses(search.mailbox_list(MailboxFilters(band=band), plans))
        assert listed == {a for a, level in shown.items() if level == band}, band
