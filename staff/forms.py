"""Staff forms: customers, their logins, domains and mailboxes; the services check the rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from accounts.models import Customer
from accounts.selectors import AuditFilter
from mailboxes.models import Domain, MailServer, Plan, Protocol
from mailboxes.placement import server_loads
from web.forms import PlanChoiceField, QuotaField, ServiceForm
from web.templatetags.postamt import ACTION_LABELS
from webhooks.events import EVENTS

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# Blank means "let the service choose": the mailbox's current protocol if the plan allows it,
# else the plan's first one.
PROTOCOL_CHOICES = [("", _("As the plan allows")), *Protocol.choices]


class CustomerForm(ServiceForm):
    name = forms.CharField(label=_("Name"), max_length=200)
    contact_email = forms.EmailField(
        label=_("Contact email"),
        help_text=_("Where notices go; must not be one of the customer's own mailboxes."),
    )
    language = forms.ChoiceField(
        label=_("Language"),
        choices=settings.LANGUAGES,
        help_text=_("The language of this customer's emails and portal pages."),
    )


class CustomerUserForm(ServiceForm):
    email = forms.EmailField(
        label=_("Email address"),
        help_text=_("The person logs in with it; a link to choose a password is sent there."),
    )


def _password_field(label: StrOrPromise) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=False,
        # Never sent back to the browser, not even after an error.
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("Leave empty to generate a strong password; it is shown once."),
    )


class ServerChoiceField(forms.ModelChoiceField):
    """The servers that accept new mailboxes, each with what it has allocated and holds, so
    staff choosing one see the figures placement weighs; empty lets placement choose."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            queryset=MailServer.objects.filter(active=True),
            required=False,
            empty_label=_("Automatic: the least used server"),
            **kwargs,
        )

    def label_from_instance(self, obj: MailServer) -> str:
        if not hasattr(self, "_loads"):
            self._loads = {load.server.pk: load for load in server_loads(self.queryset)}
        return self._loads[obj.pk].describe()


class DomainForm(ServiceForm):
    name = forms.CharField(
        label=_("Domain name"),
        max_length=253,
        help_text=_("International names such as bücher.example are fine."),
    )
    mail_server = ServerChoiceField(
        label=_("Mail server"),
        help_text=_("Where mail programs are sent for addresses without a mailbox yet."),
    )


class MailboxCreateForm(ServiceForm):
    service_fields = {"quota_bytes": "quota"}

    domain = forms.ModelChoiceField(
        label=_("Domain"), queryset=Domain.objects.none(), empty_label=_("Choose a domain")
    )
    local_part = forms.CharField(
        label=_("Mailbox name"),
        max_length=64,
        help_text=_("The part before the @."),
        widget=forms.TextInput(attrs={"autocapitalize": "none", "spellcheck": "false"}),
    )
    password = _password_field(_("Password"))
    plan = PlanChoiceField(
        label=_("Plan"), queryset=Plan.objects.all(), empty_label=_("Choose a plan")
    )
    protocol = forms.ChoiceField(label=_("Protocol"), choices=PROTOCOL_CHOICES, required=False)
    quota = QuotaField(
        label=_("Quota"),
        required=False,
        help_text=_("For example 500M or 5G (a plain number is MB). Empty: the plan's default."),
    )
    mail_server = ServerChoiceField(
        label=_("Mail server"),
        help_text=_("Allocated: the quotas given out, which placement compares with the capacity."),
    )

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only this customer's domains: another customer's domain is not a valid choice.
        domains = customer.domains.all()
        field = self.fields["domain"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = domains
        if len(domains) == 1:  # the usual case: nothing to choose
            field.initial = domains[0].pk

    @property
    def quota_bytes(self) -> int | None:
        quota: int | None = self.cleaned_data.get("quota")
        return quota


class StorageAllowanceForm(ServiceForm):
    """A customer's or a domain's storage allowance: what its mailboxes' quotas may add up to."""

    service_fields = {"allowance_bytes": "allowance"}

    allowance = QuotaField(
        label=_("Storage allowance"),
        required=False,
        help_text=_("For example 50G. Empty: no limit."),
    )


class AuditFilterForm(forms.Form):
    """The audit log's filters, read from the query string: a filtered log is a link."""

    actor = forms.CharField(label=_("By"), required=False, max_length=150)
    customer = forms.CharField(label=_("Customer"), required=False, max_length=200)
    mailbox = forms.CharField(label=_("Mailbox"), required=False, max_length=320)
    action = forms.ChoiceField(label=_("Action"), required=False)
    since = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=_("Until"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        field = self.fields["action"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", _("Any")), *sorted(ACTION_LABELS.items(), key=lambda c: str(c[1]))]

    def wanted(self) -> AuditFilter:
        data = self.cleaned_data if self.is_valid() else {}
        return AuditFilter(**{k: v for k, v in data.items() if v})


class PasswordForm(ServiceForm):
    password = _password_field(_("New password"))


class QuotaForm(ServiceForm):
    service_fields = {"quota_bytes": "quota"}

    quota = QuotaField(
        label=_("Quota"), help_text=_("For example 500M or 5G (a plain number is MB).")
    )

    @property
    def quota_bytes(self) -> int:
        quota: int = self.cleaned_data["quota"]
        return quota


class PlanForm(ServiceForm):
    plan = PlanChoiceField(label=_("Plan"), queryset=Plan.objects.all())
    protocol = forms.ChoiceField(label=_("Protocol"), choices=PROTOCOL_CHOICES, required=False)


class WebhookEndpointForm(ServiceForm):
    url = forms.CharField(
        label=_("URL"),
        max_length=2000,
        help_text=_("Where the events are POSTed, e.g. https://billing.example/postamt/hook."),
        widget=forms.URLInput(attrs={"placeholder": "https://"}),
    )
    description = forms.CharField(label=_("Description"), max_length=200, required=False)
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=[(code, format_lazy("{} ({})", label, code)) for code, label in EVENTS.items()],
        widget=forms.CheckboxSelectMultiple,
    )


class MoveForm(ServiceForm):
    """Every server is a choice: the service explains why one is refused (the same server,
    a full one, one that accepts no new mailboxes)."""

    target = forms.ModelChoiceField(
        label=_("Move to"),
        queryset=MailServer.objects.all(),
        to_field_name="name",
        empty_label=None,
        error_messages={"invalid_choice": _("There is no such mail server.")},
    )
