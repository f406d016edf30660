"""Command-line lookups of customers, with errors that say what exists."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from provider.cli import usage_error

from .models import Customer


def get_customer(ref: str) -> Customer:
    """A customer by id, or by contact email when that names exactly one."""
    ref = ref.strip()
    if ref.isdigit():
        customer = Customer.objects.filter(pk=int(ref)).first()
        if customer is None:
            raise CommandError(_("There is no customer with the id %(id)s.") % {"id": ref})
        return customer
    if "@" not in ref:
        raise usage_error(
            _("--customer: give a customer id or contact email, not “%(value)s”.") % {"value": ref}
        )
    matches = list(Customer.objects.filter(contact_email__iexact=ref).order_by("pk"))
    if not matches:
        raise CommandError(
            _("There is no customer with the contact email %(email)s.") % {"email": ref}
        )
    if len(matches) > 1:
        raise CommandError(
            _("%(count)d customers have the contact email %(email)s; give an id: %(ids)s.")
            % {
                "count": len(matches),
                "email": ref,
                "ids": ", ".join(str(c.pk) for c in matches),
            }
        )
    return matches[0]
