"""A customer's own REST API keys: list, make (the token shown once), revoke."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts import api_keys
from accounts.models import ApiKey
from web.access import customer_required
from web.api_keys import ApiKeyForm, token_message
from web.client import client_ip
from web.http import AuthenticatedHttpRequest


def _own_keys(request: AuthenticatedHttpRequest) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user__customer=request.user.customer_id).order_by(
        "-created_at", "-id"
    )


@customer_required
@require_http_methods(["GET", "POST"])
def api_key_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None, for_customer=True)
    if request.method == "POST" and form.is_valid():
        try:
            new = api_keys.api_key_create(
                **{**form.service_arguments(), "role": None},
                customer=request.user.customer,
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, token_message(new.token))
            return redirect("portal:api_keys")
    context = {"keys": _own_keys(request), "form": form, "customer": request.user.customer}
    status = 400 if request.method == "POST" else 200
    return render(request, "portal/api_keys.html", context, status=status)


@customer_required
@require_POST
def api_key_revoke(request: AuthenticatedHttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(_own_keys(request).select_related("user__customer"), pk=key_id)
    if api_keys.api_key_revoke(key=key, actor=request.user, ip=client_ip(request)):
        messages.success(request, _("The key “%(name)s” no longer works.") % {"name": key.name})
    return redirect("portal:api_keys")
