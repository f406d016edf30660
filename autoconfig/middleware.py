"""Let mail programs reach the discovery paths under every customer domain's own names.

Thunderbird asks ``autoconfig.<domain>`` and Outlook ``autodiscover.<domain>``, for every
domain hosted here: listing all of those in ``ALLOWED_HOSTS`` cannot be kept up to date, and
``*`` there would let any Host header into the links Django builds (password-reset emails).
So for the discovery paths only, and only for a Host of the form ``autoconfig.…`` or
``autodiscover.…``, this middleware keeps the name the client asked for on the request
(``request.discovery_host``) and lets the request through as one to the panel's own name
(``SITE_URL``). Nothing on those paths builds a link from the name the client sent, and
whether the domain is hosted here is decided by the views as for any other request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse

DISCOVERY_PATH = re.compile(
    r"^/(mail/config-v1\.1\.xml|\.well-known/autoconfig/mail/config-v1\.1\.xml"
    r"|autodiscover/autodiscover\.(xml|json)(/v1\.0/[^/]+)?)$",
    re.IGNORECASE,
)
DISCOVERY_HOST = re.compile(
    r"^(autoconfig|autodiscover)\.([a-z0-9-]{1,63}\.)+[a-z0-9-]{2,63}\.?(:[0-9]{1,5})?$"
)


class DiscoveryHostMiddleware:
    """First in ``MIDDLEWARE``: before anything asks Django to check the Host header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        host = request.META.get("HTTP_HOST", "").lower()
        if DISCOVERY_PATH.match(request.path_info) and DISCOVERY_HOST.match(host):
            request.discovery_host = host.rsplit(":", 1)[0].rstrip(".")  # type: ignore[attr-defined]
            request.META["HTTP_HOST"] = urlsplit(settings.SITE_URL).netloc
        return self.get_response(request)
