"""Log in with an email address (customers) or a user name (staff)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from .models import User


class EmailOrUsernameBackend(ModelBackend):
    """Django's backend, but the login name may also be the user's email, in any case.

    Customer users are created with their address as user name; staff keep short names and
    may use either. An address shared by several users logs nobody in by email: guessing
    which one was meant would be a way into the wrong account.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if not username or password is None:
            return None
        username = username.strip()
        user = User.objects.filter(username=username).first()
        if user is None and "@" in username:
            matches = list(User.objects.filter(email__iexact=username)[:2])
            user = matches[0] if len(matches) == 1 else None
        if user is None:
            # Spend the time a real check takes, so response times don't reveal who exists.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
