"""Forms both audiences use: logging in, choosing a password, and the base class that takes a
service's errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts import throttle
from accounts.models import User
from mailboxes.models import Plan, Protocol
from mailboxes.sizes import parse_size, size_text

from .client import client_ip


class ServiceForm(forms.Form):
    """A form whose input goes to a service function.

    The form checks the shape of the input, the service the rules; the service's errors are keyed
    by its own argument names, which ``service_fields`` maps to this form's field names.
    """

    service_fields: ClassVar[dict[str, str]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # labels sit above their fields: no colon
        super().__init__(*args, **kwargs)

    def add_error(self, field: str | None, error: Any) -> None:
        super().add_error(field, error)
        # Bring the first invalid field into view: the form may sit far down a long page.
        if field in self.fields and not any(
            "autofocus" in f.widget.attrs for f in self.fields.values()
        ):
            self.fields[field].widget.attrs["autofocus"] = True

    def add_service_error(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for key, errors in exc.error_dict.items():
            field = self.service_fields.get(key, key)
            # An error about something this form does not ask for still has to be shown.
            self.add_error(field if field in self.fields else None, errors)


UNAVAILABLE = _(
    "Logging in is not possible for a moment (a service it needs is down). Please try again "
    "in a few minutes."
)


class LoginForm(AuthenticationForm):
    """Django's login form; the name field says that an email address works.

    Repeated failures for one account from one address, or many from one address, lock
    further tries out for a while, so passwords cannot be guessed at speed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_suffix = ""
        self.fields["username"].label = _("Email address or user name")
        self.fields["username"].widget.attrs.update(
            {"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}
        )

    def clean(self) -> dict[str, Any]:
        ip = client_ip(self.request) if self.request else None
        username = self.cleaned_data.get("username") or ""
        try:
            if throttle.is_blocked(ip, username):
                raise ValidationError(
                    _("Too many failed logins. Please wait %(minutes)d minutes and try again.")
                    % {"minutes": throttle.window_minutes()},
                    code="throttled",
                )
            try:
                return super().clean()
            except ValidationError as exc:
                if exc.code == "invalid_login":
                    throttle.record_failure(ip, username)
                raise
        except throttle.Unavailable as exc:
            raise ValidationError(UNAVAILABLE, code="unavailable") from exc


class SetPasswordLinkForm(PasswordResetForm):
    """ "Forgot your password?", also for customer users who never chose one.

    Django leaves out users with an unusable password; ours get one on purpose when staff
    create them, and asking again here is how an expired invitation is replaced. Staff
    accounts without a password stay excluded.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["email"].label = _("Your email address")

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Send the links on ``SITE_URL``, never on the request's Host header: whoever sets
        that header to their own server would otherwise receive the user's link."""
        site = urlsplit(settings.SITE_URL)
        kwargs.update(domain_override=site.netloc, use_https=site.scheme == "https")
        super().save(*args, **kwargs)

    def get_users(self, email: str) -> Iterator[User]:
        for user in User.objects.filter(email__iexact=email, is_active=True):
            if user.email.lower() != email.lower():
                continue
            if user.has_usable_password() or user.customer_id is not None:
                yield user


class ChoosePasswordForm(SetPasswordForm):
    """Django's set-password form with our label style (no colon)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].widget.attrs["autocomplete"] = "new-password"


class PlanChoiceField(forms.ModelChoiceField):
    """Plans named with what tells them apart when choosing: protocols and largest quota."""

    def label_from_instance(self, obj: Plan) -> str:
        return gettext("%(name)s (%(protocols)s, up to %(max)s)") % {
            "name": obj.name,
            "protocols": ", ".join(Protocol(p).label for p in obj.protocols),
            "max": filesizeformat(obj.max_quota_bytes),
        }


class QuotaField(forms.Field):
    """A quota as people write it: ``5G``, ``500M``, ``1.5 GB``; a bare number is megabytes,
    as the field asked for before it took units. Cleans to bytes."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "size": 10, "maxlength": 32})

    def prepare_value(self, value: Any) -> Any:
        """Bytes (the initial value) shown as the size they are, e.g. ``5G`` or ``500M``."""
        return size_text(value) if isinstance(value, int) else value

    def to_python(self, value: Any) -> int | None:
        text = str(value or "").strip()
        if not text:
            return None
        if text.replace(".", "", 1).isdigit():
            text += "M"
        return parse_size(text)
