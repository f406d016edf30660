"""schemathesis against the served schema: generated requests to every operation, through
the whole Django stack, must never get a server error or an answer the schema does not
describe (status code, content type, body).

``API_FUZZ_EXAMPLES`` cases per operation (150 by default; set it higher for a longer run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.api_keys import api_key_create
from tests.backups.helpers import backup_keys, backup_settings, make_snapshot, message, restore_side
from tests.factories import make_customer, make_domain, make_mailbox, make_plan

__all__ = ["backup_keys", "backup_settings", "restore_side"]  # fixtures

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "150"))


def _served_schema() -> dict[str, Any]:
    """The schema /api/v1/schema/ serves, made the same way (no request needed)."""
    generated = SchemaGenerator(api_version="v1").get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


schema = schemathesis.openapi.from_dict(_served_schema())
schema.app = get_wsgi_application()


@pytest.fixture(autouse=True)
def world(db: None, restore_side: Any) -> Iterator[None]:
    """A few objects for the ids to find. Requests go through Django's WSGI handler inside
    the test's transaction; as in Django's test client, the end of a request must not close
    the database connection."""
    customer = make_customer("Bäckerei Müller")
    domain = make_domain(customer, "bäckerei.example")
    mailbox = make_mailbox("anna", domain=domain, plan=make_plan())
    make_snapshot(mailbox, {"INBOX": [(message("Rechnung"), [])]})
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def admin_token(db: None) -> str:
    return api_key_create(name="fuzz", role="admin", read_only=False, actor="test").token


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_schema(case: Any, admin_token: str) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {admin_token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
