"""One beat only: two real ``celery beat`` processes on the real Redis; the second waits
for the first's lock (celery-redbeat), schedules nothing meanwhile, and takes over once the
first is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
LOCK_TIMEOUT = 5  # seconds a dead beat's lock outlives it (60 by default)


def start_beat(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(ROOT / ".venv/bin/celery"), "-A", "provider", "beat", "--loglevel", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def senders(client: redis.Redis, queue: str) -> list[int]:
    """The process id of the beat that sent each message in the queue, oldest first (kombu
    pushes on the left; Celery's ``origin`` header is ``gen<pid>@<host>``)."""
    messages = [json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1))]
    return [int(m["headers"]["origin"].split("@")[0].removeprefix("gen")) for m in messages]


def test_a_second_beat_waits_for_the_first_and_takes_over_when_it_dies(tmp_path) -> None:
    queue = f"beat-test-{uuid.uuid4().hex[:8]}"
    prefix = f"postamt:beat-test-{queue}:"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.beat_settings",
        "TEST_BEAT_QUEUE": queue,
        "CELERY_REDBEAT_KEY_PREFIX": prefix,
        "CELERY_REDBEAT_LOCK_TIMEOUT": str(LOCK_TIMEOUT),
        "CELERY_BEAT_MAX_LOOP_INTERVAL": "1",
        "LOG_FORMAT": "text",
    }
    client = redis.Redis.from_url(settings.REDIS_URL)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_beat(env, first_log)
    second = None
    try:
        wait_for(lambda: senders(client, queue), "the first beat's first message", timeout=60)
        assert "beat: holds the lock" in first_log.read_text()

        second = start_beat(env, second_log)
        wait_for(
            lambda: "another beat holds the lock" in second_log.read_text(),
            "the second beat to say it waits",
            timeout=60,
        )
        # While the first lives, it alone schedules: a few more of its messages, none of
        # the second's (which, without the lock, would send one a second as well).
        waited_at = len(senders(client, queue))
        wait_for(
            lambda: len(senders(client, queue)) >= waited_at + 3, "three more ticks", timeout=60
        )
        assert "beat: holds the lock" not in second_log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        before_death = senders(client, queue)  # the lock outlives the first for seconds
        assert set(before_death) == {first.pid}

        # Its lock lapses; the second takes it and schedules from then on.
        wait_for(
            lambda: second.pid in senders(client, queue),
            "the second beat's first message",
            timeout=60,
        )
        assert "beat: holds the lock" in second_log.read_text()
        after_death = senders(client, queue)[len(before_death) :]
        assert set(after_death) == {second.pid}

        # Stopped cleanly, a beat gives the lock back at once.
        second.send_signal(signal.SIGTERM)
        second.wait(30)
        assert client.get(f"{prefix}:lock") is None
    finally:
        for beat in (first, second):
            if beat is not None and beat.poll() is None:
                beat.kill()
                beat.wait(10)
        client.delete(*client.keys(f"*{queue}*"))  # its queue, bindings and beat's keys
