"""Staff pages: thin views that read through selectors and change state only through services.

Every form posts to its own URL; on success the view redirects (PRG), on a validation error it
renders the page again with the form bound, so nothing typed is lost, and status 400.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services as account_services
from accounts.models import AuditEntry, Customer, User
from accounts.selectors import audit_entries
from backups import policy as backup_policy
from backups import selectors as backup_selectors
from backups import services as backup_services
from mailboxes import plan_changes, selectors, services
from mailboxes.models import Domain, Mailbox
from mailboxes.overview import staff_overview
from mailboxes.passwords import generate_password
from web.access import staff_required
from web.client import client_ip
from web.dns import dns_context
from web.http import AuthenticatedHttpRequest
from web.templatetags.postamt import audit_action
from web.usage import refresh_message, usage_context

from .forms import (
    AuditFilterForm,
    CustomerForm,
    CustomerUserForm,
    DomainForm,
    MailboxCreateForm,
    PasswordForm,
    PlanForm,
    QuotaForm,
    StorageAllowanceForm,
)

AUDIT_PAGE_SIZE = 50
DRIFT_SHOWN = 50


def _by(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    """Who acts and from where, for the audit log every service writes."""
    return {"actor": request.user, "ip": client_ip(request)}


def _password_message(text: str, password: str) -> str:
    """A success message that carries a generated password, the only time it is shown."""
    return format_html(
        '{} {} <code class="password">{}</code>',
        text,
        _("Its password is shown only this once:"),
        password,
    )


# --- Dashboard and customers --------------------------------------------------------------


def _render_dashboard(
    request: AuthenticatedHttpRequest, form: CustomerForm | None = None, status: int = 200
) -> HttpResponse:
    drifting = selectors.drifting_mailboxes()
    context = {
        "overview": staff_overview(),
        "servers": selectors.server_list(),
        # The first ones are enough to act on; the count says how big the problem is.
        "drifting": drifting[:DRIFT_SHOWN],
        "drifting_count": drifting.count(),
        "unknown_user_servers": selectors.servers_with_unknown_users(),
        "plan_requests": selectors.pending_plan_requests(),
        "backup_attention": backup_selectors.needing_attention(),
        "form": form or CustomerForm(initial={"language": get_language()}),
        "mailbox_list_url": reverse("staff:mailbox_list"),
    }
    return render(request, "staff/dashboard.html", context, status=status)


@staff_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _render_dashboard(request)


@staff_required
@require_POST
def customer_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = CustomerForm(request.POST)
    if form.is_valid():
        try:
            customer = account_services.customer_create(
                name=form.cleaned_data["name"],
                contact_email=form.cleaned_data["contact_email"],
                language=form.cleaned_data["language"],
                **_by(request),
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, _("Customer “%(name)s” created.") % {"name": customer.name})
            return redirect("staff:customer_detail", customer.pk)
    return _render_dashboard(request, form, status=400)


def _render_customer(
    request: AuthenticatedHttpRequest,
    customer: Customer,
    *,
    domain_form: DomainForm | None = None,
    mailbox_form: MailboxCreateForm | None = None,
    user_form: CustomerUserForm | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "customer": customer,
        "domains": selectors.customer_domains(customer),
        "allocation": services.allocation(customer),
        "mailboxes": selectors.customer_mailboxes(customer),
        "users": selectors.customer_users(customer),
        "plan_requests": selectors.customer_plan_requests(customer)[:20],
        "deleted_backups": backup_selectors.deleted_mailbox_backups(customer.pk),
        "domain_form": domain_form or DomainForm(),
        "mailbox_form": mailbox_form or MailboxCreateForm(customer=customer),
        "user_form": user_form or CustomerUserForm(),
        "page_url": reverse("staff:customer_detail", args=[customer.pk]),
    }
    return render(request, "staff/customer_detail.html", context, status=status)


@staff_required
def customer_detail(request: AuthenticatedHttpRequest, customer_id: int) -> HttpResponse:
    return _render_customer(request, get_object_or_404(Customer, pk=customer_id))


@staff_required
@require_POST
def domain_create(request: AuthenticatedHttpRequest, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer, pk=customer_id)
    form = DomainForm(request.POST)
    if form.is_valid():
        try:
            domain = services.domain_create(
                customer=customer,
                name=form.cleaned_data["name"],
                mail_server=form.cleaned_data["mail_server"],
                **_by(request),
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, _("Domain %(name)s added.") % {"name": domain.display_name})
            return redirect("staff:customer_detail", customer.pk)
    return _render_customer(request, customer, domain_form=form, status=400)


def _set_allowance(
    request: AuthenticatedHttpRequest, owner: Customer | Domain, customer: Customer
) -> HttpResponse:
    form = StorageAllowanceForm(request.POST)
    if form.is_valid():
        try:
            services.storage_allowance_set(
                owner=owner, allowance_bytes=form.cleaned_data["allowance"], **_by(request)
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, _("Storage allowance saved."))
            return redirect("staff:customer_detail", customer.pk)
    for error in [*form.errors.get("allowance", []), *form.non_field_errors()]:
        messages.error(request, str(error))
    return redirect("staff:customer_detail", customer.pk)


@staff_required
@require_POST
def customer_allowance(request: AuthenticatedHttpRequest, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer, pk=customer_id)
    return _set_allowance(request, customer, customer)


@staff_required
@require_POST
def domain_allowance(request: AuthenticatedHttpRequest, domain_id: int) -> HttpResponse:
    domain = get_object_or_404(Domain.objects.select_related("customer"), pk=domain_id)
    return _set_allowance(request, domain, domain.customer)


@staff_required
def domain_dns(request: AuthenticatedHttpRequest, domain_id: int) -> HttpResponse:
    """The DNS records that let mail programs find their settings; checked on request."""
    domain = get_object_or_404(
        Domain.objects.select_related("customer", "mail_server"), pk=domain_id
    )
    return render(request, "staff/domain_dns.html", dns_context(request, domain))


@staff_required
@require_POST
def mailbox_create(request: AuthenticatedHttpRequest, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer, pk=customer_id)
    form = MailboxCreateForm(request.POST, customer=customer)
    if form.is_valid():
        data = form.cleaned_data
        password = data["password"] or generate_password()
        try:
            mailbox = services.mailbox_create(
                domain=data["domain"],
                local_part=data["local_part"],
                password=password,
                plan=data["plan"],
                protocol=data["protocol"] or None,
                quota_bytes=form.quota_bytes,
                mail_server=data["mail_server"],
                **_by(request),
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            text = _("Mailbox %(address)s created.") % {"address": mailbox.display_address}
            if data["password"]:
                messages.success(request, text)
            else:
                messages.success(request, _password_message(text, password))
            return redirect("staff:mailbox_detail", mailbox.pk)
    return _render_customer(request, customer, mailbox_form=form, status=400)


@staff_required
@require_POST
def customer_user_create(request: AuthenticatedHttpRequest, customer_id: int) -> HttpResponse:
    """Give the customer a login; the person chooses the password through an emailed link."""
    customer = get_object_or_404(Customer, pk=customer_id)
    form = CustomerUserForm(request.POST)
    if form.is_valid():
        try:
            user = account_services.customer_user_create(
                customer=customer, email=form.cleaned_data["email"], **_by(request)
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(
                request,
                _("Login %(email)s created; a link to choose a password is on its way to it.")
                % {"email": user.email},
            )
            return redirect("staff:customer_detail", customer.pk)
    return _render_customer(request, customer, user_form=form, status=400)


@staff_required
@require_POST
def customer_user_active(
    request: AuthenticatedHttpRequest, customer_id: int, user_id: int
) -> HttpResponse:
    """Disable a customer's login (its sessions end at once) or enable it again."""
    customer = get_object_or_404(Customer, pk=customer_id)
    user = get_object_or_404(User, pk=user_id, customer=customer)
    active = request.POST.get("active") == "1"
    try:
        account_services.customer_user_set_active(user=user, active=active, **_by(request))
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        text = (
            _("Login %(email)s is enabled again.")
            if active
            else _("Login %(email)s is disabled; its sessions have ended.")
        )
        messages.success(request, text % {"email": user.email})
    return redirect("staff:customer_detail", customer.pk)


# --- One mailbox --------------------------------------------------------------------------


def _render_mailbox(
    request: AuthenticatedHttpRequest,
    mailbox: Mailbox,
    *,
    password_form: PasswordForm | None = None,
    quota_form: QuotaForm | None = None,
    plan_form: PlanForm | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        **usage_context(request, mailbox, "staff"),
        "customer": mailbox.customer,
        "trail": selectors.mailbox_audit_trail(mailbox),
        "password_form": password_form or PasswordForm(),
        "quota_form": quota_form or QuotaForm(initial={"quota": mailbox.quota_bytes}),
        "plan_form": plan_form
        or PlanForm(initial={"plan": mailbox.plan_id, "protocol": mailbox.protocol}),
    }
    return render(request, "staff/mailbox_detail.html", context, status=status)


def _get_mailbox(mailbox_id: int) -> Mailbox:
    return get_object_or_404(selectors.mailbox_queryset(), pk=mailbox_id)


@staff_required
def mailbox_detail(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """The page; for htmx (chart range, polling after a refresh) only its usage block."""
    mailbox = _get_mailbox(mailbox_id)
    if request.htmx:
        context = usage_context(request, mailbox, "staff")
        return render(request, "_usage.html#usage-block", context)
    return _render_mailbox(request, mailbox)


@staff_required
@require_POST
def mailbox_refresh(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """Measure now. With htmx the usage block comes back; without, the page (PRG)."""
    mailbox = _get_mailbox(mailbox_id)
    claimed = services.mailbox_request_refresh(mailbox=mailbox, **_by(request))
    level, text = refresh_message(claimed)
    if request.htmx:
        mailbox.refresh_from_db()
        context = {
            **usage_context(request, mailbox, "staff"),
            "refresh_message": text,
            "refresh_message_level": level,
        }
        return render(request, "_usage.html#usage-block", context)
    messages.add_message(request, messages.SUCCESS if claimed else messages.WARNING, text)
    return redirect("staff:mailbox_detail", mailbox.pk)


@staff_required
@require_POST
def mailbox_password(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    mailbox = _get_mailbox(mailbox_id)
    form = PasswordForm(request.POST)
    if form.is_valid():
        password = form.cleaned_data["password"] or generate_password()
        try:
            services.mailbox_set_password(mailbox=mailbox, password=password, **_by(request))
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            text = _("Password of %(address)s changed.") % {"address": mailbox.display_address}
            if form.cleaned_data["password"]:
                messages.success(request, text)
            else:
                messages.success(request, _password_message(text, password))
            return redirect("staff:mailbox_detail", mailbox.pk)
    return _render_mailbox(request, mailbox, password_form=form, status=400)


@staff_required
@require_POST
def mailbox_quota(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    mailbox = _get_mailbox(mailbox_id)
    form = QuotaForm(request.POST)
    if form.is_valid():
        try:
            services.mailbox_set_quota(
                mailbox=mailbox, quota_bytes=form.quota_bytes, **_by(request)
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(
                request, _("Quota of %(address)s changed.") % {"address": mailbox.display_address}
            )
            return redirect("staff:mailbox_detail", mailbox.pk)
    return _render_mailbox(request, mailbox, quota_form=form, status=400)


@staff_required
@require_POST
def mailbox_plan(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    mailbox = _get_mailbox(mailbox_id)
    form = PlanForm(request.POST)
    if form.is_valid():
        try:
            services.mailbox_change_plan(
                mailbox=mailbox,
                plan=form.cleaned_data["plan"],
                protocol=form.cleaned_data["protocol"] or None,
                **_by(request),
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(
                request,
                _("Plan and protocol of %(address)s changed.")
                % {"address": mailbox.display_address},
            )
            return redirect("staff:mailbox_detail", mailbox.pk)
    return _render_mailbox(request, mailbox, plan_form=form, status=400)


def _render_status_error(
    request: AuthenticatedHttpRequest, mailbox: Mailbox, exc: ValidationError
) -> HttpResponse:
    """A button has no form to carry the error (e.g. suspended twice from two tabs)."""
    for message in exc.messages:
        messages.error(request, message)
    return _render_mailbox(request, mailbox, status=400)


@staff_required
@require_POST
def mailbox_suspend(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    mailbox = _get_mailbox(mailbox_id)
    try:
        services.mailbox_suspend(mailbox=mailbox, **_by(request))
    except ValidationError as exc:
        return _render_status_error(request, mailbox, exc)
    messages.success(
        request,
        _("Mailbox %(address)s suspended: logins are refused, mail still arrives.")
        % {"address": mailbox.display_address},
    )
    return redirect("staff:mailbox_detail", mailbox.pk)


@staff_required
@require_POST
def mailbox_reactivate(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    mailbox = _get_mailbox(mailbox_id)
    try:
        services.mailbox_reactivate(mailbox=mailbox, **_by(request))
    except ValidationError as exc:
        return _render_status_error(request, mailbox, exc)
    messages.success(
        request, _("Mailbox %(address)s reactivated.") % {"address": mailbox.display_address}
    )
    return redirect("staff:mailbox_detail", mailbox.pk)


@staff_required
@require_http_methods(["GET", "POST"])
def mailbox_delete(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes."""
    mailbox = _get_mailbox(mailbox_id)
    if request.method == "POST" and request.POST.get("final_backup"):
        try:
            job = backup_services.mailbox_delete_after_backup(mailbox=mailbox, **_by(request))
        except ValidationError as exc:
            context = {"mailbox": mailbox, "errors": exc.messages}
            return render(request, "staff/mailbox_confirm_delete.html", context, status=400)
        messages.success(
            request,
            _(
                "A last backup of %(address)s is under way; the mailbox is deleted once it is "
                "stored, and kept if it fails."
            )
            % {"address": mailbox.display_address},
        )
        return redirect("staff_backups:backup_job", job.pk)
    if request.method == "POST":
        customer, address = mailbox.customer, mailbox.display_address
        services.mailbox_delete(mailbox=mailbox, **_by(request))
        messages.success(
            request,
            _("Mailbox %(address)s deleted; its stored mail is being removed.")
            % {"address": address},
        )
        return redirect("staff:customer_detail", customer.pk)
    context = {
        "mailbox": mailbox,
        "backed_up": backup_policy.covers(mailbox.plan, mailbox.protocol),
    }
    return render(request, "staff/mailbox_confirm_delete.html", context)


# --- Plan change requests ------------------------------------------------------------------


def _plan_request_done(request: AuthenticatedHttpRequest, text: str, level: int) -> HttpResponse:
    """htmx gets the refreshed list of pending requests; a plain form goes back (PRG)."""
    if request.htmx:
        context = {"plan_requests": selectors.pending_plan_requests(), "notice": text}
        return render(request, "staff/dashboard.html#plan-requests", context)
    messages.add_message(request, level, text)
    return redirect("staff:dashboard")


@staff_required
@require_POST
def plan_request_approve(request: AuthenticatedHttpRequest, request_id: int) -> HttpResponse:
    plan_request = get_object_or_404(selectors.plan_request_queryset(), pk=request_id)
    try:
        plan_changes.plan_change_approve(plan_request=plan_request, **_by(request))
    except ValidationError as exc:
        return _plan_request_done(request, " ".join(exc.messages), messages.ERROR)
    return _plan_request_done(
        request,
        _("Approved: %(address)s is now on “%(plan)s”.")
        % {"address": plan_request.mailbox.display_address, "plan": plan_request.plan.name},
        messages.SUCCESS,
    )


@staff_required
@require_POST
def plan_request_decline(request: AuthenticatedHttpRequest, request_id: int) -> HttpResponse:
    plan_request = get_object_or_404(selectors.plan_request_queryset(), pk=request_id)
    try:
        plan_changes.plan_change_decline(
            plan_request=plan_request,
            reason=request.POST.get("reason", "")[:1000],
            **_by(request),
        )
    except ValidationError as exc:
        return _plan_request_done(request, " ".join(exc.messages), messages.ERROR)
    return _plan_request_done(
        request,
        _("Declined the request for %(address)s.")
        % {"address": plan_request.mailbox.display_address},
        messages.SUCCESS,
    )


# --- Audit log ----------------------------------------------------------------------------


@staff_required
def audit_log(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """The log with filters; ``?format=csv`` streams the filtered entries as CSV."""
    form = AuditFilterForm(request.GET)
    entries = audit_entries(form.wanted())
    if request.GET.get("format") == "csv":
        return _audit_csv(entries)
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "entries": page,
        "show_target": True,
        "form": form,
        "page_query": query.urlencode(),
    }
    return render(request, "staff/audit_log.html", context)


class _Echo:
    """A file that hands back what is written to it: csv.writer's rows, streamed."""

    def write(self, value: str) -> str:
        return value


def _audit_csv(entries: QuerySet[AuditEntry]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    header = [
        "time",
        "action",
        "action_label",
        "object_type",
        "object",
        "customer_id",
        "customer",
        "actor",
        "ip_address",
        "details",
    ]

    def rows() -> Iterator[str]:
        yield writer.writerow(header)
        for entry in entries.iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    entry.created_at.isoformat(),
                    entry.action,
                    str(audit_action(entry.action)),
                    entry.target_type,
                    entry.target_repr,
                    entry.customer_id or "",
                    entry.customer.name if entry.customer else "",
                    entry.actor_name,
                    entry.ip_address or "",
                    json.dumps(entry.details, ensure_ascii=False, sort_keys=True),
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="postamt-audit.csv"'
    return response
