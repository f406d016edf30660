"""The customer portal: a customer's users see and look after their own mailboxes.

Every view is wrapped in ``customer_required`` and loads objects only through the customer
(``_get_mailbox``, ``_get_plan_request``), so an id that belongs to someone else is a 404 and
nothing tells it apart from an id that does not exist. Customers never see staff-only
fields: storage paths, mail servers and their health, IP addresses, measuring errors.

One URL serves the full page or, for htmx, the partial it updates; every htmx request has a
plain form or link behind it, so each action also works without JavaScript (PRG on success;
the page again with the bound form and status 400 on an error; for htmx, the form's partial
with status 422, see ``HTMX_FORM_ERRORS``).
"""

from __future__ import annotations

import csv
from datetime import UTC
from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.models import Customer
from backups import selectors as backup_selectors
from mailboxes import client_settings, plan_changes, profiles, selectors, services
from mailboxes.models import Mailbox, PlanChangeRequest
from web.access import customer_required
from web.client import client_ip
from web.dns import dns_context
from web.http import AuthenticatedHttpRequest
from web.profiles import profile_response
from web.usage import refresh_message, usage_context

from .forms import (
    MailboxPasswordForm,
    NotificationSettingsForm,
    PlanRequestForm,
    SupportAccessForm,
)

ACTIVITY_PAGE_SIZE = 50
# An htmx form with errors answers 422 (Unprocessable Content), which base.html's htmx-config
# swaps in place. Not 400: with DEBUG, django-htmx's script takes an htmx 400 for a crash and
# puts the response, the bare partial, in place of the whole document.
HTMX_FORM_ERRORS = 422
OVERVIEW = "portal/overview.html"
MAILBOX = "portal/mailbox_detail.html"


def _by(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    return {"actor": request.user, "ip": client_ip(request)}


def _customer(request: AuthenticatedHttpRequest) -> Customer:
    customer = request.user.customer
    assert customer is not None  # customer_required let the request through
    return customer


def _get_mailbox(request: AuthenticatedHttpRequest, mailbox_id: int) -> Mailbox:
    """The access helper: a mailbox of the logged-in user's customer, or 404."""
    return get_object_or_404(selectors.customer_mailboxes(_customer(request)), pk=mailbox_id)


def _get_plan_request(request: AuthenticatedHttpRequest, request_id: int) -> PlanChangeRequest:
    return get_object_or_404(selectors.portal_plan_requests(_customer(request)), pk=request_id)


# --- Overview -----------------------------------------------------------------------------


@customer_required
def overview(request: AuthenticatedHttpRequest) -> HttpResponse:
    customer = _customer(request)
    context = {
        "customer": customer,
        "mailboxes": selectors.customer_mailboxes(customer),
        "allocation": services.allocation(customer),
        "pending_requests": selectors.portal_plan_requests(customer).filter(
            status=PlanChangeRequest.Status.PENDING
        ),
        "deleted_backups": backup_selectors.deleted_mailbox_backups(customer.pk),
        "domains": selectors.customer_domains(customer),
        "page_url": reverse("portal:overview"),
    }
    return render(request, OVERVIEW, context)


# --- One mailbox --------------------------------------------------------------------------


def _render_mailbox(
    request: AuthenticatedHttpRequest,
    mailbox: Mailbox,
    *,
    password_form: MailboxPasswordForm | None = None,
    status: int = 200,
) -> HttpResponse:
    customer = _customer(request)
    context = {
        **usage_context(request, mailbox, "portal"),
        "customer": customer,
        "password_form": password_form or MailboxPasswordForm(),
        "plan_requests": selectors.portal_plan_requests(customer).filter(mailbox=mailbox)[:10],
        "trail": selectors.portal_mailbox_activity(customer, mailbox).select_related("actor")[:20],
        # The backups app's own reads; its pages (restore, download) check access themselves.
        "backups": backup_selectors.mailbox_overview(mailbox),
    }
    return render(request, MAILBOX, context, status=status)


@customer_required
def mailbox_detail(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """The page; for htmx its usage block, or with ``part=card`` the overview's card."""
    mailbox = _get_mailbox(request, mailbox_id)
    if request.htmx:
        if request.GET.get("part") == "card":
            return render(request, f"{OVERVIEW}#mailbox-card", {"mailbox": mailbox})
        context = usage_context(request, mailbox, "portal")
        return render(request, "_usage.html#usage-block", context)
    return _render_mailbox(request, mailbox)


@customer_required
@require_POST
def mailbox_refresh(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """Measure now, at most once a minute per mailbox (``request_refresh`` rate-limits)."""
    mailbox = _get_mailbox(request, mailbox_id)
    claimed = services.mailbox_request_refresh(mailbox=mailbox, **_by(request))
    level, text = refresh_message(claimed)
    from_card = request.POST.get("part") == "card"
    if request.htmx:
        mailbox.refresh_from_db()
        notice = {"refresh_message": text, "refresh_message_level": level}
        if from_card:
            return render(request, f"{OVERVIEW}#mailbox-card", {"mailbox": mailbox, **notice})
        context = {**usage_context(request, mailbox, "portal"), **notice}
        return render(request, "_usage.html#usage-block", context)
    messages.add_message(request, messages.SUCCESS if claimed else messages.WARNING, text)
    if from_card:
        return redirect("portal:overview")
    return redirect("portal:mailbox_detail", mailbox.pk)


@customer_required
@require_POST
def mailbox_password(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """A new password for one mailbox; Dovecot reads it on the very next login."""
    mailbox = _get_mailbox(request, mailbox_id)
    form = MailboxPasswordForm(request.POST, user=request.user, ip=client_ip(request))
    success = False
    if form.is_valid():
        try:
            services.mailbox_set_password(
                mailbox=mailbox, password=form.cleaned_data["password"], **_by(request)
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            success = True
    text = _(
        "The password of %(address)s is changed. Use the new one in your mail programs now."
    ) % {"address": mailbox.display_address}
    if request.htmx:
        context = {
            "mailbox": mailbox,
            "password_form": MailboxPasswordForm() if success else form,
            "password_notice": text if success else "",
        }
        status = 200 if success else HTMX_FORM_ERRORS
        return render(request, f"{MAILBOX}#password-form", context, status=status)
    if success:
        messages.success(request, text)
        return redirect("portal:mailbox_detail", mailbox.pk)
    return _render_mailbox(request, mailbox, password_form=form, status=400)


@customer_required
@require_http_methods(["GET", "POST"])
def mailbox_plan(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """Compare plans and ask for another one (applied at once where self-service is on)."""
    mailbox = _get_mailbox(request, mailbox_id)
    status = 200
    if request.method == "POST":
        form = PlanRequestForm(request.POST, mailbox=mailbox)
        if form.is_valid():
            try:
                plan_request = plan_changes.plan_change_request(
                    mailbox=mailbox,
                    plan=form.cleaned_data["plan"],
                    protocol=form.cleaned_data["protocol"] or None,
                    note=form.cleaned_data["note"],
                    **_by(request),
                )
            except ValidationError as exc:
                form.add_service_error(exc)
            else:
                if plan_request.status == PlanChangeRequest.Status.APPLIED:
                    text = _("Done: %(address)s is now on “%(plan)s”.")
                else:
                    text = _(
                        "Thank you: we have your request to move %(address)s to “%(plan)s” and "
                        "will answer it soon."
                    )
                messages.success(
                    request,
                    text % {"address": mailbox.display_address, "plan": plan_request.plan.name},
                )
                return redirect("portal:mailbox_detail", mailbox.pk)
        status = 400
    else:
        form = PlanRequestForm(initial={"protocol": ""}, mailbox=mailbox)
    customer = _customer(request)
    context = {
        "mailbox": mailbox,
        "customer": customer,
        "form": form,
        "plans": form.fields["plan"].queryset,  # type: ignore[attr-defined]
        "pending": selectors.portal_plan_requests(customer)
        .filter(mailbox=mailbox, status=PlanChangeRequest.Status.PENDING)
        .first(),
        "self_service": [
            plan.pk
            for plan in form.fields["plan"].queryset  # type: ignore[attr-defined]
            if plan_changes.self_service_allowed(mailbox, plan)
        ],
    }
    return render(request, "portal/mailbox_plan.html", context, status=status)


@customer_required
def mailbox_devices(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """Set up your devices: the settings in plain words, the profile, and a QR code whose
    link (signed, expiring) lets a phone fetch the profile without logging in here."""
    mailbox = _get_mailbox(request, mailbox_id)
    # Built from SITE_URL like the links in emails: the phone must reach the public address.
    link = settings.SITE_URL.rstrip("/") + reverse(
        "autoconfig:profile_link", args=[profiles.link_token(mailbox)]
    )
    # segno draws the QR code as inline SVG: no image library, no request to anyone else.
    qr = segno.make(link, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff")
    context = {
        "mailbox": mailbox,
        "client": client_settings.for_mailbox(mailbox),
        "profile_link": link,
        "qr_svg": mark_safe(qr),  # noqa: S308 - segno's own SVG
        "link_minutes": max(1, settings.POSTAMT_PROFILE_LINK_MAX_AGE // 60),
    }
    return render(request, "portal/mailbox_devices.html", context)


@customer_required
def domain_dns(request: AuthenticatedHttpRequest, domain_id: int) -> HttpResponse:
    """The DNS records that let mail programs find their settings; checked on request."""
    domain = get_object_or_404(selectors.customer_domains(_customer(request)), pk=domain_id)
    return render(request, "portal/domain_dns.html", dns_context(request, domain))


@customer_required
def mailbox_profile(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """The Apple configuration profile of one mailbox (iPhone, iPad, Mac)."""
    return profile_response(_get_mailbox(request, mailbox_id))


@customer_required
@require_POST
def plan_request_cancel(request: AuthenticatedHttpRequest, request_id: int) -> HttpResponse:
    plan_request = _get_plan_request(request, request_id)
    try:
        plan_changes.plan_change_cancel(plan_request=plan_request, **_by(request))
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, _("Your request is withdrawn."))
    return redirect("portal:mailbox_detail", plan_request.mailbox_id)


@customer_required
def mailbox_usage_csv(request: AuthenticatedHttpRequest, mailbox_id: int) -> HttpResponse:
    """The measured history as CSV, for the customer's own records or spreadsheets."""
    mailbox = _get_mailbox(request, mailbox_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"usage-{mailbox.address.replace('@', '_at_')}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(["time_utc", "used_bytes", "messages", "quota_bytes"])
    for sample in mailbox.samples.order_by("taken_at").values_list(
        "taken_at", "used_bytes", "message_count"
    ):
        taken_at, used, count = sample
        writer.writerow([taken_at.astimezone(UTC).isoformat(), used, count, mailbox.quota_bytes])
    return response


# --- Customer-wide pages ------------------------------------------------------------------


@customer_required
@require_http_methods(["GET", "POST"])
def notification_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    customer = _customer(request)
    status = 200
    notice = ""
    if request.method == "POST":
        form = NotificationSettingsForm(request.POST)
        if form.is_valid():
            try:
                customer = services.customer_update_notifications(
                    customer=customer, **form.cleaned_data, **_by(request)
                )
            except ValidationError as exc:
                form.add_service_error(exc)
            else:
                notice = _("Your settings are saved.")
                if not request.htmx:
                    messages.success(request, notice)
                    return redirect("portal:settings")
        if notice == "":
            status = 400
    else:
        form = NotificationSettingsForm(
            initial={
                "contact_email": customer.contact_email,
                "language": customer.language,
                "only_full_warnings": customer.only_full_warnings,
                "copy_warnings_to_mailbox": customer.copy_warnings_to_mailbox,
            }
        )
    context = {
        "customer": customer,
        "form": form,
        "notice": notice,
        "users": selectors.customer_users(customer),
    }
    if request.htmx:
        status = HTMX_FORM_ERRORS if status == 400 else status
        return render(request, "portal/settings.html#settings-form", context, status=status)
    return render(request, "portal/settings.html", context, status=status)


@customer_required
@require_http_methods(["GET", "POST"])
def activity(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Everything done to this customer's account and mailboxes, staff access included; and
    where the customer lets support look into its backups for a while, or stops it, next to
    the list that shows every use of that permission."""
    customer = _customer(request)
    form = SupportAccessForm()
    status = 200
    if request.method == "POST":
        if "revoke" in request.POST:
            if account_services.support_access_revoke(customer=customer, **_by(request)):
                messages.success(request, _("Support can no longer look into your backups."))
            return redirect("portal:activity")
        form = SupportAccessForm(request.POST)
        if form.is_valid():
            try:
                grant = account_services.support_access_grant(
                    customer=customer, hours=form.cleaned_data["hours"], **_by(request)
                )
            except ValidationError as exc:
                form.add_service_error(exc)
            else:
                until = date_format(timezone.localtime(grant.expires_at), "SHORT_DATETIME_FORMAT")
                messages.success(
                    request,
                    _("Until %(time)s, support may look into your backups.") % {"time": until},
                )
                return redirect("portal:activity")
        status = 400
    entries = selectors.portal_activity(customer).select_related("actor")
    page = Paginator(entries, ACTIVITY_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "customer": customer,
        "page": page,
        "entries": page,
        "show_target": True,
        "grant": account_selectors.active_support_grant(customer.pk),
        "grant_form": form,
    }
    return render(request, "portal/activity.html", context, status=status)
