"""docker/compose.yaml, as Debian's ``docker-compose config`` resolves it (no Docker engine
needed): valid, in step with the stack tests/test_production_stack.py runs, and each service
holding only its own secrets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parent.parent / "docker"
SECRETS = {
    "SECRET_KEY",
    "POSTAMT_MASTER_PASSWORD",
    "POSTAMT_DOVEADM_API_KEY",
    "EMAIL_HOST_PASSWORD",
    "BACKUP_IDENTITY",
    "DATABASE_URL",
    "DOVECOT_DATABASE_URL",
    "POSTGRES_PASSWORD",
}


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The resolved file, with env.example as the operator's .env."""
    checkout = tmp_path_factory.mktemp("checkout")
    (checkout / "docker").mkdir()
    shutil.copy(DOCKER / "compose.yaml", checkout / "docker" / "compose.yaml")
    shutil.copy(DOCKER / "env.example", checkout / "docker" / ".env")
    result = subprocess.run(
        ["docker-compose", "-f", "docker/compose.yaml", "config"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def held(service: dict[str, Any]) -> set[str]:
    """The secrets mounted into a service; none may sit in a plain variable, and every
    ``NAME_FILE`` must point at one of them."""
    environment = service.get("environment") or {}
    plain = [name for name in environment if name in SECRETS and environment[name]]
    assert not plain, f"secrets in plain variables: {plain}"
    mounted = {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}
    for name, value in environment.items():
        if name.endswith("_FILE") and value.startswith("/run/secrets/"):
            assert value.removeprefix("/run/secrets/") in mounted, name
    return mounted


def test_every_queue_has_its_worker_and_there_is_one_beat(compose) -> None:
    services = compose["services"]
    queues = {}
    for name, service in services.items():
        command = service.get("command") or []
        if command[:4] == ["celery", "-A", "provider", "worker"]:
            for queue in command[command.index("-Q") + 1].split(","):
                queues[queue] = name
    # The shared queues, and the mail server's own (poll.<server>, backup.<server>).
    assert set(queues) == {
        "default",
        "poll",
        "backup",
        "restore",
        "webhooks",
        "poll.local",
        "backup.local",
    }
    assert queues["poll.local"] == "worker-poll" and queues["backup.local"] == "worker-backup"
    beats = [n for n, s in services.items() if (s.get("command") or [])[3:4] == ["beat"]]
    assert beats == ["beat"]
    for name in ("web", "worker-backup", "worker-restore"):
        assert services[name]["environment"]["BACKUP_RESTORE_QUEUE"] == "restore"


def test_each_service_holds_only_its_own_secrets(compose) -> None:
    services = compose["services"]
    assert held(services["web"]) == {
        "database_url", "secret_key", "email_host_password", "backup_identity",
    }  # fmt: skip
    assert held(services["worker-default"]) == {
        "database_url", "secret_key", "email_host_password", "master_password",
    }  # fmt: skip
    assert held(services["worker-poll"]) == {"database_url", "master_password", "doveadm_api_key"}
    assert held(services["worker-backup"]) == {
        "database_url", "master_password", "doveadm_api_key",
    }  # fmt: skip
    assert held(services["worker-restore"]) == {
        "database_url", "master_password", "backup_identity",
    }  # fmt: skip
    assert held(services["worker-webhooks"]) == {"database_url"}
    assert held(services["beat"]) == set()
    assert held(services["dovecot"]) == {
        "dovecot_database_url", "master_password", "doveadm_api_key",
    }  # fmt: skip
    assert held(services["db"]) == {"postgres_password"}


def test_the_shared_settings_file_holds_no_secret(compose) -> None:
    """env.example goes to every service: a secret in it would reach them all."""
    variables = {
        line.split("=", 1)[0].lstrip("#")
        for line in (DOCKER / "env.example").read_text().splitlines()
        if "=" in line
    }
    assert not variables & {f"{s}{suffix}" for s in SECRETS for suffix in ("", "_FILE")}


def test_the_web_is_published_on_loopback_only(compose) -> None:
    """It trusts X-Forwarded-Proto: only the proxy on the host may reach it."""
    assert compose["services"]["web"]["ports"] == ["127.0.0.1:8000:8000/tcp"]


def test_dovecot_reads_the_database_with_its_own_role(compose) -> None:
    services = compose["services"]
    assert "dovecot_db_role" in " ".join(services["migrate"]["command"])
    dovecot = services["dovecot"]["environment"]
    assert "DATABASE_URL_FILE" not in dovecot
    assert dovecot["DOVECOT_DATABASE_URL_FILE"] == "/run/secrets/dovecot_database_url"
