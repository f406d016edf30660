"""Shared set-up for benchmarks: a private database, Dovecot and Celery worker, all real."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Measured as production runs: a checkout's .env (from `make run`) turns DEBUG on, and with
# it Django's query log and cursor wrappers.
os.environ["DEBUG"] = "false"
# Long enough for the start-up secret check: the worker refuses to start otherwise.
os.environ.setdefault("SECRET_KEY", "bench-only-key-" + "0123456789abcdefghijklmnopqrstuvwxyz")
# Static files as they are: a benchmark runs no collectstatic (production's hashed names).
os.environ.setdefault("STATIC_MANIFEST", "false")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postamt_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
os.environ.setdefault("POSTAMT_MASTER_PASSWORD", "bench-master-password")
os.environ.setdefault("POSTAMT_DOVEADM_API_KEY", "bench-doveadm-api-key")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provider.settings")


def setup_django() -> None:
    import django
    import psycopg

    url = os.environ["DATABASE_URL"]
    if url.startswith("postgres"):
        name = url.rsplit("/", 1)[1]
        admin = url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dovecot():  # type: ignore[no-untyped-def]
    from django.conf import settings

    from mailserver.dovecot import DovecotInstance
    from mailserver.tls import make_private_ca

    root = Path(tempfile.mkdtemp(prefix="postamt-bench-"))
    root.chmod(0o755)
    # TLS as in production; this process and the workers it starts trust the bench's own CA.
    ca = make_private_ca(root / "tls")
    settings.POSTAMT_MAIL_CA_FILE = os.environ["POSTAMT_MAIL_CA_FILE"] = str(ca.ca_file)
    instance = DovecotInstance(
        root=root,
        server="bench",
        imap_port=free_port(),
        pop3_port=free_port(),
        imaps_port=free_port(),
        pop3s_port=free_port(),
        ssl_cert=str(ca.cert_file),
        ssl_key=str(ca.key_file),
        lmtp_port=free_port(),
        doveadm_port=free_port(),
        doveadm_api_key=settings.POSTAMT_DOVEADM_API_KEY,
        master_password=settings.POSTAMT_MASTER_PASSWORD,
        auth_penalty=False,
    )
    instance.start()
    return instance


def start_worker(queues: str, concurrency: int = 1) -> subprocess.Popen[bytes]:
    """A real worker process, as production runs it."""
    worker = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/celery"),
            "-A",
            "provider",
            "worker",
            "-Q",
            queues,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
            "--purge",
        ],
        cwd=ROOT,
    )
    from provider.celery import app

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            return worker
    worker.terminate()
    raise RuntimeError("the Celery worker did not start")
