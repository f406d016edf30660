"""The customer's language for the portal pages."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation


class CustomerLanguageMiddleware:
    """Pages in the customer's language (the one its emails use), until the person picks
    one with the switcher; the browser's preference only counts for everyone else.

    Runs after ``LocaleMiddleware`` (which has applied the switcher's cookie or the
    browser's Accept-Language) and after authentication."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            settings.LANGUAGE_COOKIE_NAME not in request.COOKIES
            and user is not None
            and user.is_authenticated
            and user.customer_id is not None
        ):
            language = user.customer.language
            if language in dict(settings.LANGUAGES):
                translation.activate(language)
                request.LANGUAGE_CODE = language
        return self.get_response(request)
