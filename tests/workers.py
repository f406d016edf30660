"""A real Celery worker process, for tests that kill one (the embedded worker thread can't be)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from django.db import connection

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


def worker_env(**variables: str) -> dict[str, str]:
    """This process's environment for a worker process: the test database (which it must
    share to see the test's rows) and ``variables``."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        **variables,
    }


def stop_workers(*workers: subprocess.Popen[bytes] | None) -> None:
    """End the worker processes a test started that still run (for its ``finally``)."""
    for worker in workers:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            worker.wait(30)
