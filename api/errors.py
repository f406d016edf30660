"""Every error as ``{"errors": [{"field", "code", "message"}]}``, in the request's language.

The services raise Django's ``ValidationError`` with the messages the pages show; they come
out here unchanged, field by field. ``field`` is null for an error of the whole request.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.defaults import page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from backups.services import TryLater


def _flatten(detail: Any, field: str | None = None) -> list[dict[str, Any]]:
    if isinstance(detail, dict):
        found = []
        for name, value in detail.items():
            inner = None if name in ("non_field_errors", "__all__") else name
            found += _flatten(value, inner if field is None else f"{field}.{name}")
        return found
    if isinstance(detail, list):
        return [error for item in detail for error in _flatten(item, field)]
    code = getattr(detail, "code", None) or "invalid"
    return [{"field": field, "code": code, "message": str(detail)}]


def _django_errors(exc: DjangoValidationError) -> list[dict[str, Any]]:
    if hasattr(exc, "error_dict"):
        return [
            {
                "field": None if name == "__all__" else name,
                "code": error.code or "invalid",
                "message": message,
            }
            for name, errors in exc.error_dict.items()
            for error in errors
            for message in error.messages
        ]
    return [{"field": None, "code": "invalid", "message": m} for m in exc.messages]


class _Unavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, TryLater):  # a customer's fair use of restores and downloads
        exc = (
            exceptions.Throttled(detail=exc.message)
            if exc.status == status.HTTP_429_TOO_MANY_REQUESTS
            else _Unavailable(exc.message)
        )
    if isinstance(exc, DjangoValidationError):
        return Response({"errors": _django_errors(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(_("This key's role may not do this."))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(_("Not found."))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    response.data = {"errors": _flatten(detail)}
    return response


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The project's 404: JSON in the API's format under /api/, the usual page elsewhere
    (a URL the API's routes do not match never reaches DRF)."""
    if request.path.startswith("/api/"):
        error = {"field": None, "code": "not_found", "message": _("Not found.")}
        return JsonResponse({"errors": [error]}, status=404)
    return page_not_found(request, exception)
