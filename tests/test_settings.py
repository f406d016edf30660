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


# --- Production ---------------------------------------------------------------------------

# What scripts/test.sh relaxes for the suite; a production environment sets none of them.
TEST_RELAXATIONS = (
    "SECURE_COOKIES", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "STATIC_MANIFEST",
    "LOG_FORMAT", "EMAIL_BACKEND", "DJANGO_ALLOW_ASYNC_UNSAFE",
)  # fmt: skip
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k7Qv2xZ9mP4rT8wY1nB6cF3hJ5sL0dG7aE2uI9oK4pR6tW8yV1",
    "POSTAMT_MASTER_PASSWORD": "Xr7Tq2Lp9Vw4Zk8Nm3Bc",
    "ALLOWED_HOSTS": "postamt.example.net",
    "CSRF_TRUSTED_ORIGINS": "https://postamt.example.net",
    "SITE_URL": "https://postamt.example.net",
}


def run_production(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``manage.py *args`` with the production environment (plus ``env``), as it would start."""
    values = {k: v for k, v in child_env().items() if k not in TEST_RELAXATIONS}
    for name in ("POSTAMT_DOVEADM_API_KEY",):  # the suite's value is fine, but not needed
        values.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=CHECKOUT,
        env={**values, **PRODUCTION, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_production_environment_passes_djangos_deployment_checklist():
    result = run_production("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("SECRET_KEY", "change-me", "SECRET_KEY is a placeholder"),
        ("SECRET_KEY", "Change_Me" * 10, "SECRET_KEY is a placeholder"),
        ("SECRET_KEY", "django-insecure-" + "a1b2c3d4e5" * 5, "SECRET_KEY is a placeholder"),
        ("SECRET_KEY", "k7Qv2xZ9mP4rT8wY1nB6", "SECRET_KEY is shorter than 50"),
        ("SECRET_KEY", "ab" * 30, "SECRET_KEY is shorter than 50"),  # too few characters
        ("SECRET_KEY", "", "SECRET_KEY is empty"),
        ("POSTAMT_MASTER_PASSWORD", "secret", "POSTAMT_MASTER_PASSWORD is a placeholder"),
        ("POSTAMT_MASTER_PASSWORD", "Xr7Tq2Lp9", "POSTAMT_MASTER_PASSWORD is shorter than 16"),
        ("POSTAMT_DOVEADM_API_KEY", "CHANGE-ME", "POSTAMT_DOVEADM_API_KEY is a placeholder"),
        ("EMAIL_HOST_PASSWORD", "password", "EMAIL_HOST_PASSWORD is a placeholder"),
    ],
)
def test_production_refuses_to_start_with_a_weak_secret(variable, value, problem):
    """Every command that runs the checks (migrate, runserver, the container's start) stops."""
    result = run_production("check", **{variable: value})
    assert result.returncode != 0
    assert "postamt.E001" in result.stderr
    assert problem in result.stderr
    if "shorter" in problem:  # a real secret, if a weak one: never echoed into logs
        assert value not in result.stderr


def test_a_secret_may_come_from_a_file_and_is_checked_there_too(tmp_path):
    key = tmp_path / "secret_key"
    key.write_text("change-me\n")
    result = run_production("check", SECRET_KEY="", SECRET_KEY_FILE=str(key))
    assert "SECRET_KEY is a placeholder" in result.stderr


def test_debug_mode_accepts_any_secret():
    """``make run`` and the like: DEBUG on, a development key."""
    result = run_production("check", DEBUG="true", SECRET_KEY="dev", POSTAMT_MASTER_PASSWORD="")
    assert result.returncode == 0, result.stderr


PRODUCTION_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "hsts": settings.SECURE_HSTS_SECONDS,
    "proxy_header": settings.SECURE_PROXY_SSL_HEADER,
    "trusted_proxies": settings.TRUSTED_PROXIES,
    "session_age": settings.SESSION_COOKIE_AGE,
    "browser_close": settings.SESSION_EXPIRE_AT_BROWSER_CLOSE,
    "secure_cookies": settings.SESSION_COOKIE_SECURE,
    "static": settings.STORAGES["staticfiles"]["BACKEND"],
    "log_formatter": settings.LOGGING["handlers"]["console"]["formatter"],
}))
"""


def production_settings(**env: str) -> dict[str, object]:
    values = {k: v for k, v in child_env().items() if k not in TEST_RELAXATIONS}
    result = subprocess.run(
        [sys.executable, "-c", "import django\ndjango.setup()\n" + PRODUCTION_SETTINGS],
        cwd=CHECKOUT,
        env={**values, **PRODUCTION, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_defaults_are_the_secure_ones():
    seen = production_settings()
    assert seen["ssl_redirect"] is True
    assert seen["hsts"] == 365 * 24 * 3600
    assert seen["proxy_header"] is None  # only when the proxy is named
    assert seen["session_age"] == 8 * 3600
    assert seen["browser_close"] is True
    assert seen["secure_cookies"] is True
    assert seen["static"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert seen["log_formatter"] == "json"


def test_the_proxy_and_sessions_come_from_the_environment():
    seen = production_settings(
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        TRUSTED_PROXIES="10.0.0.0/8,192.0.2.1",
        SESSION_COOKIE_AGE="3600",
        SESSION_EXPIRE_AT_BROWSER_CLOSE="false",
        SECURE_HSTS_SECONDS="600",
    )
    assert seen["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert seen["trusted_proxies"] == ["10.0.0.0/8", "192.0.2.1"]
    assert seen["session_age"] == 3600
    assert seen["browser_close"] is False
    assert seen["hsts"] == 600


def test_development_keeps_plain_http_and_readable_logs():
    seen = production_settings(DEBUG="true")
    assert seen["ssl_redirect"] is False
    assert seen["hsts"] == 0
    assert seen["static"] == "django.contrib.staticfiles.storage.StaticFilesStorage"
    assert seen["log_formatter"] == "text"


def test_json_logs_are_one_object_per_line_with_the_extras():
    import logging

    from provider.logs import JsonFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "mailboxes.tasks", logging.ERROR, __file__, 1, "poll of %s failed", ("local",),
            sys.exc_info(),
        )  # fmt: skip
    record.mailbox_id = 42
    line = JsonFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "mailboxes.tasks"
    assert entry["message"] == "poll of local failed"
    assert entry["mailbox_id"] == 42
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("+00:00")
