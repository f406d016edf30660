"""API keys: made and revoked by staff (any key) or a customer (its own), checked per request.

A token reads ``postamt_<prefix>_<secret>``: the prefix finds the row, the secret is compared
with the stored SHA-256 in constant time. It is shown once, when the key is made.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import audit, roles
from .audit import Actor
from .models import ApiKey, Customer, StaffRole, User

TOKEN_PREFIX = "postamt"
# Writing "last used" on every request would make every read a write; once a minute is enough.
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    token: str  # shown once


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _networks(allowed: list[str]) -> list[str]:
    """The CIDR networks as written back by ``ipaddress`` (``10.0.0.0/8``), or a clear error."""
    result = []
    for text in allowed:
        try:
            result.append(str(ipaddress.ip_network(text.strip(), strict=False)))
        except ValueError as exc:
            raise ValidationError(
                {
                    "allowed_networks": _("“%(network)s” is not an IP address or network.")
                    % {"network": text}
                }
            ) from exc
    return result


@transaction.atomic
def api_key_create(
    *,
    name: str,
    customer: Customer | None = None,
    role: str | None = None,
    read_only: bool = True,
    allowed_networks: list[str] | None = None,
    expires_at: datetime | None = None,
    actor: Actor,
    ip: str | None = None,
) -> NewKey:
    """A key for ``customer``, or for the whole hoster with a staff ``role``."""
    roles.authorize(actor, "api_key.create", customer_id=customer.pk if customer else None)
    name = name.strip()
    errors: dict[str, list[str]] = {}
    if not name or len(name) > ApiKey._meta.get_field("name").max_length:  # type: ignore[operator]
        errors["name"] = [_("Name the key (at most 100 characters), e.g. after what uses it.")]
    if customer is None and role not in StaffRole.values:
        errors["role"] = [
            _("A key for the whole hoster needs a role: %(choices)s.")
            % {"choices": ", ".join(StaffRole.values)}
        ]
    if customer is None and roles.kind(actor) == roles.CUSTOMER:
        errors["customer"] = [_("A customer's key is for that customer only.")]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = [_("The expiry must be in the future.")]
    try:
        networks = _networks(allowed_networks or [])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)

    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    user = User(
        username=f"api-{prefix}",
        first_name=name[:150],
        customer=customer,
        is_staff=customer is None,
        staff_role=role if customer is None and role else StaffRole.SUPPORT,
    )
    user.set_unusable_password()
    user.save()
    key = ApiKey.objects.create(
        name=name,
        prefix=prefix,
        secret_hash=_hash(secret),
        user=user,
        read_only=read_only,
        allowed_networks=networks,
        expires_at=expires_at,
        created_by=actor if isinstance(actor, User) else None,
    )
    audit.record(
        "api_key.create",
        key,
        actor=actor,
        ip=ip,
        customer=customer,
        role=None if customer else role,
        read_only=read_only,
        allowed_networks=networks,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    return NewKey(key, f"{TOKEN_PREFIX}_{prefix}_{secret}")


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: Actor, ip: str | None = None) -> bool:
    """Stop the key at once; False if it was revoked already."""
    customer = key.user.customer
    roles.authorize(actor, "api_key.revoke", customer_id=customer.pk if customer else None)
    if customer is None and roles.kind(actor) == roles.CUSTOMER:
        raise PermissionDenied("a customer may not revoke the hoster's keys")
    if not ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    ):
        return False
    audit.record("api_key.revoke", key, actor=actor, ip=ip, customer=customer)
    return True


class KeyRefused(Exception):
    """The token names no usable key (unknown, wrong secret, revoked, expired): a 401."""


class AddressRefused(Exception):
    """A valid key used from outside its allowed networks: a 403."""


def authenticate(token: str, ip: str | None, now: datetime | None = None) -> ApiKey:
    """The key ``token`` names, if it may be used now from ``ip``."""
    now = now or timezone.now()
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise KeyRefused("not a Postamt API key")
    _label, prefix, secret = parts
    key = ApiKey.objects.select_related("user").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(secret)):
        raise KeyRefused("unknown key")
    if key.revoked_at is not None:
        raise KeyRefused("revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise KeyRefused("expired")
    if key.allowed_networks:
        address = ipaddress.ip_address(ip) if ip else None
        if address is None or not any(
            address in ipaddress.ip_network(network) for network in key.allowed_networks
        ):
            raise AddressRefused(f"{ip} is not in the key's allowed networks")
    if (
        key.last_used_at is None
        or now - key.last_used_at >= LAST_USED_EVERY
        or (key.last_used_ip != ip)
    ):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now, last_used_ip=ip)
        key.last_used_at, key.last_used_ip = now, ip
    return key
