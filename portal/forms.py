"""Forms of the customer portal; the services check the rules."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts import throttle
from accounts.models import User
from mailboxes.models import Mailbox, Plan, Protocol
from mailboxes.selectors import plans_offered_to
from web.forms import PlanChoiceField, ServiceForm


class NotificationSettingsForm(ServiceForm):
    contact_email = forms.EmailField(
        label=_("Contact address for warnings"),
        help_text=_("Where warnings about full mailboxes go; use an address at another provider."),
    )
    language = forms.ChoiceField(
        label=_("Language"),
        choices=settings.LANGUAGES,
        help_text=_(
            "Of the emails and of these pages. The switcher at the top changes the pages in "
            "this browser only."
        ),
    )
    only_full_warnings = forms.BooleanField(
        label=_("Only tell me when a mailbox is full"),
        required=False,
        help_text=_(
            "Skip the early warnings at 80 %, 90 % and 95 %. The 100 % warning is always sent."
        ),
    )
    copy_warnings_to_mailbox = forms.BooleanField(
        label=_("Also put each warning into the mailbox concerned"),
        required=False,
        help_text=_("So that whoever reads that mailbox sees it too, while it still has room."),
    )


class MailboxPasswordForm(ServiceForm):
    """A customer's new password for one mailbox, typed twice: nobody can show it to them again.

    Bound forms also want the password of the person logged in: a session left open on a
    shared computer, or a stolen session cookie, must not be enough to take a mailbox over.
    Wrong answers count as failed logins (``accounts.throttle``), so the field cannot be used
    to guess the login password either.
    """

    password = forms.CharField(
        label=_("New password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password_again = forms.CharField(
        label=_("New password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    current_password = forms.CharField(
        label=_("Your own password"),
        help_text=_("The one you log in here with: to confirm it is you."),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(
        self, *args: Any, user: User | None = None, ip: str | None = None, **kwargs: Any
    ) -> None:
        self.user, self.ip = user, ip
        super().__init__(*args, **kwargs)
        self.fields["password"].help_text = gettext(
            "At least %(min)d characters, without spaces, not the mailbox name, not a common "
            "password and not only digits. It works at once in every mail program."
        ) % {"min": settings.MAILBOX_MIN_PASSWORD_LENGTH}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (
            data.get("password")
            and data.get("password_again") is not None
            and data["password"] != data["password_again"]
        ):
            self.add_error("password_again", gettext("The two passwords are not the same."))
        return data

    def clean_current_password(self) -> str:
        value: str = self.cleaned_data["current_password"]
        assert self.user is not None, "a bound form needs the user"
        username = self.user.get_username()
        try:
            if throttle.is_blocked(self.ip, username):
                raise ValidationError(
                    gettext("Too many wrong passwords. Please wait %(minutes)d minutes.")
                    % {"minutes": throttle.window_minutes()},
                    code="throttled",
                )
            if not self.user.check_password(value):
                throttle.record_failure(self.ip, username)
                raise ValidationError(
                    gettext("That is not the password of your login."), code="wrong"
                )
        except throttle.Unavailable as exc:
            raise ValidationError(
                gettext(
                    "Your password cannot be checked for a moment (a service it needs is "
                    "down). Please try again in a few minutes."
                ),
                code="unavailable",
            ) from exc
        return value


class PlanRequestForm(ServiceForm):
    """Only the plans offered in the portal, and the mailbox's own (for another protocol)."""

    plan = PlanChoiceField(
        label=_("Plan"), queryset=Plan.objects.none(), empty_label=_("Choose a plan")
    )
    protocol = forms.ChoiceField(
        label=_("Protocol"),
        choices=[("", _("Keep the current one if the plan has it")), *Protocol.choices],
        required=False,
    )
    note = forms.CharField(
        label=_("Message to us (optional)"),
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args: Any, mailbox: Mailbox, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = plans_offered_to(mailbox)  # type: ignore[attr-defined]


class SupportAccessForm(ServiceForm):
    """How long support may look into the customer's backups (the service knows the choices)."""

    hours = forms.TypedChoiceField(
        label=_("Allow support to look into my backups for"),
        coerce=int,
        choices=[(1, _("1 hour")), (24, _("24 hours")), (7 * 24, _("7 days"))],
        initial=1,
    )
