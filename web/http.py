"""What views may count on in a request beyond Django's ``HttpRequest``, for type checking.

Nothing here exists at run time that Django and the middleware do not already provide; these
classes only tell mypy about it, as django-htmx's and django-stubs' docs suggest.
"""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User


class HtmxHttpRequest(HttpRequest):
    """Any request: ``HtmxMiddleware`` (in ``MIDDLEWARE``) sets ``request.htmx`` on each."""

    htmx: HtmxDetails


class AuthenticatedHttpRequest(HtmxHttpRequest):
    """A request a login guard let through (``login_required``, ``staff_required``,
    ``customer_required``): its user is logged in, never ``AnonymousUser``."""

    user: User
