"""The Celery application; tasks live in each app's ``tasks.py``."""
from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from django.db import transaction
from kombu.exceptions import OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provider.settings")

log = logging.getLogger(__name__)

app = Celery("provider")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def enqueue_after_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Queue a task once the current transaction commits, without failing the request.

    Use it for work that has a backstop (a sweeper or the next scheduled run): if the broker
    is down at that moment, the committed change stands and the backstop catches up.
    """

    def send() -> None:
        try:
            task.delay(*args, **kwargs)
        except OperationalError:
            log.warning("broker unavailable: %s not queued now; its sweeper will", task.name)

    transaction.on_commit(send)
