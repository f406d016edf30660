"""State changes for customers; each is atomic and audited."""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _

from . import audit
from .audit import Actor
from .models import Customer


@transaction.atomic
def customer_create(
    *, name: str, contact_email: str, language: str = "en", actor: Actor, ip: str | None = None
) -> Customer:
    name = name.strip()
    contact_email = contact_email.strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [_("Enter the customer's name.")]
    try:
        validate_email(contact_email)
    except ValidationError:
        errors["contact_email"] = [_("Enter a valid contact email address.")]
    if language not in dict(settings.LANGUAGES):
        errors["language"] = [
            _("Unknown language “%(code)s”; choose one of: %(choices)s.")
            % {"code": language, "choices": ", ".join(dict(settings.LANGUAGES))}
        ]
    if errors:
        raise ValidationError(errors)
    customer = Customer.objects.create(name=name, contact_email=contact_email, language=language)
    audit.record("customer.create", customer, actor=actor, ip=ip, customer=customer)
    return customer
