"""The settings of the beat processes that tests/integration/test_beat.py starts: the
project's, with one entry due every second on a queue of the test's own (nobody consumes it,
so each message beat sends stays there to be counted)."""

from __future__ import annotations

import os

from provider.settings import *  # noqa: F403

CELERY_BEAT_SCHEDULE = {
    "beat-test-tick": {
        "task": "tests.beat_tick",
        "schedule": 1.0,
        "options": {"queue": os.environ["TEST_BEAT_QUEUE"], "expires": 60},
    }
}
