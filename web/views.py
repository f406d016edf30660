"""The pages every visitor shares: the front page, and what Django's login views need more of."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordResetForm
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.template.response import SimpleTemplateResponse
from django.utils import translation
from django.utils.translation import gettext as _

from accounts import throttle

from .client import client_ip
from .http import AuthenticatedHttpRequest


@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Each audience's own front door; a login with neither role gets a page that says so."""
    if request.user.is_staff:
        return redirect("staff:dashboard")
    if request.user.customer_id is not None:
        return redirect("portal:overview")
    return render(request, "home.html")


@login_required
def moved_backup_page(request: AuthenticatedHttpRequest, rest: str) -> HttpResponse:
    """A bookmark from before /backups/ moved under each audience's own pages."""
    door = "/staff/backups/" if request.user.is_staff else "/portal/backups/"
    query = request.META.get("QUERY_STRING")
    return HttpResponsePermanentRedirect(door + rest + (f"?{query}" if query else ""))


class PasswordResetView(auth_views.PasswordResetView):
    """Django's "forgot your password?", with a limit on the emails it sends per address
    and per client: every request lands in somebody's inbox."""

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        ip = client_ip(self.request)
        email = form.cleaned_data["email"]
        try:
            allowed = throttle.reset_allowed(ip, email)
            if allowed:
                throttle.record_reset(ip, email)
        except throttle.Unavailable:
            form.add_error(None, _("No link can be sent for a moment. Please try again later."))
            return self.render_to_response(self.get_context_data(form=form), status=503)
        if not allowed:
            form.add_error(
                None,
                _("Too many links were asked for. Please wait %(minutes)d minutes and try again.")
                % {"minutes": throttle.reset_window_minutes()},
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_valid(form)


class ChoosePasswordView(auth_views.PasswordResetConfirmView):
    """The page an invitation or reset link opens, in the customer's language from the start.

    Nobody is logged in yet, so ``CustomerLanguageMiddleware`` cannot know whose page this is;
    the link names the user. The switcher's choice, as everywhere, wins.
    """

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = self.get_user(kwargs["uidb64"])
        language = user.customer.language if user is not None and user.customer else None
        if (
            language not in dict(settings.LANGUAGES)
            or settings.LANGUAGE_COOKIE_NAME in request.COOKIES
        ):
            return super().dispatch(request, *args, **kwargs)
        with translation.override(language):
            request.LANGUAGE_CODE = language
            response = super().dispatch(request, *args, **kwargs)
            if isinstance(response, SimpleTemplateResponse):
                response.render()  # while the language is still the customer's
            return response
