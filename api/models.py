"""What the API keeps of its own: the answers to requests sent with an ``Idempotency-Key``."""

from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from accounts.models import ApiKey


class IdempotentRequest(models.Model):
    """A POST sent with an ``Idempotency-Key``, and its answer once there is one: a retry
    with the same key gets that answer again instead of a second mailbox. Kept for a day."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=255)
    # What was asked (method, path, body): the same key for another request is a mistake.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)  # None: still being answered
    body = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "idempotency_key"], name="idempotency_key_once_per_api_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id}: {self.idempotency_key}"
