"""The email that lets a new customer user choose a password, in the customer's language."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse
from django.utils import timezone
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
    """Send the set-password email once, unless the user is gone, disabled or has a password.

    Claimed with a conditional UPDATE, so the task and the sweeper never both send it; an
    SMTP failure gives the claim back for the retry.
    """
    user = User.objects.select_related("customer").filter(pk=user_id).first()
    if user is None or not user.is_active or user.has_usable_password() or not user.email:
        return False
    if not User.objects.filter(pk=user.pk, invite_sent_at__isnull=True).update(
        invite_sent_at=timezone.now()
    ):
        return False
    try:
        build_invite_email(user).send()
    except Exception:
        User.objects.filter(pk=user.pk).update(invite_sent_at=None)
        raise
    return True


def pending_invites(grace: timedelta = timedelta(minutes=2)) -> list[int]:
    """Invitations never sent (the broker was down when the login was made): the sweeper's."""
    return list(
        User.objects.filter(
            customer__isnull=False,
            is_active=True,
            invite_sent_at__isnull=True,
            date_joined__lt=timezone.now() - grace,
        )
        .exclude(email="")
        .filter(password__startswith=UNUSABLE_PASSWORD_PREFIX)  # no password chosen yet
        .values_list("pk", flat=True)[:500]
    )
