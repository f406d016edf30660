"""The second step of a staff login, setting up a second factor, the recovery codes and the
list of one's devices (/accounts/two-factor/...).

Only staff have these pages: a customer gets a 404, as on every staff page. Pages that show a
secret (the app's key, the recovery codes) are never cached.
"""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import segno
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django_otp import devices_for_user
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from accounts import throttle
from web.access import second_factor_passed, staff_required
from web.client import client_ip
from web.forms import UNAVAILABLE
from web.http import AuthenticatedHttpRequest

from . import services
from .forms import CodeForm

# The recovery codes just made, until their owner says they are kept (shown once).
NEW_CODES_SESSION_KEY = "twofactor_new_codes"


def _next_url(request: HttpRequest) -> str:
    """Where the staff member was going, if it is a page of this site; else the dashboard."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("staff:dashboard")


def _with_next(name: str, request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next")
    url = reverse(name)
    if target:
        url += "?" + urlencode({"next": target})
    return url


def _staff_only(request: AuthenticatedHttpRequest) -> None:
    if not request.user.is_staff:
        raise Http404


def _throttle_key(request: AuthenticatedHttpRequest) -> str:
    # Counted with the login failures' machinery, per account and client address; the
    # client address's own counter is the one failed passwords add to as well.
    return f"second-factor:{request.user.pk}"


def _refusal(request: AuthenticatedHttpRequest) -> tuple[str, int] | None:
    """Why this attempt is not even tried, with its status: throttled, or no counters."""
    try:
        if throttle.is_blocked(client_ip(request), _throttle_key(request)):
            message = _("Too many wrong codes. Please wait %(minutes)d minutes and try again.")
            return message % {"minutes": throttle.window_minutes()}, 429
    except throttle.Unavailable:
        return str(UNAVAILABLE), 503
    return None


def _check_code(request: AuthenticatedHttpRequest, form: CodeForm) -> int | None:
    """None when the code passed (the session is verified), else the page's status."""
    user = request.user
    refusal = _refusal(request)
    if refusal is not None:
        form.is_valid()
        form.add_error(None, refusal[0])
        return refusal[1]
    if not form.is_valid():
        return 400
    device = services.verify(request=request, user=user, token=form.cleaned_data["code"])
    if device is not None:
        if services.device_kind(device) == "recovery":
            left = services.recovery_codes_left(user)
            messages.warning(
                request,
                ngettext(
                    "You used a recovery code: %(count)d is left. Make new ones under Security.",
                    "You used a recovery code: %(count)d are left. Make new ones under Security.",
                    left,
                )
                % {"count": left},
            )
        return None
    try:
        throttle.record_failure(client_ip(request), _throttle_key(request))
    except throttle.Unavailable:
        pass  # the code was wrong either way; the next try checks the counters again
    form.add_error("code", _("This code is not right, or it was used already."))
    return 400


@never_cache
@login_required
def verify(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """The second step after the password: a code from the app, a recovery code, or a key."""
    _staff_only(request)
    user = request.user
    if second_factor_passed(request):
        return redirect(_next_url(request))
    if not services.has_second_factor(user):
        return redirect(_with_next("accounts:two_factor_setup", request))
    form = CodeForm(
        request.POST or None,
        help_text=_("The six digits your authenticator app shows, or one of your recovery codes."),
    )
    status: int | None = 200
    if request.method == "POST":
        status = _check_code(request, form)
        if status is None:
            return redirect(_next_url(request))
    return render(
        request,
        "registration/two_factor_verify.html",
        {
            "form": form,
            "next": request.POST.get("next") or request.GET.get("next", ""),
            "has_key": WebAuthnCredential.objects.filter(user=user, confirmed=True).exists(),
        },
        status=status,
    )


def _qr_svg(url: str) -> str:
    # segno draws the QR code as inline SVG: no image library, no request to anyone else.
    return segno.make(url, error="m").svg_inline(scale=5, border=2, dark="#000", light="#fff")


def _grouped_secret(device: TOTPDevice) -> str:
    secret = base64.b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@never_cache
@login_required
def setup(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """Set up an authenticator app (or a security key): forced at a staff user's first login,
    and the way to add another later. Once one exists, only a verified session may add more:
    a password alone must never be enough to bring one's own device."""
    _staff_only(request)
    user = request.user
    first = not services.has_second_factor(user)
    if not first and not second_factor_passed(request):
        return redirect(_with_next("accounts:two_factor", request))
    device = services.pending_totp_device(user)
    form = CodeForm(
        request.POST or None, help_text=_("The six digits the app shows after you added it.")
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            if services.totp_confirm(
                request=request, device=device, token=form.cleaned_data["code"]
            ):
                return _after_enrolment(request, _("The authenticator app is set up."))
            form.add_error("code", _("This code is not right. Check the time on your phone."))
    return render(
        request,
        "registration/two_factor_setup.html",
        {
            "form": form,
            "first": first,
            "qr_svg": mark_safe(_qr_svg(device.config_url)),  # noqa: S308 - segno's own SVG
            "secret": _grouped_secret(device),
            "next": request.POST.get("next") or request.GET.get("next", ""),
        },
        status=status,
    )


def _after_enrolment(request: AuthenticatedHttpRequest, done: str) -> HttpResponse:
    """Recovery codes come with the first second factor; later ones just go to the list."""
    if services.recovery_codes_left(request.user) == 0:
        codes = services.recovery_codes_create(request=request, user=request.user)
        request.session[NEW_CODES_SESSION_KEY] = codes
        return redirect(_with_next("accounts:two_factor_recovery_codes", request))
    messages.success(request, done)
    return redirect("accounts:two_factor_devices")


@never_cache
@login_required
def enrolled(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """Where the page goes after a security key was registered in the browser."""
    _staff_only(request)
    if not second_factor_passed(request):
        return redirect(_with_next("accounts:two_factor", request))
    return _after_enrolment(request, _("The security key is set up."))


@never_cache
@staff_required
def recovery_codes(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """The codes just made, shown once (and as a text file to keep); "new codes" replaces
    every earlier one."""
    if request.method == "POST" and "new" in request.POST:
        new_codes = services.recovery_codes_create(request=request, user=request.user)
        request.session[NEW_CODES_SESSION_KEY] = new_codes
        return redirect("accounts:two_factor_recovery_codes")
    codes: list[str] = request.session.get(NEW_CODES_SESSION_KEY) or []
    if request.method == "POST":  # "I have kept them"
        request.session.pop(NEW_CODES_SESSION_KEY, None)
        return redirect(_next_url(request))
    if not codes:
        messages.info(
            request, _("Recovery codes are shown only once. Make new ones if you lost them.")
        )
        return redirect("accounts:two_factor_devices")
    shown = [services.display_code(code) for code in codes]
    if request.GET.get("download"):
        text = _("Postamt recovery codes for %(user)s (each works once):") % {
            "user": request.user.get_username()
        }
        response = HttpResponse(
            "\n".join([text, "", *shown, ""]), content_type="text/plain; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="postamt-recovery-codes.txt"'
        return response
    return render(
        request,
        "registration/two_factor_recovery_codes.html",
        {"codes": shown, "next": request.GET.get("next", "")},
    )


@never_cache
@staff_required
def devices(request: AuthenticatedHttpRequest) -> HttpResponseBase:
    """One's apps and keys, how many recovery codes are left; remove a device."""
    user = request.user
    if request.method == "POST":
        device = next(
            (d for d in devices_for_user(user) if d.persistent_id == request.POST.get("device")),
            None,
        )
        if device is None:
            raise Http404
        try:
            services.device_remove(request=request, user=user, device=device)
        except services.RemovalRefused as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("%(name)s was removed.") % {"name": device.name})
        return redirect("accounts:two_factor_devices")
    return render(
        request,
        "registration/two_factor_devices.html",
        {
            "devices": [(d, services.device_kind(d)) for d in services.second_factors(user)],
            "codes_left": services.recovery_codes_left(user),
            "current": getattr(getattr(user, "otp_device", None), "persistent_id", None),
        },
    )
