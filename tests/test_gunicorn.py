"""The web process as production runs it: gunicorn with DEBUG off, behind a TLS-ending proxy,
serving the static files collectstatic wrote (whitenoise) and logging JSON lines."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_settings import CHECKOUT, PRODUCTION, TEST_RELAXATIONS, child_env

HOST = "postamt.example.net"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    var = tmp_path_factory.mktemp("var")
    env = {k: v for k, v in child_env().items() if k not in TEST_RELAXATIONS}
    env.update(PRODUCTION, POSTAMT_VAR_DIR=str(var), SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    log = var / "gunicorn.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "provider.wsgi",
             "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=CHECKOUT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                time.sleep(0.1)
        yield port, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def get(
    port: int, path: str, *, https: bool = True, **headers: str
) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = {"Host": HOST, **({"X-Forwarded-Proto": "https"} if https else {}), **headers}
    connection.request("GET", path, headers=sent)
    response = connection.getresponse()
    return response, response.read()


def test_plain_http_is_sent_to_https(server: tuple[int, Path]) -> None:
    response, _ = get(server[0], "/accounts/login/", https=False)
    assert response.status == 301
    assert response.headers["Location"] == f"https://{HOST}/accounts/login/"


def test_pages_come_with_hsts_and_the_content_security_policy(server: tuple[int, Path]) -> None:
    response, _ = get(server[0], "/accounts/login/")
    assert response.status == 200
    assert response.headers["Strict-Transport-Security"] == ("max-age=31536000; includeSubDomains")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "Secure" in response.headers["Set-Cookie"]  # the CSRF cookie


def test_static_files_are_hashed_compressed_and_cached_for_long(server: tuple[int, Path]) -> None:
    _, page = get(server[0], "/accounts/login/")
    stylesheet = re.search(rb'href="(/static/css/postamt\.[0-9a-f]{12}\.css)"', page)
    assert stylesheet, page[:2000]
    response, body = get(server[0], stylesheet.group(1).decode(), **{"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "immutable" in response.headers["Cache-Control"]
    assert body[:2] == b"\x1f\x8b"


def test_logs_are_json_lines(server: tuple[int, Path]) -> None:
    port, log = server
    response, _ = get(port, "/staff/no-such-page/")
    assert response.status == 404
    time.sleep(0.5)
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    not_found = [e for e in entries if e["logger"] == "django.request"]
    assert not_found and not_found[-1]["level"] == "WARNING"
    assert "/staff/no-such-page/" in not_found[-1]["message"]
