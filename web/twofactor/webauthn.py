"""Security keys through django-otp-webauthn's views, for staff only, with the audit log.

Its views do the WebAuthn ceremonies; these subclasses refuse anyone but staff, write the
enrolment to the audit log and keep the rule that a user with a second factor must have
passed it before adding another (the library's own check, kept)."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _
from django.views.i18n import JavaScriptCatalog
from django_otp_webauthn import exceptions
from django_otp_webauthn.models import WebAuthnCredential
from django_otp_webauthn.views import (
    BeginCredentialAuthenticationView,
    BeginCredentialRegistrationView,
    CompleteCredentialAuthenticationView,
    CompleteCredentialRegistrationView,
)

from . import services


class StaffOnly(exceptions.OTPWebAuthnApiError):
    status_code = 403
    default_detail = _("Only staff accounts use security keys.")
    default_code = "staff_only"


class BeginRegistration(BeginCredentialRegistrationView):
    def check_can_register(self) -> None:
        if not self.request.user.is_staff:
            raise StaffOnly()


class CompleteRegistration(CompleteCredentialRegistrationView):
    def check_can_register(self) -> None:
        if not self.request.user.is_staff:
            raise StaffOnly()

    def post(self, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(*args, **kwargs)
        if response.status_code == 200:
            device = WebAuthnCredential.objects.get(pk=json.loads(response.content)["id"])
            services.webauthn_enrolled(request=self.request, device=device)
        return response


# The names the library's scripts and template tags look up, under its namespace.
urlpatterns: list[URLPattern] = [
    path(
        "registration/begin/",
        BeginRegistration.as_view(),
        name="credential-registration-begin",
    ),
    path(
        "registration/complete/",
        CompleteRegistration.as_view(),
        name="credential-registration-complete",
    ),
    # A second factor for the logged-in user only: passwordless login is off in settings.
    path(
        "authentication/begin/",
        BeginCredentialAuthenticationView.as_view(),
        name="credential-authentication-begin",
    ),
    path(
        "authentication/complete/",
        CompleteCredentialAuthenticationView.as_view(),
        name="credential-authentication-complete",
    ),
    path(
        "jsi18n/",
        JavaScriptCatalog.as_view(packages=["django_otp_webauthn"]),
        name="js-i18n-catalog",
    ),
]
