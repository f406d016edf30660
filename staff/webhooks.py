"""Staff pages of webhooks: the endpoints, their deliveries, and the buttons that test an
endpoint and send a delivery again. Admins change them; every staff role reads them (the
services refuse the others)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from web.access import staff_required
from web.client import client_ip
from web.http import AuthenticatedHttpRequest
from webhooks import selectors, services
from webhooks.models import WebhookDelivery, WebhookEndpoint

from .forms import WebhookEndpointForm

DELIVERIES_PAGE_SIZE = 50
RECENT_DELIVERIES = 20
# How long the page waits, updating itself, for a new delivery's first answer.
POLL_FOR = timedelta(minutes=1)


def _render_list(
    request: AuthenticatedHttpRequest, form: WebhookEndpointForm | None = None, status: int = 200
) -> HttpResponse:
    context = {
        "endpoints": selectors.endpoint_list(),
        "deliveries": selectors.recent_deliveries()[:RECENT_DELIVERIES],
        "form": form or WebhookEndpointForm(),
        "now": timezone.now(),
    }
    return render(request, "staff/webhook_list.html", context, status=status)


@staff_required
def webhook_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _render_list(request)


@staff_required
@require_POST
def webhook_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = WebhookEndpointForm(request.POST)
    if form.is_valid():
        try:
            new = services.endpoint_create(
                url=form.cleaned_data["url"],
                description=form.cleaned_data["description"],
                events=form.cleaned_data["events"],
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(
                request,
                format_html(
                    '{} {} <code class="password">{}</code>',
                    _("Endpoint %(url)s added.") % {"url": new.endpoint.url},
                    _("Its signing secret is shown only this once:"),
                    new.secret,
                ),
            )
            return redirect("staff:webhook_detail", new.endpoint.pk)
    return _render_list(request, form, status=400)


@staff_required
def webhook_detail(request: AuthenticatedHttpRequest, endpoint_id: int) -> HttpResponse:
    """The page; for htmx only its deliveries, polled while one made just now (a test event,
    a resend) waits for its first answer."""
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
    page = Paginator(selectors.endpoint_deliveries(endpoint), DELIVERIES_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    now = timezone.now()
    # Until its first answer: a delivery a worker is sending right now (attempts 1, no answer
    # recorded yet) must keep the page polling too.
    polling = any(
        d.status == WebhookDelivery.Status.PENDING
        and d.last_status_code is None
        and not d.last_error
        and d.created_at > now - POLL_FOR
        for d in page
    )
    context = {
        "endpoint": endpoint,
        "page": page,
        "deliveries": page,
        "now": now,
        "polling": polling,
    }
    if request.htmx:
        return render(request, "staff/webhook_detail.html#deliveries-section", context)
    return render(request, "staff/webhook_detail.html", context)


@staff_required
@require_POST
def webhook_active(request: AuthenticatedHttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
    active = request.POST.get("active") == "1"
    services.endpoint_set_active(
        endpoint=endpoint, active=active, actor=request.user, ip=client_ip(request)
    )
    if active:
        messages.success(request, _("Endpoint enabled: events are sent to it again."))
    else:
        messages.success(request, _("Endpoint disabled: nothing is sent to it."))
    return redirect("staff:webhook_detail", endpoint.pk)


@staff_required
@require_POST
def webhook_delete(request: AuthenticatedHttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
    url = endpoint.url
    services.endpoint_delete(endpoint=endpoint, actor=request.user, ip=client_ip(request))
    messages.success(request, _("Endpoint %(url)s deleted.") % {"url": url})
    return redirect("staff:webhook_list")


@staff_required
@require_POST
def webhook_test(request: AuthenticatedHttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=endpoint_id)
    try:
        services.endpoint_test(endpoint=endpoint, actor=request.user, ip=client_ip(request))
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, _("Test event sent; its answer shows below in a moment."))
    return redirect("staff:webhook_detail", endpoint.pk)


@staff_required
@require_POST
def webhook_resend(request: AuthenticatedHttpRequest, delivery_id: int) -> HttpResponse:
    delivery = get_object_or_404(WebhookDelivery.objects.select_related("endpoint"), pk=delivery_id)
    try:
        services.delivery_resend(delivery=delivery, actor=request.user, ip=client_ip(request))
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, _("Sent again as a new delivery of the same event."))
    return redirect("staff:webhook_detail", delivery.endpoint_id)
