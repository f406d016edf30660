"""``Idempotency-Key`` on every POST: a billing system that retries never creates twice.

The first request with a key claims it (a unique row) before anything is done; a retry
with the same key and the same request gets the first answer again (``Idempotent-Replayed:
true``); the same key for a different request is refused (422), and so is a retry while the
first is still being answered (409). Answers of 5xx are not kept, so those can be retried.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiKey

from .models import IdempotentRequest

KEEP = timedelta(hours=24)
# A claim without an answer after this long belongs to a request whose process died.
ABANDONED_AFTER = timedelta(minutes=2)


class Replay(Exception):
    def __init__(self, record: IdempotentRequest) -> None:
        self.record = record


class KeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"


class StillRunning(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_key_in_use"


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def claim(request: Request) -> IdempotentRequest | None:
    """The row this request answers into, or None without a header; raises ``Replay`` with
    the earlier answer, or an error."""
    header = request.headers.get("Idempotency-Key", "").strip()
    key = request.auth
    if request.method != "POST" or not header or not isinstance(key, ApiKey):
        return None
    if len(header) > 255:
        raise KeyReused(_("An Idempotency-Key has at most 255 characters."))
    fingerprint = _fingerprint(request)
    now = timezone.now()
    try:
        with transaction.atomic():
            return IdempotentRequest.objects.create(
                api_key=key, idempotency_key=header, fingerprint=fingerprint
            )
    except IntegrityError:
        pass
    earlier = IdempotentRequest.objects.get(api_key=key, idempotency_key=header)
    if earlier.fingerprint != fingerprint:
        raise KeyReused(_("This Idempotency-Key was used for a different request."))
    if earlier.status_code is not None:
        raise Replay(earlier)
    taken_over = IdempotentRequest.objects.filter(
        pk=earlier.pk, status_code__isnull=True, created_at__lt=now - ABANDONED_AFTER
    ).update(created_at=now)
    if taken_over:
        return earlier
    raise StillRunning(_("A request with this Idempotency-Key is still being answered."))


def keep(record: IdempotentRequest, response: Response) -> None:
    if response.status_code >= 500:
        record.delete()
        return
    IdempotentRequest.objects.filter(pk=record.pk).update(
        status_code=response.status_code, body=response.data
    )


def replayed(record: IdempotentRequest) -> Response:
    response = Response(record.body, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def forget_old(now: Any = None) -> int:
    before = (now or timezone.now()) - KEEP
    return IdempotentRequest.objects.filter(created_at__lt=before).delete()[0]
