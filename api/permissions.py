"""What a key may do before the services decide: read-only keys only read."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from accounts.models import ApiKey


class KeyScope(BasePermission):
    message = _("This API key is read-only.")

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False  # no key: 401 (the authenticator's header says how to send one)
        return request.method in SAFE_METHODS or not key.read_only


class StaffKeyOnly(BasePermission):
    """For the hoster's own resources (mail servers, the audit log): not a customer's key."""

    message = _("Only the hoster's keys may read this.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_staff)
