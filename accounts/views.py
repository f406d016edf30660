"""Account views that Django's own need a little more from."""
from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.utils.translation import gettext as _

from . import throttle
from .forms import SetPasswordLinkForm


class PasswordResetView(auth_views.PasswordResetView):
    """Django's "forgot your password?", with a limit on the emails it sends per address
    and per client: every request lands in somebody's inbox."""

    def form_valid(self, form: SetPasswordLinkForm) -> HttpResponse:
        ip = self.request.META.get("REMOTE_ADDR")
        email = form.cleaned_data["email"]
        if not throttle.reset_allowed(ip, email):
            form.add_error(
                None,
                _("Too many links were asked for. Please wait %(minutes)d minutes and try again.")
                % {"minutes": throttle.reset_window_minutes()},
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        throttle.record_reset(ip, email)
        return super().form_valid(form)
