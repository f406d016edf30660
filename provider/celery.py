"""The Celery application; tasks live in each app's ``tasks.py``."""

from __future__ import annotations

import logging
import os
from typing import Any, TypedDict

from celery import Celery, signals
from django.db import transaction
from redbeat import schedulers as redbeat

from provider.celery_checks import run_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provider.settings")

log = logging.getLogger(__name__)

app = Celery("provider")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _check_worker_secrets(sender: Any, **_kwargs: Any) -> None:
    """Refuse to start a worker without the secrets of its queues, or with weak ones."""
    _refuse_weak_secrets("worker", queues=list(sender.app.amqp.queues.consume_from))


@signals.beat_init.connect
def _check_beat_secrets(sender: Any, **_kwargs: Any) -> None:
    _refuse_weak_secrets("beat")


def _refuse_weak_secrets(process: str, queues: list[str] | None = None) -> None:
    from provider.checks import process_secret_errors

    errors = process_secret_errors(process, queues or ())
    if errors:
        # SystemExit: Celery logs and swallows any Exception a signal handler raises.
        raise SystemExit("\n".join(f"{e.id}: {e.msg} {e.hint}" for e in errors))


def _redbeat_settings() -> dict[str, Any]:
    """redbeat tells its settings apart from unset ones by their bare names, which Celery's
    CELERY_ namespace hides: hand them over under those names (read lazily, like the rest)."""
    from django.conf import settings

    prefix = "CELERY_REDBEAT_"
    return {
        name.removeprefix("CELERY_").lower(): getattr(settings, name)
        for name in dir(settings)
        if name.startswith(prefix)
    }


app.add_defaults(_redbeat_settings)


@signals.worker_init.connect
def check_before_working(**kwargs: Any) -> None:
    """Django runs its system checks for the web only; a worker checks the broker's timeout
    (``provider.celery_checks``) itself and stops rather than run tasks twice."""
    run_or_exit(log)


# Ours instead of redbeat's own receiver, so that a waiting beat says why it waits.
signals.beat_init.disconnect(redbeat.acquire_distributed_beat_lock)


@signals.beat_init.connect
def check_and_take_the_beat_lock(sender: Any, **kwargs: Any) -> None:
    """One beat only: wait for redbeat's lock (held by a live beat, lapsing once it dies),
    then schedule. The broker's timeout is checked first, as workers do."""
    run_or_exit(log)
    scheduler = sender.scheduler
    holder = redbeat.get_redis(scheduler.app).get(scheduler.lock_key)
    if holder:
        log.warning(
            "beat: another beat holds the lock %s; this one waits and takes over within %s s "
            "of that one stopping",
            scheduler.lock_key,
            scheduler.lock_timeout,
        )
    redbeat.acquire_distributed_beat_lock(sender)
    log.warning("beat: holds the lock %s; scheduling", scheduler.lock_key)


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
