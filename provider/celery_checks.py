"""The start-up check that the broker keeps an unacknowledged task longer than any task waits.

Redis hands a delivered, unacknowledged message to another worker after the visibility
timeout; RabbitMQ closes the worker's channel (and redelivers) after its ``consumer_timeout``.
Either way a countdown, an ETA or a run longer than that limit starts the task again while it
still waits or runs, and again after each further timeout. Registered by ``web.apps`` (so
``manage.py check`` runs it before the web starts), and run by every worker and beat
(``provider.celery``), which refuse to start when it fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.core import checks
from django.utils.module_loading import autodiscover_modules

TAG = "celery"


def _task_waits(app: Any) -> dict[str, int]:
    """What the registered tasks wait or run for at most: their time limits and their retry
    countdowns."""
    autodiscover_modules("tasks")  # Celery's own discovery would run the checks again
    conf = app.conf
    waits: dict[str, int] = {}
    for name, task in sorted(app.tasks.items()):
        if name.startswith("celery."):
            continue
        limits = {
            # The hard limit bounds a run; the soft one only where there is no hard one.
            "time limit": task.time_limit
            or conf.task_time_limit
            or task.soft_time_limit
            or conf.task_soft_time_limit,
            # Retries without a countdown of their own wait this long.
            "retry delay": task.default_retry_delay,
        }
        if getattr(task, "autoretry_for", ()) and getattr(task, "retry_backoff", False):
            limits["longest retry backoff"] = getattr(task, "retry_backoff_max", 600)
        for what, seconds in limits.items():
            if seconds:
                waits[f"{name} {what}"] = int(seconds)
    return waits


def _setting_waits() -> dict[str, int]:
    """Waits the project's own code applies to tasks: countdowns computed from settings and
    the delays after which a backstop sends a job's task again."""
    return {
        "BACKUP_DEAD_SECONDS (busy backups retry within it)": settings.BACKUP_DEAD_SECONDS,
        "BACKUP_STALE_SECONDS (a queued job not started is sent again)": (
            settings.BACKUP_STALE_SECONDS
        ),
        "IMPORT_STALE_SECONDS (a stopped import is taken over)": settings.IMPORT_STALE_SECONDS,
        "WEBHOOK_LEASE_SECONDS": settings.WEBHOOK_LEASE_SECONDS,
        "WEBHOOK_QUEUE_GRACE_SECONDS": settings.WEBHOOK_QUEUE_GRACE_SECONDS,
    }


def longest_waits(app: Any) -> list[tuple[str, int]]:
    """Every wait the broker must outlast, longest first."""
    waits = {**_task_waits(app), **_setting_waits()}
    return sorted(waits.items(), key=lambda item: (-item[1], item[0]))


def _human(seconds: int) -> str:
    return str(timedelta(seconds=seconds))


def check_broker_timeout(
    app_configs: Sequence[Any] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """The broker's redelivery timeout is longer than every wait of ``longest_waits``."""
    app = current_app  # provider.celery's, made current when the package was imported
    if settings.BROKER_IS_REDIS:
        limit_name, limit = "CELERY_VISIBILITY_TIMEOUT", settings.CELERY_VISIBILITY_TIMEOUT
        hint = "Raise CELERY_VISIBILITY_TIMEOUT (seconds) above the longest wait."
    elif settings.CELERY_BROKER_URL.startswith(("amqp", "pyamqp")):
        limit_name, limit = "RABBITMQ_CONSUMER_TIMEOUT", settings.RABBITMQ_CONSUMER_TIMEOUT
        hint = (
            "Raise consumer_timeout in rabbitmq.conf (milliseconds) above the longest wait "
            "and set RABBITMQ_CONSUMER_TIMEOUT (seconds) to what the server has."
        )
    else:
        return []
    too_long = [(name, seconds) for name, seconds in longest_waits(app) if seconds >= limit]
    if not too_long:
        return []
    listed = ", ".join(f"{name} ({_human(seconds)})" for name, seconds in too_long)
    return [
        checks.Error(
            f"{limit_name} ({_human(limit)}) must be longer than every wait of the tasks; "
            f"these are not: {listed}. The broker would start such a "
            "task again while it still waits or runs.",
            hint=hint,
            id="postamt.E010",
        )
    ]


def run_or_exit(log: Any) -> None:
    """For workers and beat, which Django's ``check`` does not run: stop on an error."""
    errors = [
        message
        for message in checks.run_checks(tags=[TAG])
        if message.level >= checks.ERROR and not message.is_silenced()
    ]
    for message in errors:
        log.critical("%s", message)
    if errors:
        raise SystemExit(1)
