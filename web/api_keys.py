"""The API key pages' shared parts: the form staff and customers make keys with."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import StaffRole

from .forms import ServiceForm


class ApiKeyForm(ServiceForm):
    """A new key. Staff choose its scope (a role for the hoster, or a customer's id); on a
    customer's own page the scope is that customer and the field is not shown."""

    name = forms.CharField(
        label=_("Name"), max_length=100, help_text=_("What uses it, e.g. Billing.")
    )
    role = forms.ChoiceField(
        label=_("For"),
        required=False,
        choices=[("", _("one customer (below)")), *StaffRole.choices],
        help_text=_("A key for the whole hoster acts with this role."),
    )
    customer = forms.IntegerField(
        label=_("Customer id"),
        required=False,
        min_value=1,
        help_text=_("For a customer's key: the number in the address of its page."),
    )
    read_write = forms.BooleanField(
        label=_("May change things"), required=False, help_text=_("Otherwise it only reads.")
    )
    allowed_networks = forms.CharField(
        label=_("Only from these addresses"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("IP addresses or networks (CIDR), one per line; empty: from anywhere."),
    )
    expires = forms.DateField(
        label=_("Valid until"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Empty: until it is revoked."),
    )
    service_fields = {"expires_at": "expires"}

    def __init__(self, *args: Any, for_customer: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if for_customer:
            del self.fields["role"]
            del self.fields["customer"]

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        expires = data.get("expires")
        return {
            "name": data["name"],
            "role": data.get("role") or None,
            "read_only": not data["read_write"],
            "allowed_networks": data["allowed_networks"].split(),
            "expires_at": (
                timezone.make_aware(datetime.combine(expires, time.max)) if expires else None
            ),
        }


def token_message(token: str) -> str:
    """The success message that carries a new key's token, the only time it is shown."""
    return format_html(
        '{} <code class="password">{}</code>',
        gettext("The key's token is shown only this once:"),
        token,
    )
