"""``Authorization: Bearer postamt_…``: the key's own user becomes ``request.user``."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts import api_keys
from accounts.models import ApiKey, User
from web.client import client_ip


class ApiKeyAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Send the key as: Authorization: Bearer KEY"))
        try:
            key = api_keys.authenticate(header[1].decode("latin-1"), client_ip(request))
        except api_keys.KeyRefused as exc:
            raise exceptions.AuthenticationFailed(
                _("This API key is unknown, revoked or expired.")
            ) from exc
        except api_keys.AddressRefused as exc:
            raise exceptions.PermissionDenied(
                _("This API key may not be used from this address.")
            ) from exc
        return key.user, key

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'
