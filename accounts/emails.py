"""The email that lets a new customer user choose a password, in the customer's language."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from provider.emails import render_email

from .models import User


def set_password_url(user: User) -> str:
    """Django's password-reset link: one use, invalid once a password is set or it expires.

    It is built from ``SITE_URL`` because the email is sent by a worker, with no request
    whose host could be used.
    """
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("accounts:password_reset_confirm", args=[uid, token])
    return settings.SITE_URL.rstrip("/") + path


def build_invite_email(user: User) -> EmailMultiAlternatives:
    language = user.customer.language if user.customer else settings.LANGUAGE_CODE
    context = {
        "user": user,
        "customer": user.customer,
        "url": set_password_url(user),
        "login_url": settings.SITE_URL.rstrip("/") + reverse("accounts:login"),
        "valid_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
    }
    return render_email("user_invite", context, to=[user.email], language=language)


def send_invite(user_id: int) -> bool:
    """Send the set-password email, unless the user is gone, disabled or has a password."""
    user = User.objects.select_related("customer").filter(pk=user_id).first()
    if user is None or not user.is_active or user.has_usable_password() or not user.email:
        return False
    build_invite_email(user).send()
    return True
