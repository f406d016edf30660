"""Forms for customers, and the base class that puts service errors onto a form."""
from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _


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


class CustomerForm(ServiceForm):
    name = forms.CharField(label=_("Name"), max_length=200)
    contact_email = forms.EmailField(
        label=_("Contact email"),
        help_text=_("Where notices go; must not be one of the customer's own mailboxes."),
    )
    language = forms.ChoiceField(
        label=_("Language"),
        choices=settings.LANGUAGES,
        help_text=_("The language of the emails this customer receives."),
    )
