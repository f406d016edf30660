"""A real Celery worker process, for tests that kill one (the embedded worker thread can't be)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_worker_process(
    queue: str, env: dict[str, str], pool: str = "solo"
) -> subprocess.Popen[bytes]:
    """A real worker process (solo pool: the task runs in it, so SIGKILL kills the task;
    prefork: the task runs in its one child, so SIGKILL of that child is a lost worker)."""
    return subprocess.Popen(
        [
            str(ROOT / ".venv/bin/celery"),
            "-A",
            "provider",
            "worker",
            "-Q",
            queue,
            "-P",
            pool,
            "-c",
            "1",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"{queue}-{time.monotonic_ns()}@test",
        ],
        cwd=ROOT,
        env=env,
    )
