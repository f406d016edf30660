"""A job whose worker process dies is run again, but not forever: a backup whose worker is
killed (kill -9) in every run ends failed once it has used its attempts (JOB_MAX_ATTEMPTS),
and its task is not handed out again. The broker's own redelivery (``reject_on_worker_lost``)
brings it back each time; nothing else (no beat, no "Back up now") is involved."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.urls import reverse

from accounts.models import User
from backups import services
from backups.models import BackupJob, JobStatus
from backups.tasks import backup_mailbox
from tests.backups import helpers
from tests.backups.helpers import imap, message
from tests.factories import make_mailbox
from tests.waiting import wait_for
from tests.workers import start_worker_process

pytestmark = pytest.mark.integration

backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
MAX_ATTEMPTS = 2
DEAD_AFTER = 2  # seconds without a heartbeat before another run may take the job over


def pool_child(worker_pid: int) -> int:
    """The prefork worker's one child, which runs the task."""
    children = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    return int(children[0]) if len(children) == 1 else 0


def unacked(broker: redis.Redis, queue: str) -> int:
    """Messages of ``queue`` that a worker holds unacknowledged (kombu keeps them all in one
    hash, with the routing key last; other tests' killed workers may have left theirs)."""
    return sum(json.loads(raw)[-1] == queue for raw in broker.hvals("unacked"))


def test_a_backup_whose_worker_dies_in_every_run_ends_failed_after_its_attempts(
    dovecot, mail_server, backup_settings, backup_keys, client
) -> None:
    anna = make_mailbox("anna")
    with imap(dovecot, anna.address) as imap_client:
        for start in range(0, 600, 100):
            imap_client.multiappend(
                "INBOX", [message(f"m{i}", f"body {i}") for i in range(start, start + 100)]
            )
    backup_settings.BACKUP_DEAD_SECONDS = DEAD_AFTER
    backup_settings.JOB_MAX_ATTEMPTS = MAX_ATTEMPTS
    env = helpers.backup_worker_env(
        backup_keys,
        BACKUP_IDENTITY_FILE="",
        BACKUP_BATCH_MESSAGES="3",  # slow enough to be killed in the middle
        BACKUP_DEAD_SECONDS=str(DEAD_AFTER),
        JOB_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
    )
    queue = f"backup-loss-test-{os.getpid()}"
    job = BackupJob.objects.create(repository=services.repository_for(anna), requested_by="test")
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    worker = start_worker_process(queue, env, pool="prefork")
    try:
        backup_mailbox.apply_async((job.pk,), queue=queue)
        for attempt in range(1, MAX_ATTEMPTS + 1):

            def running_this_attempt(attempt: int = attempt) -> bool:
                job.refresh_from_db()
                return job.attempts == attempt and job.messages_done >= 9

            wait_for(running_this_attempt, f"attempt {attempt} to be under way", timeout=90)
            assert unacked(broker, queue)  # held by the worker until the run ends
            child = wait_for(lambda: pool_child(worker.pid), "the pool's child", timeout=60)
            os.kill(child, signal.SIGKILL)

        def finished() -> bool:
            job.refresh_from_db()
            return not job.is_active

        # Redelivered once more; the run finds the attempts used up and fails the job.
        wait_for(finished, "the job to end", timeout=90)
        assert job.status == JobStatus.FAILED
        assert job.attempts == MAX_ATTEMPTS + 1
        assert job.error.startswith(f"gave up after {MAX_ATTEMPTS} attempts (JOB_MAX_ATTEMPTS)")
        # Its task was acknowledged: nothing of it waits in the queue or unacknowledged.
        wait_for(
            lambda: not unacked(broker, queue), "the broker to hold no unacked task", timeout=60
        )
        assert broker.llen(queue) == 0
    finally:
        worker.terminate()
        worker.wait(30)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.attempts == MAX_ATTEMPTS + 1

    # Staff read why; the customer a plain sentence.
    staff = User.objects.create_user("ops", password="x-Staff-2041", is_staff=True)
    client.force_login(staff)
    page = client.get(reverse("staff_backups:backup_job", args=[job.pk])).content.decode()
    assert f"gave up after {MAX_ATTEMPTS} attempts" in page
    owner = User.objects.create_user("owner", customer=anna.customer)
    client.force_login(owner)
    page = client.get(reverse("portal_backups:backup_job", args=[job.pk])).content.decode()
    assert "Something went wrong on our side." in page and "gave up" not in page
