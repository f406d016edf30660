"""What the settings give a local checkout (``make run``): a SQLite database that holds under
concurrent writers.

Each case imports the settings afresh in a child process, with the environment of that case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from django.conf import settings

CHECKOUT = Path(settings.BASE_DIR)
# Left out of the children's environment: each case says what it sets.
INSTANCE_VARIABLES = (
    "DATABASE_URL", "CACHE_URL", "REDIS_URL", "POSTAMT_VAR_DIR", "DOVECOT_ROOT",
    "DOVECOT_INSTANCE_NAME", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
)  # fmt: skip


def child_env(**env: str) -> dict[str, str]:
    """This environment without the instance's variables, plus ``env``."""
    values = {k: v for k, v in os.environ.items() if k not in INSTANCE_VARIABLES}
    return {**values, "DJANGO_SETTINGS_MODULE": "provider.settings", **env}


def login_umask() -> None:
    """Children start with a login shell's umask, whatever the test runner's is."""
    os.umask(0o022)


def run_settings(
    code: str, *, cwd: Path = CHECKOUT, setup: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (after ``django.setup()`` unless ``setup`` is false) in a child with
    ``child_env(**env)``; fails the test if the child fails."""
    script = ("import django\ndjango.setup()\n" if setup else "") + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=login_umask,
    )
    assert result.returncode == 0, result.stderr
    return result


# --- The SQLite database of a checkout ------------------------------------------------------

SQLITE_WRITERS = """
import json, threading, time
from django.db import connection, transaction

with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE IF NOT EXISTS hits (n INTEGER)")
held = threading.Event()

def slow_writer():
    # A commit that takes longer than Python's default busy timeout (5 s).
    with transaction.atomic():
        connection.cursor().execute("INSERT INTO hits VALUES (1)")
        held.set()
        time.sleep(6)
    connection.close()

writer = threading.Thread(target=slow_writer)
writer.start()
held.wait()
try:
    with transaction.atomic():
        connection.cursor().execute("INSERT INTO hits VALUES (2)")
    outcome = "written"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
writer.join()
with connection.cursor() as cursor:
    rows = cursor.execute("SELECT n FROM hits ORDER BY n").fetchall()
    journal = cursor.execute("PRAGMA journal_mode").fetchone()[0]
print(json.dumps({"outcome": outcome, "rows": [n for (n,) in rows], "journal": journal}))
"""


def test_a_second_sqlite_writer_waits_for_a_slow_commit_instead_of_failing(tmp_path):
    """The backup loop died with "database is locked" while backups were writing."""
    result = run_settings(SQLITE_WRITERS, POSTAMT_VAR_DIR=str(tmp_path))
    seen = json.loads(result.stdout)
    assert seen["outcome"] == "written"
    assert seen["rows"] == [1, 2]
    assert seen["journal"] == "wal"  # Dovecot reads while Postamt writes
