"""Staff pages for REST API keys: every key, a new one (its token shown once), revoking."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts import api_keys
from accounts.models import ApiKey, Customer
from web.access import staff_required
from web.api_keys import ApiKeyForm, token_message
from web.client import client_ip
from web.http import AuthenticatedHttpRequest


def _render(
    request: AuthenticatedHttpRequest, form: ApiKeyForm | None = None, status: int = 200
) -> HttpResponse:
    keys = ApiKey.objects.select_related("user__customer").order_by("-created_at", "-id")
    context = {"keys": keys[:500], "form": form or ApiKeyForm()}
    return render(request, "staff/api_keys.html", context, status=status)


@staff_required
def api_key_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _render(request)


@staff_required
@require_POST
def api_key_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        customer = None
        if form.cleaned_data.get("customer"):
            customer = Customer.objects.filter(pk=form.cleaned_data["customer"]).first()
            if customer is None:
                form.add_error("customer", _("There is no customer with this id."))
                return _render(request, form, status=400)
        try:
            new = api_keys.api_key_create(
                **form.service_arguments(),
                customer=customer,
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, token_message(new.token))
            return redirect("staff:api_keys")
    return _render(request, form, status=400)


@staff_required
@require_POST
def api_key_revoke(request: AuthenticatedHttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.select_related("user__customer"), pk=key_id)
    if api_keys.api_key_revoke(key=key, actor=request.user, ip=client_ip(request)):
        messages.success(request, _("The key “%(name)s” no longer works.") % {"name": key.name})
    return redirect("staff:api_keys")
