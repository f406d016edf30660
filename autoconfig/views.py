"""Mail-client discovery: Thunderbird's autoconfig, Outlook's autodiscover (POX and the JSON
v2 pointer to it) and Apple profiles fetched by a link from the portal's QR code.

Anyone may ask, so every answer comes from ``mailboxes.client_settings``, which never tells
whether an address exists, and every request counts against a per-address limit
(``accounts.throttle.discovery_allowed``; without Redis nothing is answered).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import wraps
from typing import Any
from uuid import uuid4

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from accounts import throttle
from mailboxes import client_settings, profiles
from mailboxes.client_settings import PLAIN, SSL, STARTTLS, ClientSettings
from web.client import client_ip
from web.profiles import profile_response

XML = "application/xml; charset=utf-8"
OUTLOOK_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
# A request is one address and a schema name: anything much bigger is not a mail client.
MAX_REQUEST_BYTES = 8 * 1024
TOO_MANY = 429
UNAVAILABLE = 503

View = Callable[..., HttpResponse]


def rate_limited(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            allowed = throttle.discovery_allowed(client_ip(request))
        except throttle.Unavailable:
            return HttpResponse(
                "Temporarily unavailable",
                status=UNAVAILABLE,
                content_type="text/plain",
                headers={"Retry-After": "60"},
            )
        if not allowed:
            return HttpResponse(
                "Too many requests",
                status=TOO_MANY,
                content_type="text/plain",
                headers={"Retry-After": str(settings.AUTOCONFIG_WINDOW)},
            )
        response = view(request, *args, **kwargs)
        # Per address and changing with the hoster's settings: nobody in between keeps a copy.
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


# --- Thunderbird ----------------------------------------------------------------------------

SOCKET_TYPES = {SSL: "SSL", STARTTLS: "STARTTLS", PLAIN: "plain"}


def _domain_from_host(request: HttpRequest) -> str:
    """``autoconfig.<domain>`` → ``<domain>`` (see ``DiscoveryHostMiddleware``)."""
    host = getattr(request, "discovery_host", "") or request.get_host().rsplit(":", 1)[0]
    return host.lower().removeprefix("autoconfig.")


@rate_limited
@require_GET
def thunderbird(request: HttpRequest) -> HttpResponse:
    """``/.well-known/autoconfig/mail/config-v1.1.xml`` and, on ``autoconfig.<domain>``,
    ``/mail/config-v1.1.xml``; Thunderbird sends ``emailaddress`` with both."""
    address = request.GET.get("emailaddress", "")
    if address:
        found = client_settings.for_address(address)
    else:
        found = client_settings.for_domain(_domain_from_host(request))
    if found is None:
        raise Http404
    context = {
        "client": found,
        "provider": settings.POSTAMT_PROVIDER_NAME,
        "username": found.login or "%EMAILADDRESS%",
        "incoming": [(s, SOCKET_TYPES[s.security]) for s in found.incoming],
        "outgoing": found.outgoing and (found.outgoing, SOCKET_TYPES[found.outgoing.security]),
    }
    return render(request, "autoconfig/config-v1.1.xml", context, content_type=XML)


# --- Outlook --------------------------------------------------------------------------------

ENCRYPTION = {SSL: "SSL", STARTTLS: "TLS", PLAIN: "None"}


def _request_fields(body: bytes) -> dict[str, str]:
    """EMailAddress and AcceptableResponseSchema of a POX request, whatever its namespace.

    No DTDs: entity tricks have no place in a request of two fields."""
    if len(body) > MAX_REQUEST_BYTES or b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        return {}
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return {}
    fields = {}
    for element in root.iter():
        name = element.tag.rsplit("}", 1)[-1]
        if name in ("EMailAddress", "AcceptableResponseSchema") and element.text:
            fields[name] = element.text.strip()
    return fields


def _autodiscover_error(request: HttpRequest, code: int, message: str) -> HttpResponse:
    context = {
        "code": code,
        "message": message,
        "time": timezone.now().strftime("%H:%M:%S.%f"),
        "id": uuid4().int % 10**10,
    }
    return render(request, "autoconfig/autodiscover_error.xml", context, content_type=XML)


def _protocols(found: ClientSettings) -> list[dict[str, object]]:
    servers = [*found.incoming, *([found.outgoing] if found.outgoing else [])]
    return [
        {
            "type": server.protocol.upper(),
            "server": server,
            "ssl": "off" if server.security == PLAIN else "on",
            "encryption": ENCRYPTION[server.security],
        }
        for server in servers
    ]


@csrf_exempt
@rate_limited
@require_http_methods(["POST"])
def autodiscover(request: HttpRequest) -> HttpResponse:
    """``POST /autodiscover/autodiscover.xml`` (Outlook's "POX" autodiscover)."""
    fields = _request_fields(request.body)
    address = fields.get("EMailAddress", "")
    schema = fields.get("AcceptableResponseSchema", OUTLOOK_SCHEMA)
    if not address:
        return _autodiscover_error(request, 600, "Invalid Request")
    if schema != OUTLOOK_SCHEMA:  # e.g. ActiveSync's mobilesync schema: not offered here
        return _autodiscover_error(request, 601, "Provider is not available")
    found = client_settings.for_address(address)
    if found is None:
        return _autodiscover_error(request, 500, "The email address can't be found.")
    context = {"client": found, "protocols": _protocols(found)}
    return render(request, "autoconfig/autodiscover.xml", context, content_type=XML)


@rate_limited
@require_GET
def autodiscover_json(request: HttpRequest, address: str = "") -> HttpResponse:
    """Autodiscover v2: new Outlooks first ask where the v1 (POX) endpoint is.

    ``/autodiscover/autodiscover.json?Email=…&Protocol=AutodiscoverV1`` or
    ``/autodiscover/autodiscover.json/v1.0/<address>?Protocol=AutodiscoverV1``."""
    address = address or request.GET.get("Email", "")
    protocol = request.GET.get("Protocol", "")
    if protocol.lower() != "autodiscoverv1":
        return JsonResponse(
            {
                "ErrorCode": "InvalidProtocol",
                "ErrorMessage": "The given protocol value is invalid. "
                "Supported values are 'AutodiscoverV1'",
            },
            status=400,
        )
    if client_settings.for_address(address) is None:
        return JsonResponse(
            {"ErrorCode": "InvalidUser", "ErrorMessage": "The email address can't be found."},
            status=404,
        )
    # The panel's public address, whatever name the question came to: Outlook wants HTTPS,
    # and behind a proxy the request itself may not know it was HTTPS.
    url = settings.SITE_URL.rstrip("/") + reverse("autoconfig:autodiscover")
    return JsonResponse({"Protocol": "AutodiscoverV1", "Url": url})


# --- Apple ----------------------------------------------------------------------------------


@rate_limited
@require_GET
def profile_by_link(request: HttpRequest, token: str) -> HttpResponse:
    """The profile of the mailbox a portal QR code names; the link expires (settings)."""
    mailbox = profiles.mailbox_for_token(token)
    if mailbox is None:
        raise Http404
    return profile_response(mailbox)
