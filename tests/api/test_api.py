"""The REST API as a billing system uses it: keys, scopes, resources, errors, retries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.api_keys import api_key_create, api_key_revoke
from accounts.models import AuditEntry, Customer, StaffRole
from api.throttling import KeyRateThrottle
from mailboxes.models import MIB, Mailbox
from mailboxes.passwords import verify_password
from tests.factories import make_customer, make_domain, make_mailbox, make_plan, make_server

pytestmark = pytest.mark.django_db

MAILBOXES = "/api/v1/mailboxes/"


def client_for(token: str, **headers: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", **headers)
    return client


def hoster_key(role: str = StaffRole.ADMIN, **options: Any) -> str:
    options.setdefault("read_only", False)
    return api_key_create(name=f"{role} key", role=role, actor="test", **options).token


def customer_key(customer: Customer, **options: Any) -> str:
    options.setdefault("read_only", False)
    return api_key_create(name="own", customer=customer, actor="test", **options).token


@pytest.fixture
def world() -> dict[str, Any]:
    plan = make_plan(max_quota_bytes=1024 * MIB)
    mine = make_customer("Bäckerei Müller")
    theirs = make_customer("Other GmbH")
    my_domain = make_domain(mine, "bäckerei.example")
    their_domain = make_domain(theirs, "other.example")
    return {
        "plan": plan,
        "mine": mine,
        "theirs": theirs,
        "my_domain": my_domain,
        "their_domain": their_domain,
        "my_mailbox": make_mailbox("anna", domain=my_domain, plan=plan),
        "their_mailbox": make_mailbox("otto", domain=their_domain, plan=plan),
    }


# --- Keys -----------------------------------------------------------------------------------


def test_no_key_or_a_wrong_one_is_401_with_a_structured_error(world):
    response = APIClient().get(MAILBOXES)
    assert response.status_code == 401
    assert response.json()["errors"][0]["field"] is None
    token = hoster_key()
    assert client_for(token[:-2] + "xx").get(MAILBOXES).status_code == 401
    assert client_for("postamt_nope_nope").get(MAILBOXES).status_code == 401


def test_a_revoked_or_expired_key_stops_working(world):
    new = api_key_create(name="billing", role="admin", read_only=False, actor="test")
    assert client_for(new.token).get(MAILBOXES).status_code == 200
    api_key_revoke(key=new.key, actor="test")
    assert client_for(new.token).get(MAILBOXES).status_code == 401

    soon = api_key_create(
        name="short", role="admin", expires_at=timezone.now() + timedelta(seconds=1), actor="test"
    )
    new.key.__class__.objects.filter(pk=soon.key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert client_for(soon.token).get(MAILBOXES).status_code == 401


def test_a_key_with_allowed_networks_refuses_other_addresses(world):
    token = hoster_key(allowed_networks=["10.1.0.0/16"])
    assert client_for(token, REMOTE_ADDR="10.2.0.5").get(MAILBOXES).status_code == 403
    ok = client_for(token, REMOTE_ADDR="10.1.200.7").get(MAILBOXES)
    assert ok.status_code == 200


def test_bad_networks_and_missing_roles_are_clear_errors():
    with pytest.raises(Exception) as exc:
        api_key_create(name="x", role=None, allowed_networks=["not-a-net"], actor="test")
    errors = exc.value.message_dict  # type: ignore[attr-defined]
    assert "role" in errors and "allowed_networks" in errors


def test_the_last_use_is_recorded_with_the_address(world):
    new = api_key_create(name="billing", role="admin", actor="test")
    client_for(new.token, REMOTE_ADDR="192.0.2.9").get(MAILBOXES)
    new.key.refresh_from_db()
    assert new.key.last_used_ip == "192.0.2.9" and new.key.last_used_at is not None


def test_a_read_only_key_cannot_write(world):
    token = hoster_key(read_only=True)
    mailbox = world["my_mailbox"]
    response = client_for(token).post(f"{MAILBOXES}{mailbox.pk}/suspend/")
    assert response.status_code == 403
    assert response.json()["errors"][0]["message"] == "This API key is read-only."
    assert Mailbox.objects.get(pk=mailbox.pk).status == "active"


def test_the_keys_role_decides_through_the_services(world):
    support = client_for(hoster_key(StaffRole.SUPPORT))
    mailbox = world["my_mailbox"]
    assert support.post(f"{MAILBOXES}{mailbox.pk}/suspend/").json()["status"] == "suspended"
    assert support.delete(f"{MAILBOXES}{mailbox.pk}/").status_code == 403
    assert Mailbox.objects.filter(pk=mailbox.pk).exists()
    entry = AuditEntry.objects.get(action="mailbox.suspend")
    assert entry.actor_name.startswith("api-")  # the log names the key


# --- Customer keys --------------------------------------------------------------------------


def test_a_customers_key_sees_and_reaches_only_its_own_things(world):
    client = client_for(customer_key(world["mine"]))
    listed = client.get(MAILBOXES).json()["results"]
    assert [m["address"] for m in listed] == ["anna@bäckerei.example"]
    theirs = world["their_mailbox"]
    assert client.get(f"{MAILBOXES}{theirs.pk}/").status_code == 404
    assert client.post(f"{MAILBOXES}{theirs.pk}/suspend/").status_code == 404
    assert (
        client.get(f"{MAILBOXES}?customer={world['theirs'].pk}")
        .json()["results"][0]["address"]
        .startswith("anna")
    )  # the filter cannot widen the scope
    assert [c["name"] for c in client.get("/api/v1/customers/").json()["results"]] == [
        "Bäckerei Müller"
    ]
    assert client.get("/api/v1/servers/").status_code == 403
    created = client.post(
        MAILBOXES,
        {"domain": world["their_domain"].pk, "local_part": "x", "plan": world["plan"].pk},
        format="json",
    )
    assert created.status_code == 400  # as if that domain did not exist
    assert created.json()["errors"][0]["field"] == "domain"
    assert Mailbox.objects.count() == 2


# --- Mailboxes ------------------------------------------------------------------------------


def test_a_mailbox_is_created_with_a_generated_password_returned_once(world):
    client = client_for(hoster_key())
    response = client.post(
        MAILBOXES,
        {
            "domain": world["my_domain"].pk,
            "local_part": "bert",
            "plan": world["plan"].pk,
            "quota_bytes": 200 * MIB,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["address"], body["quota_bytes"], body["protocol"]) == (
        "bert@bäckerei.example",
        200 * MIB,
        "imap",
    )
    mailbox = Mailbox.objects.get(pk=body["id"])
    assert verify_password(mailbox.password_hash, body["generated_password"])
    again = client.get(f"{MAILBOXES}{mailbox.pk}/").json()
    assert "generated_password" not in again and "password" not in again


def test_validation_errors_name_the_field_in_the_requests_language(world):
    client = client_for(hoster_key(), HTTP_ACCEPT_LANGUAGE="de")
    response = client.post(
        MAILBOXES,
        {
            "domain": world["my_domain"].pk,
            "local_part": "anna",
            "plan": world["plan"].pk,
            "quota_bytes": 10 * 1024 * MIB,
        },
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {e["field"] for e in errors} >= {"local_part"}
    assert all(e["message"] and e["code"] for e in errors)
    assert any("existiert bereits" in e["message"] or "gibt es" in e["message"] for e in errors)


def test_update_quota_plan_and_password_then_delete(world):
    client = client_for(hoster_key())
    mailbox = world["my_mailbox"]
    response = client.patch(
        f"{MAILBOXES}{mailbox.pk}/",
        {"quota_bytes": 300 * MIB, "password": "Another-Pass-2041"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["quota_bytes"] == 300 * MIB
    assert verify_password(Mailbox.objects.get(pk=mailbox.pk).password_hash, "Another-Pass-2041")
    assert client.delete(f"{MAILBOXES}{mailbox.pk}/").status_code == 204
    assert not Mailbox.objects.filter(pk=mailbox.pk).exists()


def test_usage_with_folders_and_history_since(world):
    mailbox = world["my_mailbox"]
    now = timezone.now()
    for days, used in ((40, 1 * MIB), (10, 2 * MIB), (1, 3 * MIB)):
        mailbox.samples.create(taken_at=now - timedelta(days=days), used_bytes=used)
    client = client_for(hoster_key(StaffRole.AUDITOR, read_only=True))
    body = client.get(f"{MAILBOXES}{mailbox.pk}/usage/").json()
    assert [p["used_bytes"] for p in body["history"]] == [2 * MIB, 3 * MIB]
    since = (now - timedelta(days=50)).isoformat()
    body = client.get(f"{MAILBOXES}{mailbox.pk}/usage/", {"since": since}).json()
    assert len(body["history"]) == 3
    bad = client.get(f"{MAILBOXES}{mailbox.pk}/usage/", {"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "since"


def test_lists_filter_like_the_staff_lists_and_page_by_cursor(world):
    client = client_for(hoster_key())
    for i in range(5):
        make_mailbox(f"m{i}", domain=world["my_domain"], plan=world["plan"], protocol="imap")
    pop = make_plan(protocol="pop3")
    make_mailbox("pop", domain=world["their_domain"], plan=pop, protocol="pop3")
    body = client.get(MAILBOXES, {"protocol": "pop3"}).json()
    assert [m["address"] for m in body["results"]] == ["pop@other.example"]

    seen, url = [], f"{MAILBOXES}?page_size=3"
    while url:
        page = client.get(url).json()
        seen += [m["id"] for m in page["results"]]
        url = page["next"]
    assert seen == sorted(Mailbox.objects.values_list("pk", flat=True))


# --- Retries and limits ---------------------------------------------------------------------


def test_a_retried_post_with_the_same_idempotency_key_creates_once(world):
    client = client_for(hoster_key(), HTTP_IDEMPOTENCY_KEY="order-4711")
    data = {"domain": world["my_domain"].pk, "local_part": "bert", "plan": world["plan"].pk}
    first = client.post(MAILBOXES, data, format="json")
    second = client.post(MAILBOXES, data, format="json")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()  # the generated password too: it was never seen
    assert second["Idempotent-Replayed"] == "true"
    assert Mailbox.objects.filter(local_part="bert").count() == 1

    other = client.post(MAILBOXES, {**data, "local_part": "carl"}, format="json")
    assert other.status_code == 422
    assert not Mailbox.objects.filter(local_part="carl").exists()


def test_too_many_requests_get_429_with_retry_after(world, monkeypatch):
    monkeypatch.setattr(KeyRateThrottle, "rate", "2/min", raising=False)
    client = client_for(hoster_key())
    assert [client.get(MAILBOXES).status_code for _ in range(3)] == [200, 200, 429]
    response = client.get(MAILBOXES)
    assert int(response["Retry-After"]) > 0
    assert client_for(hoster_key()).get(MAILBOXES).status_code == 200  # per key


# --- Schema and the command line ------------------------------------------------------------


def test_the_openapi_schema_is_served_without_a_key():
    response = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/v1/mailboxes/{id}/suspend/" in schema["paths"]
    quota = schema["components"]["schemas"]["Mailbox"]["properties"]["quota_bytes"]
    assert "bytes" in quota["description"]
    assert APIClient().get("/api/v1/docs/").status_code == 200


def test_keys_are_made_and_revoked_from_the_command_line(world, capsys):
    call_command("api_key_create", "--name", "Billing", "--role", "support", "--read-write")
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert client_for(token).get(MAILBOXES).status_code == 200
    prefix = token.split("_")[1]
    call_command("api_key_revoke", prefix)
    assert client_for(token).get(MAILBOXES).status_code == 401
    assert [e.action for e in AuditEntry.objects.filter(action__startswith="api_key")] == [
        "api_key.revoke",
        "api_key.create",
    ]


def test_a_page_costs_the_same_queries_whatever_its_size(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for i in range(30):
        make_mailbox(f"m{i}", domain=world["my_domain"], plan=world["plan"])
    client = client_for(hoster_key())
    client.get(MAILBOXES)  # records the key's first use: a write once a minute, not per page
    counts = set()
    for size in (5, 30):
        with CaptureQueriesContext(connection) as queries:
            assert len(client.get(MAILBOXES, {"page_size": size}).json()["results"]) == size
        counts.add(len(queries))
    assert len(counts) == 1, counts


@pytest.mark.django_db
def test_hoster_keys_see_each_servers_tls_ports() -> None:
    make_server("mx1", imap_port=143, imaps_port=993, pop3_port=110, pop3s_port=995)
    listed = client_for(hoster_key()).get("/api/v1/servers/").json()["results"]
    assert [(s["name"], s["imaps_port"], s["pop3s_port"]) for s in listed] == [("mx1", 993, 995)]
