"""Second-factor devices of staff users: enrol, verify, remove, reset. Every enrolment,
removal, reset and use of a recovery code is written to the audit log.

The devices are django-otp's: ``TOTPDevice`` (authenticator apps), ``StaticDevice`` (one set
of single-use recovery codes per user) and django-otp-webauthn's ``WebAuthnCredential``
(security keys). A session counts as verified once ``django_otp.login`` has stored the device
that passed (``request.user.is_verified()``, through ``OTPMiddleware``).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django_otp import devices_for_user
from django_otp import login as otp_login
from django_otp import verify_token as otp_verify_token
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from accounts import audit
from accounts.models import User
from web.client import client_ip

RECOVERY_DEVICE_NAME = "recovery"
TOTP_DIGITS = 6  # django-otp's default; recovery codes are 8 letters and digits


def device_kind(device: Device) -> str:
    if isinstance(device, TOTPDevice):
        return "totp"
    if isinstance(device, WebAuthnCredential):
        return "webauthn"
    if isinstance(device, StaticDevice):
        return "recovery"
    return type(device).__name__.lower()


def second_factors(user: User) -> list[Device]:
    """The confirmed devices that can verify a login: apps and keys, not the recovery codes
    (those are only the way back in, and never enough on their own to enrol)."""
    return [d for d in devices_for_user(user) if not isinstance(d, StaticDevice)]


def has_second_factor(user: User) -> bool:
    return bool(second_factors(user))


def recovery_codes_left(user: User) -> int:
    return StaticToken.objects.filter(
        device__user=user, device__confirmed=True, device__name=RECOVERY_DEVICE_NAME
    ).count()


def pending_totp_device(user: User) -> TOTPDevice:
    """The authenticator app being set up: one unconfirmed device per user, kept while the
    page is reloaded (the QR code stays the same) until a code confirms it."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=_("Authenticator app"), confirmed=False)
    return device


def _record_enrolment(request: HttpRequest, user: User, device: Device) -> None:
    audit.record(
        "twofactor.enrol",
        user,
        actor=user,
        ip=client_ip(request),
        device=device_kind(device),
        name=device.name,
    )


@transaction.atomic
def totp_confirm(*, request: HttpRequest, device: TOTPDevice, token: str) -> bool:
    """Confirm an authenticator app with a code it shows; the session is then verified."""
    device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
    if device.confirmed or not device.verify_token(token):
        return False
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    _record_enrolment(request, device.user, device)
    otp_login(request, device)
    return True


def webauthn_enrolled(*, request: HttpRequest, device: WebAuthnCredential) -> None:
    """A security key was registered (django-otp-webauthn's view saved it)."""
    _record_enrolment(request, device.user, device)


@transaction.atomic
def recovery_codes_create(*, request: HttpRequest, user: User) -> list[str]:
    """A fresh set of recovery codes, replacing any earlier set; returned once, to be shown."""
    device, _created = StaticDevice.objects.get_or_create(
        user=user, name=RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [new_recovery_code() for _ in range(settings.POSTAMT_RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    audit.record(
        "twofactor.recovery_codes",
        user,
        actor=user,
        ip=client_ip(request),
        count=len(codes),
    )
    return codes


def new_recovery_code() -> str:
    """16 base32 characters (80 random bits; django-otp's own are 8 characters)."""
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()


def display_code(code: str) -> str:
    """``abcd-efgh-ijkl-mnop``: easier to copy by hand; the dashes are ignored when typed."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalize(token: str) -> str:
    """Codes as people type them: spaces and dashes do not matter, nor does case."""
    return "".join(token.split()).replace("-", "").lower()


def verify(*, request: HttpRequest, user: User, token: str) -> Device | None:
    """Check a code from an authenticator app or a recovery code; on success mark the
    session verified. django-otp slows repeated failures per device (each failure doubles
    the wait); callers throttle per account and address too."""
    token = normalize(token)
    if not token:
        return None
    if token.isdigit() and len(token) == TOTP_DIGITS:
        for device in TOTPDevice.objects.filter(user=user, confirmed=True):
            # verify_token locks the device row: a code is accepted once, even when two
            # requests bring it at the same time.
            if otp_verify_token(user, device.persistent_id, token) is not None:
                otp_login(request, device)
                return device
        return None
    for static in StaticDevice.objects.filter(user=user, confirmed=True, name=RECOVERY_DEVICE_NAME):
        with transaction.atomic():
            if otp_verify_token(user, static.persistent_id, token) is None:
                continue
            left = recovery_codes_left(user)
            audit.record(
                "twofactor.recovery_code_used",
                user,
                actor=user,
                ip=client_ip(request),
                left=left,
            )
        otp_login(request, static)
        return static
    return None


@dataclass(frozen=True)
class RemovalRefused(Exception):
    message: str


@transaction.atomic
def device_remove(*, request: HttpRequest, user: User, device: Device) -> None:
    """Remove an app or a key of the user's own. The last one stays: without it the account
    would have to be set up again at the next login, by whoever knows the password."""
    if device.user_id != user.pk or isinstance(device, StaticDevice):
        raise RemovalRefused(_("This is not one of your devices."))
    if len(second_factors(user)) <= 1:
        raise RemovalRefused(
            _("This is your only second factor. Add another before you remove it.")
        )
    audit.record(
        "twofactor.remove",
        user,
        actor=user,
        ip=client_ip(request),
        device=device_kind(device),
        name=device.name,
    )
    device.delete()


@transaction.atomic
def reset(*, user: User, actor: audit.Actor) -> int:
    """Delete every second factor and recovery code of a user (``manage.py staff_2fa_reset``):
    their next login sets up a new one. Returns how many devices were removed."""
    removed = 0
    for model in (TOTPDevice, StaticDevice, WebAuthnCredential):
        devices = model.objects.filter(user=user)
        removed += devices.count()
        devices.delete()
    audit.record("twofactor.reset", user, actor=actor, removed=removed)
    return removed
