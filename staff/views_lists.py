"""The staff lists of customers, domains and mailboxes: search as you type, filters, sorts,
keyset pages and CSV export of any filtered list.

Filters live in the query string, so a filtered list is a link (the dashboard's numbers point
here). One URL serves the page, or for htmx (the search box, the filter selects) only its
results; without JavaScript the same form submits as a plain GET. Each list costs a fixed
number of queries whatever the page size and the number of rows: the page (one query,
keyset), a count (capped; for a search, the ids it matches), the choices of the filter
selects, and for a mailbox search the domains of the customers it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.cache import patch_vary_headers
from django.utils.formats import get_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_htmx.http import push_url

from accounts.models import Customer
from mailboxes import search, selectors
from mailboxes.models import Domain, Mailbox, MailServer, Plan, Protocol
from web.access import staff_required
from web.http import AuthenticatedHttpRequest
from web.templatetags.postamt import LEVEL_LABELS

from .lists import (
    COUNT_CAP,
    DEFAULT_PAGE_SIZE,
    PAGE_SIZES,
    SEARCH_COUNT_CAP,
    KeysetPage,
    capped_count,
    csv_response,
    keyset_page,
    ordered,
    query_string,
    searched,
)

EXPORT_CHUNK = 2000
ANY = [("", _("all"))]
# "No login for": the choices of the filter (Dovecot's last-login records, both protocols).
UNUSED_DAYS = [(30, _("30 days")), (90, _("90 days")), (180, _("180 days")), (365, _("a year"))]


# --- Forms: the filters of each list, read from the query string --------------------------


class ListForm(forms.Form):
    """Filters from the query string; a value that does not fit is dropped, not an error:
    an old bookmark still shows a list."""

    # No max_length: a longer search is cut (search_term), not dropped.
    q = forms.CharField(label=_("Search"), required=False)
    per_page = forms.TypedChoiceField(
        label=_("Rows per page"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=[(n, n) for n in PAGE_SIZES],
    )
    orders: dict[str, search.Order] = {}
    default_sort = ""
    choice_labels = {"plan": _("Plan"), "server": _("Mail server")}

    def __init__(self, data: Any, **choices: list[Any]) -> None:
        super().__init__(data)
        self.fields["sort"] = forms.ChoiceField(
            label=_("Order"),
            required=False,
            choices=[(key, order.label) for key, order in self.orders.items()],
        )
        for name, objects in choices.items():
            self.fields[name] = forms.TypedChoiceField(
                label=self.choice_labels[name],
                required=False,
                coerce=int,
                empty_value=None,
                choices=[*ANY, *((obj.pk, str(obj)) for obj in objects)],
            )
        self.order_fields(["q", "protocol", "plan", "status", "server", "band", "unused", "sort"])
        self.is_valid()

    def value(self, name: str) -> Any:
        return self.cleaned_data.get(name) or None

    def effective(self, name: str) -> Any:
        """What the list uses: the value given if it fits, else the default."""
        defaults = {"sort": self.default_sort, "per_page": DEFAULT_PAGE_SIZE}
        return self.value(name) or defaults.get(name)

    def selects(self) -> list[dict[str, Any]]:
        """The select fields with their options, ready to print: Django's widget rendering
        (a template per option) cost more than the rest of the filter bar together."""
        result = []
        for field in self.visible_fields():
            if not isinstance(field.field, forms.ChoiceField):
                continue
            current = str(self.effective(field.name) or "")
            choices: list[tuple[Any, Any]] = list(field.field.choices)  # type: ignore[arg-type]
            options = [(str(value), label, str(value) == current) for value, label in choices]
            result.append(
                {
                    "name": field.html_name,
                    "id": field.auto_id,
                    "label": field.label,
                    "options": options,
                }
            )
        return result

    @property
    def order(self) -> search.Order:
        return self.orders[self.effective("sort")]

    @property
    def page_size(self) -> int:
        return int(self.effective("per_page"))


class MailboxListForm(ListForm):
    orders = search.MAILBOX_ORDERS
    default_sort = "address"
    protocol = forms.ChoiceField(
        label=_("Protocol"), required=False, choices=[*ANY, *Protocol.choices]
    )
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[*ANY, *Mailbox.Status.choices]
    )
    band = forms.ChoiceField(
        label=_("Usage"), required=False, choices=[*ANY, *search.BANDS.items()]
    )
    unused = forms.TypedChoiceField(
        label=_("No login for"),
        required=False,
        coerce=int,
        empty_value=None,
        choices=[*ANY, *UNUSED_DAYS],
    )
    customer = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    domain = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, data: Any, *, plans: list[Plan], servers: list[MailServer]) -> None:
        super().__init__(data, plan=plans, server=servers)

    def filters(self) -> search.MailboxFilters:
        return search.MailboxFilters(
            search=self.cleaned_data.get("q") or "",
            protocol=self.value("protocol"),
            plan=self.value("plan"),
            status=self.value("status"),
            server=self.value("server"),
            band=self.value("band"),
            customer=self.value("customer"),
            domain=self.value("domain"),
            no_login_since=(
                timezone.now() - timedelta(days=self.value("unused"))
                if self.value("unused")
                else None
            ),
        )


class DomainListForm(ListForm):
    orders = search.DOMAIN_ORDERS
    default_sort = "name"
    customer = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, data: Any, *, servers: list[MailServer]) -> None:
        super().__init__(data, server=servers)


class CustomerListForm(ListForm):
    orders = search.CUSTOMER_ORDERS
    default_sort = "name"


# --- Shared -------------------------------------------------------------------------------


def _respond(
    request: AuthenticatedHttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    page: KeysetPage[Any],
    count: tuple[int, int],
    export_url: str,
) -> HttpResponse:
    """The page, or for htmx its results only; links to the neighbouring pages and the
    export keep every filter."""
    params = request.GET
    counted, cap = count
    context.update(
        page=page,
        count=counted,
        count_capped=counted > cap,
        count_cap=cap,
        first_url="?" + query_string(params, after=None, before=None),
        previous_url="?" + query_string(params, after=None, before=page.previous_cursor),
        next_url="?" + query_string(params, after=page.next_cursor, before=None),
        export_url=export_url + "?" + query_string(params, after=None, before=None, per_page=None),
    )
    if request.htmx and not request.htmx.history_restore_request:
        response = render(request, f"{template}#results", context)
        # The address bar follows the search, without the empty fields htmx sends along.
        current = query_string(params)
        push_url(response, request.path + ("?" + current if current else ""))
    else:
        response = render(request, template, context)
    # The same URL answers with the page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response


def _page_and_count(
    request: AuthenticatedHttpRequest, form: ListForm, queryset: Any
) -> tuple[KeysetPage[Any], tuple[int, int]]:
    """The page the query string asks for, and how many rows match, with the cap of that
    count: two queries, whatever the page."""
    if form.cleaned_data.get("q"):
        queryset, count = searched(queryset)
        cap = SEARCH_COUNT_CAP
    else:
        count, cap = capped_count(queryset), COUNT_CAP
    page = keyset_page(
        queryset,
        form.order,
        size=form.page_size,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
    )
    return page, (count, cap)


def _filename(kind: str) -> str:
    return f"{kind}-{timezone.localtime():%Y-%m-%d-%H%M}.csv"


def _exported(queryset: Any, order: search.Order) -> Any:
    return ordered(queryset, order).iterator(chunk_size=EXPORT_CHUNK)


# --- Rows ---------------------------------------------------------------------------------
# A page of 50 to 200 rows is most of a list's time. Its words are translated once per page and
# its links formatted from one reversed URL; per row, only what differs is put together.

_PLACEHOLDER = 987654321
_ICONS = {"full": "✖", "danger": "⚠︎", "warn": "▲", "ok": "✓", "unknown": ""}


def _link_format(name: str) -> str:
    """``staff:mailbox_detail`` as ``/staff/mailboxes/{}/``: reversed once per page."""
    return reverse(name, args=[_PLACEHOLDER]).replace(str(_PLACEHOLDER), "{}")


def _link_rows(rows: list[Any], name: str, key: str) -> None:
    """Give each row the ``link`` to the page ``name`` of its ``key``."""
    link = _link_format(name)
    for row in rows:
        row.link = link.format(getattr(row, key))


@dataclass(frozen=True)
class MailboxRow:
    """A mailbox as its row shows it; the bar's level is ``selectors.usage_summary``'s, the
    same as every other bar and as the band filter."""

    mailbox: Mailbox
    url: str
    customer_url: str
    usage: selectors.UsageSummary
    usage_text: str
    level_label: str
    icon: str
    status: str
    last_login: datetime | None  # in the current time zone
    last_login_text: str

    @property
    def ascii_address(self) -> str:
        """The stored form, when the shown one differs from it (an IDN)."""
        address = self.mailbox.address
        return address if address != self.mailbox.display_address else ""


def _mailbox_rows(mailboxes: list[Mailbox]) -> list[MailboxRow]:
    measured = gettext("%(used)s of %(quota)s (%(percent)s%%)")
    unmeasured = gettext("Not measured yet (quota %(quota)s)")
    labels = {level: str(label) for level, label in LEVEL_LABELS.items()}
    statuses = {value: str(label) for value, label in Mailbox.Status.choices}
    mailbox_url = _link_format("staff:mailbox_detail")
    customer_url = _link_format("staff:customer_detail")
    # The template's date filter, once per row and attribute, cost more than the rest of a row.
    short_date = get_format("SHORT_DATE_FORMAT")
    rows = []
    for mailbox in mailboxes:
        login = timezone.localtime(mailbox.last_login_at) if mailbox.last_login_at else None
        usage = selectors.usage_summary(mailbox)
        quota = filesizeformat(usage.quota_bytes)
        if usage.used_bytes is not None:
            text = measured % {
                "used": filesizeformat(usage.used_bytes),
                "quota": quota,
                "percent": usage.percent,
            }
        else:
            text = unmeasured % {"quota": quota}
        rows.append(
            MailboxRow(
                mailbox=mailbox,
                url=mailbox_url.format(mailbox.pk),
                customer_url=customer_url.format(mailbox.domain.customer_id),
                usage=usage,
                usage_text=text,
                level_label=labels[usage.level] if usage.measured and usage.level != "ok" else "",
                icon=_ICONS[usage.level],
                status=statuses.get(mailbox.status, mailbox.status),
                last_login=login,
                last_login_text=dateformat.format(login, short_date) if login else "",
            )
        )
    return rows


# --- Mailboxes ----------------------------------------------------------------------------


def _mailbox_form(
    request: AuthenticatedHttpRequest,
) -> tuple[MailboxListForm, list[Plan], list[MailServer]]:
    plans = list(Plan.objects.order_by("name"))
    servers = list(MailServer.objects.order_by("name"))
    return MailboxListForm(request.GET, plans=plans, servers=servers), plans, servers


@staff_required
def mailbox_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form, plans, servers = _mailbox_form(request)
    filters = form.filters()
    page, count = _page_and_count(request, form, search.mailbox_list(filters, plans))
    context = {
        "form": form,
        "rows": _mailbox_rows(list(search.with_plans_and_servers(page.rows, plans, servers))),
        "filtered_customer": _named(Customer, filters.customer),
        "filtered_domain": _named(Domain, filters.domain),
        "list_url": reverse("staff:mailbox_list"),
        "never": gettext("none recorded"),
    }
    return _respond(
        request,
        "staff/mailbox_list.html",
        context,
        page=page,
        count=count,
        export_url=reverse("staff:mailbox_export"),
    )


def _named(model: Any, pk: int | None) -> Any:
    """The object a hidden filter names, to say so above the list (a query only then)."""
    return None if pk is None else model.objects.filter(pk=pk).first()


MAILBOX_CSV_HEADER = [
    "address",
    "address_ascii",
    "customer",
    "domain",
    "domain_ascii",
    "protocol",
    "plan",
    "mail_server",
    "status",
    "quota_bytes",
    "used_bytes",
    "usage_percent",
    "usage_level",
    "usage_state",
    "usage_checked_at",
    "created_at",
    "last_login_at",
]


def _mailbox_row(mailbox: Mailbox) -> list[object]:
    usage = selectors.usage_summary(mailbox)
    return [
        mailbox.display_address,
        mailbox.address,
        mailbox.domain.customer.name,
        mailbox.domain.display_name,
        mailbox.domain.name,
        mailbox.protocol,
        mailbox.plan.name,
        mailbox.mail_server.name,
        mailbox.status,
        mailbox.quota_bytes,
        mailbox.used_bytes,
        usage.percent,
        usage.level,
        mailbox.usage_state,
        mailbox.usage_checked_at,
        mailbox.created_at,
        mailbox.last_login_at,
    ]


@staff_required
def mailbox_export(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    """Every mailbox of the filtered list, in its order, as CSV."""
    form, plans, servers = _mailbox_form(request)
    mailboxes = _exported(search.mailbox_list(form.filters(), plans), form.order)
    rows = search.with_plans_and_servers(mailboxes, plans, servers)
    return csv_response(_filename("mailboxes"), MAILBOX_CSV_HEADER, rows, _mailbox_row)


# --- Domains ------------------------------------------------------------------------------


def _domain_form(request: AuthenticatedHttpRequest) -> DomainListForm:
    return DomainListForm(request.GET, servers=list(MailServer.objects.order_by("name")))


def _domains(form: DomainListForm) -> Any:
    return search.domain_list(
        search=form.cleaned_data.get("q") or "",
        server=form.value("server"),
        customer=form.value("customer"),
    )


@staff_required
def domain_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = _domain_form(request)
    page, count = _page_and_count(request, form, _domains(form))
    _link_rows(page.rows, "staff:customer_detail", "customer_id")
    context = {
        "form": form,
        "filtered_customer": _named(Customer, form.value("customer")),
        "list_url": reverse("staff:domain_list"),
        "mailbox_list_url": reverse("staff:mailbox_list"),
    }
    return _respond(
        request,
        "staff/domain_list.html",
        context,
        page=page,
        count=count,
        export_url=reverse("staff:domain_export"),
    )


DOMAIN_CSV_HEADER = [
    "domain",
    "domain_ascii",
    "customer",
    "mail_server",
    "mailboxes",
    "created_at",
]


def _domain_row(domain: Domain) -> list[object]:
    return [
        domain.display_name,
        domain.name,
        domain.customer.name,
        domain.mail_server.name,
        domain.mailbox_count,  # type: ignore[attr-defined]
        domain.created_at,
    ]


@staff_required
def domain_export(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    form = _domain_form(request)
    rows = _exported(_domains(form), form.order)
    return csv_response(_filename("domains"), DOMAIN_CSV_HEADER, rows, _domain_row)


# --- Customers ----------------------------------------------------------------------------


@staff_required
def customer_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = CustomerListForm(request.GET)
    customers = search.customer_list(search=form.cleaned_data.get("q") or "")
    page, count = _page_and_count(request, form, customers)
    _link_rows(page.rows, "staff:customer_detail", "pk")
    context = {
        "form": form,
        "list_url": reverse("staff:customer_list"),
        "domain_list_url": reverse("staff:domain_list"),
        "mailbox_list_url": reverse("staff:mailbox_list"),
    }
    return _respond(
        request,
        "staff/customer_list.html",
        context,
        page=page,
        count=count,
        export_url=reverse("staff:customer_export"),
    )


CUSTOMER_CSV_HEADER = [
    "customer_id",
    "name",
    "contact_email",
    "language",
    "domains",
    "mailboxes",
    "created_at",
]


def _customer_row(customer: Customer) -> list[object]:
    return [
        customer.pk,
        customer.name,
        customer.contact_email,
        customer.language,
        customer.domain_count,  # type: ignore[attr-defined]
        customer.mailbox_count,  # type: ignore[attr-defined]
        customer.created_at,
    ]


@staff_required
def customer_export(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    form = CustomerListForm(request.GET)
    rows = _exported(search.customer_list(search=form.cleaned_data.get("q") or ""), form.order)
    return csv_response(_filename("customers"), CUSTOMER_CSV_HEADER, rows, _customer_row)
