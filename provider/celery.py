"""The Celery application; tasks live in each app's ``tasks.py``."""

from __future__ import annotations

import logging
import os
from typing import Any, TypedDict

from celery import Celery
from django.db import transaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provider.settings")

log = logging.getLogger(__name__)

app = Celery("provider")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class RetryOptions(TypedDict):
    """When a task retries by itself, spread into ``@shared_task`` with ``**``: typed so
    that the declaration still matches celery-types' overloads of ``shared_task``."""

    autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: int
    retry_backoff_max: int
    retry_jitter: bool
    max_retries: int


class LongTaskOptions(TypedDict, total=False):
    """How a long task is acknowledged and limited, spread in like ``RetryOptions`` (the two
    share no key, so both can be spread into one declaration)."""

    acks_late: bool
    reject_on_worker_lost: bool
    soft_time_limit: int
    time_limit: int


# The work of one mail server goes to queues of its own, so that a worker consuming only them
# caps what runs against that server at once (``-Q backup.mx2 -c 2``): Celery's routing does
# the scheduling. ``manage.py worker_queues`` lists them for the registered servers.
POLL = "poll"
BACKUP = "backup"


def server_queue(kind: str, server_name: str) -> str:
    """The queue of one server's polls (``poll.mx2``) or backups (``backup.mx2``)."""
    return f"{kind}.{server_name}"


# Publishing gives up after about a second: a request must not wait on a broker that is down.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}


def enqueue_after_commit(
    task_name: str, *args: Any, queue: str | None = None, **kwargs: Any
) -> None:
    """Send the task ``task_name`` once the current transaction commits; never fail the request.

    By name, so that a service need not import the tasks module that calls it back. Fire and
    forget: the caller keeps no result, so sending touches only the broker, never the result
    backend. If the broker is down the committed change stands, a warning is logged, and the
    task's backstop (a sweeper or the next scheduled run, which finds the committed rows)
    sends it later: every task sent this way must have one.
    """

    def send() -> None:
        try:
            app.send_task(
                task_name,
                args=args,
                kwargs=kwargs,
                queue=queue,
                ignore_result=True,
                retry=True,
                retry_policy=PUBLISH_RETRY,
            )
        except Exception:  # noqa: BLE001 - any broker failure: the backstop catches up
            log.warning("broker unavailable: %s not queued; its backstop will send it", task_name)

    transaction.on_commit(send)
