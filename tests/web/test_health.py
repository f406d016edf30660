"""``/healthz``: 200 when the database, Redis and every mail server answer, 503 naming the part
that does not; no login, no details."""

from __future__ import annotations

import socket

import pytest
from django.test import Client, override_settings

from mailboxes.models import MailServer
from tests.factories import make_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return server.getsockname()[1]  # closed again when the test connects


@pytest.mark.integration
def test_health_is_ok_when_everything_answers(client: Client, mail_server: MailServer) -> None:
    make_server("imap-two", hostname="127.0.0.1", imaps_port=mail_server.imaps_port)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "database": "ok",
        "redis": "ok",
        "mail_servers": {mail_server.name: "ok", "imap-two": "ok"},
    }
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.integration
def test_an_unreachable_mail_server_makes_it_unhealthy_without_saying_where_it_is(
    client: Client, mail_server: MailServer, closed_port: int
) -> None:
    make_server("imap-down", hostname="127.0.0.1", imaps_port=closed_port)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["mail_servers"] == {mail_server.name: "ok", "imap-down": "unreachable"}
    assert "127.0.0.1" not in response.content.decode()
    assert str(closed_port) not in response.content.decode()


@pytest.mark.integration
def test_a_server_that_answers_without_tls_is_unhealthy(client: Client) -> None:
    """Something listens, but it is not the TLS the workers need."""
    with socket.create_server(("127.0.0.1", 0)) as plain:
        make_server("imap-plain", hostname="127.0.0.1", imaps_port=plain.getsockname()[1])
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["mail_servers"] == {"imap-plain": "unreachable"}


def test_unreachable_redis_makes_it_unhealthy(client: Client, closed_port: int) -> None:
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port}/0"):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["redis"] == "unreachable"
    assert response.json()["database"] == "ok"


def test_an_unreachable_database_makes_it_unhealthy(client: Client, monkeypatch) -> None:
    from django.db import connection
    from django.db.utils import OperationalError

    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"database": "unreachable", "redis": "ok", "mail_servers": {}}


def test_health_needs_no_login_and_only_reads(client: Client) -> None:
    assert client.get("/healthz").status_code in (200, 503)  # not a redirect to the login
    assert client.post("/healthz").status_code == 405
