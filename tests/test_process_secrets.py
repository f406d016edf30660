"""Each process is asked only for the secrets it holds (docs/operations.md, "Secrets per
process"), and refuses to start with a weak one. The web under gunicorn without the master
password: tests/integration/test_production_stack.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailserver.tls import PrivateCA
from provider.checks import process_secret_errors
from tests.test_settings import CHECKOUT, PRODUCTION, TEST_RELAXATIONS, as_root, child_env

MAIL_SERVER_SECRETS = ("POSTAMT_MASTER_PASSWORD", "POSTAMT_DOVEADM_API_KEY")


def environment(**env: str) -> dict[str, str]:
    """Production, without the mail servers' secrets unless given: set empty, as a variable
    that is absent would be taken from the checkout's .env (`make run`'s)."""
    values = {k: v for k, v in child_env().items() if k not in TEST_RELAXATIONS}
    values.update(PRODUCTION)
    for name in MAIL_SERVER_SECRETS:
        values[name] = ""
    return {**values, **env}


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=CHECKOUT, env=environment(**env), capture_output=True, text=True, timeout=120
    )


def test_the_web_starts_without_the_mail_servers_secrets() -> None:
    result = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    assert result.returncode == 0, result.stderr


def celery_worker(queue: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A worker that stops at its start-up check (it never reaches the broker)."""
    celery = str(Path(sys.executable).parent / "celery")
    return run([celery, "-A", "provider", "worker", "-Q", queue, "-P", "solo"], **env)


@pytest.mark.parametrize(
    ("queue", "env", "problem"),
    [
        ("poll", {}, "POSTAMT_MASTER_PASSWORD is empty"),
        ("poll", {"POSTAMT_MASTER_PASSWORD": "change-me"}, "POSTAMT_MASTER_PASSWORD is a place"),
        ("backup", {"POSTAMT_MASTER_PASSWORD": "short-one"}, "POSTAMT_MASTER_PASSWORD is shorter"),
        ("default", {"SECRET_KEY": ""}, "SECRET_KEY is empty"),
        ("webhooks", {"POSTAMT_DOVEADM_API_KEY": "secret"}, "POSTAMT_DOVEADM_API_KEY is a place"),
    ],
)
def test_a_worker_refuses_to_start_without_its_queues_secrets_or_with_weak_ones(
    queue: str, env: dict[str, str], problem: str
) -> None:
    result = celery_worker(queue, **env)
    assert result.returncode != 0
    assert f"postamt.E001: {problem}" in result.stderr


def test_a_mail_servers_own_queues_need_what_their_kind_needs(settings) -> None:
    """compose gives the poll and backup workers (poll,poll.<server>…) no SECRET_KEY."""
    settings.DEBUG = False
    settings.SECRET_KEY = ""
    settings.POSTAMT_MASTER_PASSWORD = "Xr7Tq2Lp9Vw4Zk8Nm3Bc"
    assert process_secret_errors("worker", ["poll", "poll.mx2", "backup", "backup.mx2"]) == []
    assert process_secret_errors("worker", ["default"])  # which does need SECRET_KEY


@pytest.fixture
def dovecot_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="postamt-dovecot-secrets-"))
    path.chmod(0o755)  # the mail user must pass through it
    yield path
    shutil.rmtree(path, ignore_errors=True)


@as_root
def test_dovecot_renders_without_secret_key_and_with_its_own_role(
    dovecot_root: Path, private_ca: PrivateCA
) -> None:
    result = run(
        [sys.executable, "manage.py", "dovecot", "render"],
        SECRET_KEY="",
        DATABASE_URL="",
        POSTAMT_VAR_DIR=str(dovecot_root / "var"),
        DOVECOT_ROOT=str(dovecot_root / "dovecot"),
        DOVECOT_DATABASE_URL="postgres://dovecot_mx1:Kw4-pQ8-zT2-rV6@db.internal:5432/postamt",
        POSTAMT_MASTER_PASSWORD="Xr7Tq2Lp9Vw4Zk8Nm3Bc",
        DOVECOT_SSL_CERT=str(private_ca.cert_file),
        DOVECOT_SSL_KEY=str(private_ca.key_file),
    )
    assert result.returncode == 0, result.stderr
    rendered = "".join(p.read_text() for p in (dovecot_root / "dovecot" / "conf").glob("*.conf*"))
    assert "user=dovecot_mx1" in rendered or 'user = "dovecot_mx1"' in rendered
    assert "password=Kw4-pQ8-zT2-rV6" in rendered or 'password = "Kw4-pQ8-zT2-rV6"' in rendered


@as_root
def test_dovecot_refuses_a_weak_master_password(dovecot_root: Path) -> None:
    result = run(
        [sys.executable, "manage.py", "dovecot", "render"],
        SECRET_KEY="",
        DOVECOT_ROOT=str(dovecot_root / "dovecot"),
        DOVECOT_DATABASE_URL="postgres://dovecot_mx1:Kw4-pQ8-zT2-rV6@db.internal:5432/postamt",
        POSTAMT_MASTER_PASSWORD="password",
    )
    assert result.returncode != 0
    assert "postamt.E001: POSTAMT_MASTER_PASSWORD is a placeholder" in result.stderr
