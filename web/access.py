"""Access helpers that every view starts with: one per audience.

A view behind one of them (or ``login_required``) is annotated with
``web.http.AuthenticatedHttpRequest``: the guard is what makes its user a logged-in ``User``."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

View = Callable[..., HttpResponseBase]


def staff_required(view: View) -> View:
    """Let hoster staff through once they passed their second factor; send anonymous users to
    the login page, and staff who only gave their password to the second step (which sends
    those without a second factor on to set one up).

    A logged-in customer gets a 404, not a 403: staff URLs should not even be revealed to exist.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise Http404
        if not second_factor_passed(request):
            return _to_second_factor(request)
        request.current_app = "staff_backups"  # shared pages link within /staff/
        return view(request, *args, **kwargs)

    return wrapper


def second_factor_passed(request: HttpRequest) -> bool:
    """Whether this session passed a second factor (django_otp.login stored the device).

    OTPMiddleware installs ``user.is_verified()``; without it, nobody counts as verified."""
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified and is_verified())


def _to_second_factor(request: HttpRequest) -> HttpResponseBase:
    url = reverse("accounts:two_factor") + "?" + urlencode({"next": request.get_full_path()})
    if getattr(request, "htmx", False):
        # An htmx request would swap the page into a fragment: make the browser go there.
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


def customer_required(view: View) -> View:
    """Let a customer's users through; anonymous users go to the login page.

    Staff get a 404 like anyone else without a customer: the portal shows one customer's
    things, and a staff account belongs to none. Views still load every object through the
    customer (``selectors.portal_*``), so an id from another customer is a 404 too.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if request.user.is_staff or request.user.customer_id is None:
            raise Http404
        request.current_app = "portal_backups"  # shared pages link within /portal/
        return view(request, *args, **kwargs)

    return wrapper
