"""The staff lists of customers, domains and mailboxes: access, search as you type, filters
in the query string, keyset pages, CSV export, and a fixed number of queries whatever the page
size or the number of rows."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Customer, User
from mailboxes.idn import domain_to_ascii
from mailboxes.models import MIB, Domain, Mailbox, MailServer, Plan
from mailboxes.search import CUSTOMER_ORDERS, MAILBOX_ORDERS
from mailboxes.selectors import usage_summary
from staff.lists import COUNT_CAP, decode_cursor, encode_cursor
from tests.factories import make_plan, make_server

pytestmark = pytest.mark.django_db

LISTS = ["staff:customer_list", "staff:domain_list", "staff:mailbox_list"]
EXPORTS = ["staff:customer_export", "staff:domain_export", "staff:mailbox_export"]
_seq = itertools.count()


@pytest.fixture
def staff(client: Client) -> User:
    user = User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    client.force_login(user)
    return user


@pytest.fixture
def plan() -> Plan:
    return make_plan(name="IMAP Standard")


def grow(
    customers: int,
    domains_each: int,
    mailboxes_each: int,
    *,
    plans: list[Plan],
    servers: list[MailServer] | None = None,
    idn_every: int = 4,
) -> list[Mailbox]:
    """Rows straight into the tables (the lists read them; services are not under test):
    every ``idn_every``th domain internationalised, usage spread over 0–120 % and unmeasured,
    plans, servers, protocols and statuses taking turns."""
    servers = servers or [make_server()]
    made = Customer.objects.bulk_create(
        Customer(name=f"Kunde {next(_seq):05}", contact_email=f"c{next(_seq)}@example.org")
        for _ in range(customers)
    )
    domains = Domain.objects.bulk_create(
        Domain(
            name=domain_to_ascii(
                f"bäckerei-müller-{n}.example" if n % idn_every == 0 else f"firma-{n}.example"
            ),
            customer=c,
            mail_server=servers[n % len(servers)],
        )
        for c in made
        for n in (next(_seq) for _ in range(domains_each))
    )
    rows = []
    for domain in domains:
        for m in range(mailboxes_each):
            n = next(_seq)
            plan = plans[n % len(plans)]
            quota = 100 * MIB
            used = None if n % 9 == 0 else quota * (n * 7 % 121) // 100
            rows.append(
                Mailbox(
                    domain=domain,
                    local_part=f"m{m}",
                    address=f"m{m}@{domain.name}",
                    protocol="pop3" if n % 2 else "imap",
                    plan=plan,
                    mail_server=domain.mail_server,
                    quota_bytes=quota,
                    used_bytes=used,
                    status="suspended" if n % 5 == 0 else "active",
                    password_hash="{ARGON2ID}x",
                    storage_path=f"{domain.name}/m{m}",
                )
            )
    return Mailbox.objects.bulk_create(rows)


def page_of(response) -> list:  # type: ignore[no-untyped-def]
    return list(response.context["page"])


# --- Access ---------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login_from_every_list_and_export(client: Client):
    for name in LISTS + EXPORTS:
        response = client.get(reverse(name))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("accounts:login") + "?next="), name


def test_a_customers_user_gets_404_from_every_list_and_export(client: Client, plan: Plan):
    grow(1, 1, 1, plans=[plan])
    customer = Customer.objects.get()
    client.force_login(User.objects.create_user("kunde", password="x", customer=customer))
    for name in LISTS + EXPORTS:
        assert client.get(reverse(name)).status_code == 404, name
        assert client.get(reverse(name), {"q": "m0"}).status_code == 404, name


def test_the_navigation_and_the_dashboard_link_to_the_lists(
    client: Client, staff: User, plan: Plan
):
    grow(1, 1, 1, plans=[plan])
    customer = Customer.objects.get()
    html = client.get(reverse("staff:dashboard")).content.decode()
    for name in LISTS:
        assert f'href="{reverse(name)}"' in html, name
    customers = client.get(reverse("staff:customer_list")).content.decode()
    assert f'{reverse("staff:mailbox_list")}?customer={customer.pk}"' in customers


# --- The lists ------------------------------------------------------------------------------


def test_mailbox_list_shows_unicode_addresses_and_their_usage(
    client: Client, staff: User, plan: Plan
):
    grow(1, 1, 3, plans=[plan], idn_every=1)
    response = client.get(reverse("staff:mailbox_list"))
    assert response.status_code == 200
    html = response.content.decode()
    mailbox = Mailbox.objects.select_related("domain").order_by("address").first()
    assert mailbox is not None
    assert mailbox.display_address in html and "bäckerei-müller" in mailbox.display_address
    assert mailbox.address in html  # the ASCII form under it
    assert "3 mailboxes." in html
    assert 'hx-trigger="input changed delay:300ms, search"' in html


def test_search_as_you_type_returns_the_results_only(client: Client, staff: User, plan: Plan):
    grow(2, 2, 2, plans=[plan], idn_every=2)
    url = reverse("staff:mailbox_list")
    response = client.get(
        url, {"q": "müll", "protocol": "", "band": ""}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'id="results"' in html
    assert 'hx-swap-oob="innerHTML"' in html  # the count, announced in place
    assert response["HX-Push-Url"] == f"{url}?q=m%C3%BCll"  # without the empty fields
    assert "HX-Request" in response["Vary"]
    rows = page_of(response)
    assert rows and all("xn--bckerei-mller-" in m.address for m in rows)
    # Without JavaScript the same URL answers with the whole page.
    full = client.get(url, {"q": "müll"})
    assert "<html" in full.content.decode()
    assert [m.pk for m in page_of(full)] == [m.pk for m in rows]


def test_filters_are_links(client: Client, staff: User, plan: Plan):
    pop3 = make_plan(protocol="pop3", name="POP3 Basic")
    grow(2, 2, 5, plans=[plan, pop3])
    url = reverse("staff:mailbox_list")
    response = client.get(url, {"protocol": "pop3", "status": "active", "plan": pop3.pk})
    rows = page_of(response)
    assert rows
    assert all((m.protocol, m.status, m.plan_id) == ("pop3", "active", pop3.pk) for m in rows)
    html = response.content.decode()
    assert "protocol=pop3" in html and "status=active" in html  # the export keeps them
    assert f'<option value="{pop3.pk}" selected>' in html


def test_the_usage_band_filter_agrees_with_the_bars(client: Client, staff: User):
    plans = [make_plan(), make_plan(warning_thresholds=[60, 70, 100])]
    grow(2, 3, 10, plans=plans)
    for band in ("ok", "warn", "danger", "full", "unknown"):
        response = client.get(reverse("staff:mailbox_list"), {"band": band, "per_page": 200})
        rows = page_of(response)
        assert rows, band
        assert {usage_summary(m).level for m in rows} == {band}
        html = response.content.decode()
        assert html.count(f'"usage-meter level-{band}"') == len(rows)
        assert html.count('"usage-meter level-') == len(rows)
        expected = [
            m for m in Mailbox.objects.select_related("plan") if usage_summary(m).level == band
        ]
        assert response.context["count"] == len(expected)


def test_a_customers_mailboxes_and_domains_by_link(client: Client, staff: User, plan: Plan):
    grow(3, 2, 2, plans=[plan])
    customer = Customer.objects.order_by("pk")[1]
    response = client.get(reverse("staff:mailbox_list"), {"customer": customer.pk})
    assert {m.domain.customer_id for m in page_of(response)} == {customer.pk}
    assert len(page_of(response)) == 4
    assert customer.name in response.content.decode()
    domains = client.get(reverse("staff:domain_list"), {"customer": customer.pk})
    assert {d.customer_id for d in page_of(domains)} == {customer.pk}
    assert [d.mailbox_count for d in page_of(domains)] == [2, 2]


def test_customer_list_counts_domains_and_mailboxes(client: Client, staff: User, plan: Plan):
    grow(2, 3, 4, plans=[plan])
    response = client.get(reverse("staff:customer_list"))
    assert [(c.domain_count, c.mailbox_count) for c in page_of(response)] == [(3, 12), (3, 12)]


def test_values_that_do_not_fit_show_the_first_page(client: Client, staff: User, plan: Plan):
    grow(1, 1, 3, plans=[plan])
    url = reverse("staff:mailbox_list")

    def shown(params: dict) -> list[int]:
        response = client.get(url, params)
        assert response.status_code == 200, params
        return [m.pk for m in page_of(response)]

    first, by_usage = shown({}), shown({"sort": "-usage"})
    assert shown({"after": "not-a-cursor"}) == first
    assert shown({"before": encode_cursor([1, 2, 3])}) == first
    assert shown({"after": encode_cursor(["x", 1]), "sort": "-usage"}) == by_usage
    assert shown({"sort": "x", "plan": "x", "server": "99", "band": "x", "per_page": 7}) == first
    assert shown({"customer": "-1", "q": "x" * 500}) == []


def test_the_selects_show_what_the_list_uses(client: Client, staff: User, plan: Plan):
    grow(1, 1, 2, plans=[plan])
    url = reverse("staff:mailbox_list")
    html = client.get(url).content.decode()
    assert '<option value="50" selected>' in html and '<option value="address" selected>' in html
    html = client.get(url, {"per_page": 7, "sort": "-usage", "band": "purple"}).content.decode()
    assert '<option value="50" selected>' in html and '<option value="-usage" selected>' in html
    assert '<option value="" selected>' in html  # the band that does not exist: all


# --- Keyset pages ---------------------------------------------------------------------------


def walk(client: Client, url: str, params: dict) -> tuple[list[int], list[dict]]:
    """Every page forward by its Next cursor; the rows' ids and each page's query."""
    seen, queries = [], []
    query: dict = dict(params)
    while True:
        response = client.get(url, query)
        page = response.context["page"]
        seen += [row.pk for row in page]
        queries.append(query)
        if not page.has_next:
            return seen, queries
        query = {**params, "after": page.next_cursor}


@pytest.mark.parametrize("sort", list(MAILBOX_ORDERS))
def test_keyset_pages_cover_every_mailbox_once_in_order(
    client: Client, staff: User, plan: Plan, sort: str
):
    grow(3, 3, 7, plans=[plan])  # 63 rows, many with the same usage
    now = timezone.now()
    for pk in Mailbox.objects.values_list("pk", flat=True):
        if pk % 3:  # a third never logged in; the others on one of five days
            Mailbox.objects.filter(pk=pk).update(last_login_at=now - timedelta(days=pk % 5))
    url = reverse("staff:mailbox_list")
    seen, _queries = walk(client, url, {"sort": sort, "per_page": 25})
    assert len(seen) == len(set(seen)) == 63
    everything = list(Mailbox.objects.select_related("plan"))
    key = {
        "address": lambda m: m.address,
        "-usage": lambda m: (-(usage_summary(m).percent if m.used_bytes is not None else -1), 0),
        "usage": lambda m: ((usage_summary(m).percent if m.used_bytes is not None else -1), 0),
        "login": lambda m: m.last_login_at.timestamp() if m.last_login_at else 0,
        "-login": lambda m: -m.last_login_at.timestamp() if m.last_login_at else 0,
    }[sort]
    by_id = {m.pk: m for m in everything}
    shown = [key(by_id[pk]) for pk in seen]
    assert shown == sorted(shown)


@pytest.mark.parametrize("few_rows", [500, 10])
def test_pages_of_a_search_read_from_its_ids_or_not_are_the_same(
    client: Client,
    staff: User,
    plan: Plan,
    few_rows: int,
    monkeypatch: pytest.MonkeyPatch,
):
    """Up to FEW_ROWS matches the pages are read by id (the page query names them), past it
    with the search itself; either way every match once, in order."""
    import staff.lists

    monkeypatch.setattr(staff.lists, "FEW_ROWS", few_rows)
    grow(3, 3, 7, plans=[plan], idn_every=2)
    url = reverse("staff:mailbox_list")
    params = {"q": "bäckerei-mü", "sort": "-usage", "per_page": 25}
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    matches = Mailbox.objects.filter(address__contains="xn--bckerei-mller-")
    assert response.context["count"] == matches.count() > 25
    (page_sql,) = [q["sql"] for q in captured if "LIMIT 26" in q["sql"]]
    assert ('"mailboxes_mailbox"."id" IN (' in page_sql) == (few_rows == 500)
    seen, _queries = walk(client, url, params)
    assert sorted(seen) == sorted(matches.values_list("pk", flat=True))


def test_previous_pages_come_back_the_same(client: Client, staff: User, plan: Plan):
    grow(3, 3, 7, plans=[plan])
    url = reverse("staff:mailbox_list")
    params = {"sort": "-usage", "per_page": 25}
    forward, _queries = walk(client, url, params)
    last = client.get(url, {**params, "after": encode_cursor_of(client, url, params, 2)})
    page = last.context["page"]
    assert page.has_previous and not page.is_first
    back = client.get(url, {**params, "before": page.previous_cursor})
    assert [m.pk for m in page_of(back)] == forward[25:50]
    first = client.get(url, {**params, "before": back.context["page"].previous_cursor})
    assert [m.pk for m in page_of(first)] == forward[:25]
    assert not first.context["page"].has_previous


def encode_cursor_of(client: Client, url: str, params: dict, pages: int) -> str:
    """The Next cursor after ``pages`` pages."""
    query = dict(params)
    for _ in range(pages):
        page = client.get(url, query).context["page"]
        query = {**params, "after": page.next_cursor}
    return query["after"]


def test_pages_of_domains_and_customers(client: Client, staff: User, plan: Plan):
    grow(30, 2, 0, plans=[plan])
    domains, _ = walk(client, reverse("staff:domain_list"), {"per_page": 25})
    assert len(domains) == len(set(domains)) == 60
    for sort in CUSTOMER_ORDERS:
        customers, _ = walk(client, reverse("staff:customer_list"), {"sort": sort, "per_page": 25})
        assert len(customers) == len(set(customers)) == 30


def test_cursors_round_trip_and_refuse_what_does_not_fit():
    from django.utils import timezone

    moment = timezone.now()
    order = CUSTOMER_ORDERS["-created"]
    assert decode_cursor(encode_cursor([moment, 7]), order) == [moment, 7]
    assert decode_cursor(encode_cursor(["now", 7]), order) is None
    assert decode_cursor(encode_cursor([moment.replace(tzinfo=None).isoformat(), 7]), order) is None
    assert decode_cursor(encode_cursor([moment, 7, 8]), order) is None
    assert decode_cursor(encode_cursor([moment, True]), order) is None
    assert decode_cursor("%%%", order) is None


def test_a_count_beyond_the_cap_is_said_as_more_than(
    client: Client, staff: User, plan: Plan, monkeypatch: pytest.MonkeyPatch
):
    import staff.lists
    import staff.views_lists

    monkeypatch.setattr(staff.lists, "COUNT_CAP", 5)
    monkeypatch.setattr(staff.views_lists, "COUNT_CAP", 5)
    grow(1, 1, 8, plans=[plan])
    response = client.get(reverse("staff:mailbox_list"))
    assert response.context["count"] == 6  # counted no further than the cap and one
    assert "More than 5 mailboxes." in response.content.decode()
    assert COUNT_CAP == 10_000


def test_a_search_counts_to_its_own_cap(
    client: Client, staff: User, plan: Plan, monkeypatch: pytest.MonkeyPatch
):
    import staff.lists
    import staff.views_lists

    monkeypatch.setattr(staff.lists, "SEARCH_COUNT_CAP", 5)
    monkeypatch.setattr(staff.views_lists, "SEARCH_COUNT_CAP", 5)
    grow(1, 1, 8, plans=[plan])
    response = client.get(reverse("staff:mailbox_list"), {"q": "m"})
    assert response.context["count"] == 6
    assert "More than 5 mailboxes." in response.content.decode()
    assert len(page_of(response)) == 8


# --- Queries --------------------------------------------------------------------------------

REQUESTS: dict[str, tuple[str, dict]] = {
    "mailboxes": ("staff:mailbox_list", {}),
    "mailbox search": ("staff:mailbox_list", {"q": "m1"}),
    "mailbox search, unicode": ("staff:mailbox_list", {"q": "bäckerei-mü"}),
    "mailboxes by usage": ("staff:mailbox_list", {"sort": "-usage"}),
    "mailbox band": ("staff:mailbox_list", {"band": "warn", "server": "1", "plan": "1"}),
    "a customer's mailboxes": ("staff:mailbox_list", {"customer": "1"}),
    "domains": ("staff:domain_list", {"q": "firma"}),
    "customers": ("staff:customer_list", {"q": "kunde"}),
}


def queries_for(client: Client, name: str, params: dict, per_page: int) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(reverse(name), {**params, "per_page": per_page})
    assert response.status_code == 200
    return len(captured), len(response.context["page"])


@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_queries_do_not_grow_with_the_page_size_or_the_rows(
    client: Client, staff: User, plan: Plan, request_name: str
):
    name, params = REQUESTS[request_name]
    plans = [plan, make_plan(protocol="pop3", warning_thresholds=[60, 70, 100])]
    grow(1, 1, 2, plans=plans)
    small = queries_for(client, name, params, 25)
    grow(40, 3, 4, plans=plans, servers=[make_server(), make_server("mx2")])
    large, large_rows = queries_for(client, name, params, 25)
    largest, largest_rows = queries_for(client, name, params, 200)
    assert small[0] == large == largest, (small, large, largest)
    assert largest_rows > large_rows or largest_rows < 25  # the bigger page did show more


def test_the_page_query_seeks_instead_of_counting_past_rows(
    client: Client, staff: User, plan: Plan
):
    """No OFFSET: a late page starts from its cursor, with a row comparison the index on
    the order's keys answers."""
    grow(2, 2, 10, plans=[plan])
    url = reverse("staff:mailbox_list")
    for sort in MAILBOX_ORDERS:
        cursor = encode_cursor_of(client, url, {"sort": sort, "per_page": 25}, 1)
        with CaptureQueriesContext(connection) as captured:
            client.get(url, {"sort": sort, "per_page": 25, "after": cursor})
        (page_sql,) = [q["sql"] for q in captured if "LIMIT 26" in q["sql"]]
        assert "OFFSET" not in page_sql
        assert ") < (" in page_sql or ") > (" in page_sql


# --- CSV ------------------------------------------------------------------------------------


def read_csv(response) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_csv_export_streams_the_filtered_list_with_both_forms_of_a_domain(
    client: Client, staff: User, plan: Plan
):
    grow(2, 2, 3, plans=[plan], idn_every=2)
    response = client.get(reverse("staff:mailbox_export"), {"q": "müller", "per_page": 25})
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="mailboxes-')
    rows = read_csv(response)
    expected = Mailbox.objects.filter(address__contains="xn--bckerei-mller").order_by("address")
    assert [r["address_ascii"] for r in rows] == [m.address for m in expected]
    first = rows[0]
    assert "bäckerei-müller" in first["address"] and "bäckerei-müller" in first["domain"]
    assert first["domain_ascii"].startswith("xn--")
    mailbox = Mailbox.objects.select_related("plan").get(address=first["address_ascii"])
    usage = usage_summary(mailbox)
    assert first["usage_level"] == usage.level
    assert first["usage_percent"] == ("" if usage.percent is None else str(usage.percent))
    assert first["quota_bytes"] == str(mailbox.quota_bytes)


def test_csv_export_follows_the_sort_and_the_band(client: Client, staff: User, plan: Plan):
    grow(2, 2, 6, plans=[plan])
    rows = read_csv(client.get(reverse("staff:mailbox_export"), {"band": "full", "sort": "-usage"}))
    assert rows and {r["usage_level"] for r in rows} == {"full"}
    percents = [int(r["usage_percent"]) for r in rows]
    assert percents == sorted(percents, reverse=True)


def test_domain_and_customer_exports(client: Client, staff: User, plan: Plan):
    grow(2, 2, 1, plans=[plan], idn_every=1)
    domains = read_csv(client.get(reverse("staff:domain_export")))
    assert len(domains) == 4
    assert set(domains[0]) == {
        "domain",
        "domain_ascii",
        "customer",
        "mail_server",
        "mailboxes",
        "created_at",
    }
    assert domains[0]["domain"].startswith("bäckerei-müller") and domains[0]["mailboxes"] == "1"
    customers = read_csv(client.get(reverse("staff:customer_export"), {"q": "kunde"}))
    assert [(c["domains"], c["mailboxes"]) for c in customers] == [("2", "2"), ("2", "2")]


def test_csv_cells_cannot_become_formulas(client: Client, staff: User):
    Customer.objects.create(name='=HYPERLINK("http://x")', contact_email="x@example.org")
    (row,) = read_csv(client.get(reverse("staff:customer_export")))
    assert row["name"] == '\'=HYPERLINK("http://x")'


# --- German ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LISTS)
def test_the_lists_speak_german(client: Client, staff: User, plan: Plan, name: str):
    grow(1, 1, 2, plans=[plan])
    html = client.get(reverse(name), headers={"Accept-Language": "de"}).content.decode()
    assert 'lang="de"' in html
    assert "Suche" in html and "Als CSV exportieren" in html


def test_mailboxes_without_a_login_for_n_days(client: Client, staff: User, plan: Plan):
    """A POP3 box nobody collects any more is a full box waiting to bounce: find them."""
    from datetime import timedelta

    from django.utils import timezone

    from mailboxes.models import MailboxLogin

    grow(1, 1, 4, plans=[plan])
    now = timezone.now()
    Mailbox.objects.update(created_at=now - timedelta(days=200))
    recent, old, never, young = Mailbox.objects.order_by("pk")
    Mailbox.objects.filter(pk=young.pk).update(created_at=now - timedelta(days=10))
    MailboxLogin.objects.create(
        username=recent.address, protocol="imap", last_login=int(now.timestamp())
    )
    MailboxLogin.objects.create(
        username=old.address,
        protocol="pop3",
        last_login=int((now - timedelta(days=100)).timestamp()),
    )
    response = client.get(reverse("staff:mailbox_list"), {"unused": 90})
    assert {m.pk for m in page_of(response)} == {old.pk, never.pk}
    assert response.context["count"] == 2
    assert 'name="unused"' in response.content.decode()
    export = client.get(reverse("staff:mailbox_export"), {"unused": 90})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(rows) == 3  # the header and the two
