"""The start-up check that the broker does not hand out a task again while it still waits or
runs (provider/celery_checks.py), and that workers and beat refuse to start without it."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
import redis
from django.conf import settings
from django.core import checks

from provider.celery_checks import TAG, check_broker_timeout

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def errors() -> list[str]:
    return [m.msg for m in check_broker_timeout() if m.level >= checks.ERROR]


def test_the_projects_settings_pass() -> None:
    assert errors() == []
    assert [m for m in checks.run_checks(tags=[TAG]) if m.level >= checks.ERROR] == []


def test_a_visibility_timeout_shorter_than_the_longest_time_limit_is_refused(settings) -> None:
    settings.CELERY_VISIBILITY_TIMEOUT = 50 * 60
    (message,) = errors()
    assert message.startswith("CELERY_VISIBILITY_TIMEOUT (0:50:00) must be longer")
    # The longest first: the import's hard limit of 65 minutes, then the backups' 55.
    assert "these are not: mailboxes.run_import time limit (1:05:00), backups." in message


def test_a_retry_backoff_or_a_backstop_delay_longer_than_the_timeout_is_refused(
    settings,
) -> None:
    settings.CELERY_VISIBILITY_TIMEOUT = 2 * 3600
    settings.BACKUP_STALE_SECONDS = 3 * 3600
    (message,) = errors()
    assert "BACKUP_STALE_SECONDS (a queued job not started is sent again) (3:00:00)" in message

    settings.BACKUP_STALE_SECONDS = 600
    settings.CELERY_VISIBILITY_TIMEOUT = 1800  # the quota warnings back off up to 30 min
    assert "mailboxes.send_quota_warnings longest retry backoff (0:30:00)" in errors()[0]


def test_on_rabbitmq_the_consumer_timeout_counts_not_the_visibility_timeout(settings) -> None:
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
    settings.BROKER_IS_REDIS = False
    settings.CELERY_VISIBILITY_TIMEOUT = 60  # Redis's: not used
    settings.RABBITMQ_CONSUMER_TIMEOUT = 30 * 60  # RabbitMQ's default
    (message,) = errors()
    assert message.startswith("RABBITMQ_CONSUMER_TIMEOUT (0:30:00) must be longer")
    settings.RABBITMQ_CONSUMER_TIMEOUT = 4 * 3600
    assert errors() == []


@pytest.mark.parametrize("command", [["worker", "-P", "solo"], ["beat"]])
def test_a_worker_or_beat_with_a_short_visibility_timeout_refuses_to_start(command) -> None:
    env = {
        **os.environ,
        "CELERY_VISIBILITY_TIMEOUT": "1800",
        "LOG_FORMAT": "text",
        # Beat stores its schedule before it checks: in keys of this test's own.
        "CELERY_REDBEAT_KEY_PREFIX": f"postamt:check-test-{uuid.uuid4().hex}:",
    }
    done = subprocess.run(
        [f"{ROOT}/.venv/bin/celery", "-A", "provider", *command, "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "postamt.E010" in output and "CELERY_VISIBILITY_TIMEOUT (0:30:00)" in output
    client = redis.Redis.from_url(settings.REDIS_URL)
    stored = client.keys(f"{env['CELERY_REDBEAT_KEY_PREFIX']}*")
    if stored:
        client.delete(*stored)


def test_with_rabbitmq_results_cache_and_beat_stay_on_redis_without_its_transport_options() -> None:
    script = (
        "import json; from django.conf import settings as s; print(json.dumps(["
        "s.CELERY_BROKER_TRANSPORT_OPTIONS, s.CELERY_RESULT_BACKEND, "
        "s.CACHES['default']['LOCATION'], s.CELERY_REDBEAT_REDIS_URL]))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "provider.settings",
        "REDIS_URL": "redis://127.0.0.1:6379/7",
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/postamt",
    }
    for name in ("CACHE_URL", "CELERY_RESULT_BACKEND", "CELERY_REDBEAT_REDIS_URL"):
        env.pop(name, None)
    done = subprocess.run(
        [f"{ROOT}/.venv/bin/python", "-c", f"import django; django.setup(); {script}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    options, results, cache, beat = json.loads(done.stdout.splitlines()[-1])
    assert options == {}  # no visibility timeout nor socket options for amqp
    assert results == cache == beat == "redis://127.0.0.1:6379/7"
