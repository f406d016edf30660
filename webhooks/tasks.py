"""Celery entry points for webhooks: thin, ids only, on the ``webhooks`` queue.

A delivery is claimed with a lease before it is sent, so a duplicate task does nothing and a
task lost with its worker is sent again by ``sweep`` once the lease lapses.
"""

from __future__ import annotations

from celery import shared_task

from . import delivery


@shared_task(name="webhooks.deliver", acks_late=True, soft_time_limit=40, time_limit=50)
def deliver(delivery_id: int) -> str | None:
    return delivery.deliver(delivery_id)


@shared_task(name="webhooks.sweep")
def sweep() -> int:
    """For beat, every minute: retries that are due and whatever was lost."""
    return len(delivery.sweep())


@shared_task(name="webhooks.forget_old")
def forget_old() -> int:
    return delivery.forget_old()
