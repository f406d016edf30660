"""Thin tasks of the API: housekeeping only."""

from __future__ import annotations

from celery import shared_task

from . import idempotency


@shared_task(name="api.forget_idempotency_keys")
def forget_idempotency_keys() -> int:
    return idempotency.forget_old()
