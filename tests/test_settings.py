"""What the settings give a local checkout (``make run``): a private SQLite database that holds
under concurrent writers, and state of its own when several checkouts share one machine.

Each case imports the settings afresh in a child process, with the environment of that case.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from django.conf import settings

CHECKOUT = Path(settings.BASE_DIR)
# Left out of the children's environment: each case says what it sets.
INSTANCE_VARIABLES = (
    "DATABASE_URL", "CACHE_URL", "REDIS_URL", "POSTAMT_VAR_DIR", "DOVECOT_ROOT",
    "DOVECOT_INSTANCE_NAME", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
)  # fmt: skip
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")


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


def other_user_can_read(path: Path) -> bool:
    """Whether an unprivileged local user (nobody) can read the file or list the folder."""
    command = ["ls", str(path)] if path.is_dir() else ["cat", str(path)]
    result = subprocess.run(
        command, user="nobody", group="nogroup", extra_groups=[], capture_output=True
    )
    return result.returncode == 0


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


@as_root
def test_the_sqlite_database_of_a_fresh_checkout_is_private(tmp_path):
    """Not readable by other local users, whatever the umask of whoever started Postamt:
    it holds the password hashes and the staff's sessions."""
    var = tmp_path / "var"
    tmp_path.chmod(0o755)  # as a checkout's folder is
    # The child keeps its connection open, so the WAL and shared-memory files exist too.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import django, sys\ndjango.setup()\n"
            "from django.db import connection\n"
            "connection.cursor().execute('CREATE TABLE t (x)')\n"
            "connection.cursor().execute('INSERT INTO t VALUES (1)')\n"
            "print('ready', flush=True)\nsys.stdin.read()\n",
        ],
        cwd=CHECKOUT,
        env=child_env(POSTAMT_VAR_DIR=str(var)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=login_umask,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        files = sorted(var.iterdir())
        assert {f.name for f in files} == {
            "postamt.sqlite3", "postamt.sqlite3-wal", "postamt.sqlite3-shm",
        }  # fmt: skip
        assert stat.S_IMODE(var.stat().st_mode) == 0o700
        for path in [var, *files]:
            assert not other_user_can_read(path), path
    finally:
        child.communicate("", timeout=30)
    assert child.returncode == 0


# --- Two instances on one machine -----------------------------------------------------------

THROTTLE = """
import sys
from accounts import throttle
account = ("203.0.113.9", sys.argv[1])
for _ in range(int(sys.argv[2])):
    throttle.record_failure(*account)
print(throttle.is_blocked(*account))
"""


def test_two_instances_on_one_redis_do_not_share_the_login_throttle():
    """Each names its own Redis database in REDIS_URL and nothing else."""
    account = f"anna-{uuid.uuid4().hex}@example.org"
    limits = {"LOGIN_FAILURES_PER_ACCOUNT": "2", "LOGIN_FAILURE_WINDOW": "60"}
    first, second = os.environ["REDIS_URL"], os.environ["CACHE_URL"]  # this run's databases
    assert first != second

    def blocked(redis_url: str, failures: int) -> bool:
        code = f"import sys\nsys.argv[1:] = [{account!r}, '{failures}']\n" + THROTTLE
        result = run_settings(code, REDIS_URL=redis_url, **limits)
        return result.stdout.strip() == "True"

    assert blocked(first, failures=2)  # locked out on the first instance
    assert not blocked(second, failures=0)  # the second never saw those failures
    assert blocked(first, failures=0)


def checkout_copy(parent: Path, name: str) -> Path:
    """A second checkout of the settings (enough to import them) in another folder."""
    checkout = parent / name / "postamt"
    (checkout / "provider").mkdir(parents=True)
    for module in ("__init__.py", "settings.py", "secrets.py"):
        shutil.copy(CHECKOUT / "provider" / module, checkout / "provider" / module)
    return checkout


DOVECOT_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({k: str(v) for k, v in settings.DOVECOT.items()}))
"""


def test_each_checkout_gets_a_dovecot_of_its_own(tmp_path):
    """Two checkouts' ``make run`` must not share Dovecot's configuration and mail, and
    ``ps`` must tell their processes apart; a checkout finds its own again on restart."""

    def dovecot(checkout: Path) -> dict[str, str]:
        result = run_settings(DOVECOT_SETTINGS, cwd=checkout, setup=False)
        return json.loads(result.stdout)

    one, two = checkout_copy(tmp_path, "one"), checkout_copy(tmp_path, "two")
    first, second = dovecot(one), dovecot(two)

    assert Path(first["ROOT"]) != Path(second["ROOT"])
    assert first["INSTANCE_NAME"] != second["INSTANCE_NAME"]
    assert dovecot(one) == first
