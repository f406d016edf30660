"""Second factors in tests: staff pages want a verified session (web.access.staff_required).

``client.force_login(staff_user)`` marks the session verified too (tests/conftest.py patches
it, so every staff test written with force_login keeps working); a test of the second step
itself uses ``login_unverified``. Production code has no such shortcut: this is test-only.
"""

from __future__ import annotations

from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User

# Django's own force_login, before tests/conftest.py wraps it.
_django_force_login = Client.force_login


def totp_device(user: User) -> TOTPDevice:
    """The user's confirmed authenticator app, made if there is none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Test app", confirmed=True)
    return device


def current_code(device: TOTPDevice) -> str:
    """The code the app shows now (django-otp's own TOTP)."""
    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    return f"{code:0{device.digits}d}"


def verify_session(client: Client, user: User) -> TOTPDevice:
    """Mark the client's session as having passed the second factor, as django_otp.login does."""
    device = totp_device(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


def force_login(client: Client, user: User, backend: str | None = None) -> None:
    _django_force_login(client, user, backend)
    if user.is_staff:
        verify_session(client, user)


def login_unverified(client: Client, user: User) -> None:
    """Logged in with the password only: the second step still ahead."""
    _django_force_login(client, user)
