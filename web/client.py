"""The address of the client a request comes from, as far as it can be trusted."""

from __future__ import annotations

import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _trusted() -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in settings.TRUSTED_PROXIES)


def _is_trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _trusted())


def client_ip(request: HttpRequest) -> str | None:
    """``REMOTE_ADDR``, unless that is one of ``TRUSTED_PROXIES``: then the nearest address in
    ``X-Forwarded-For`` that is not a trusted proxy itself.

    Only the proxies' own entries are believed: a client can write anything into the header,
    but only what our proxies appended to its right end is true. Used for the login throttle
    and for the addresses in the audit log.
    """
    remote = request.META.get("REMOTE_ADDR")
    if not remote or not _is_trusted(remote):
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for address in reversed([a for a in forwarded if a]):
        if not _is_trusted(address):
            return address
    return remote
