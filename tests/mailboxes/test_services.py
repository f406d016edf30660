"""Provisioning services: validation messages, atomicity and the audit trail."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AuditEntry, User
from mailboxes.models import GIB, MIB, Domain, Mailbox, StoragePurge
from mailboxes.passwords import verify_password
from mailboxes.services import (
    domain_create,
    mailbox_change_plan,
    mailbox_create,
    mailbox_delete,
    mailbox_reactivate,
    mailbox_set_password,
    mailbox_set_quota,
    mailbox_suspend,
)
from tests.factories import (
    PASSWORD,
    make_customer,
    make_domain,
    make_mailbox,
    make_plan,
    make_server,
)

pytestmark = pytest.mark.django_db


def messages(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return " ".join(exc.value.messages)


@pytest.fixture(autouse=True)
def server() -> None:
    make_server()


def test_mailbox_is_stored_lower_case_with_a_dovecot_hash() -> None:
    mailbox = make_mailbox("Anna.Schmidt", domain=make_domain(name="Example.ORG"))
    assert mailbox.address == "anna.schmidt@example.org"
    assert mailbox.password_hash.startswith("{ARGON2ID}$argon2id$")
    assert PASSWORD not in mailbox.password_hash
    assert verify_password(mailbox.password_hash, PASSWORD)


def test_idn_domain_is_stored_as_punycode_and_shown_as_unicode() -> None:
    domain = make_domain(name="Bücher.Example")
    assert domain.name == "xn--bcher-kva.example"
    assert str(domain) == "bücher.example"
    mailbox = make_mailbox("info", domain=domain)
    assert mailbox.address == "info@xn--bcher-kva.example"
    assert mailbox.display_address == "info@bücher.example"


@pytest.mark.parametrize("name", ["localhost", "exa mple.org", "-bad-.org", ""])
def test_invalid_domain_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError) as exc:
        domain_create(customer=make_customer(), name=name, actor="test")
    assert "not a valid domain" in messages(exc)
    assert not Domain.objects.exists()


def test_duplicate_domain_is_refused() -> None:
    make_domain(name="example.org")
    with pytest.raises(ValidationError) as exc:
        make_domain(name="EXAMPLE.org")
    assert "already exists" in messages(exc)


@pytest.mark.parametrize("local_part", ["", ".anna", "anna.", "an..na", "an*na", "an/na", "a" * 65])
def test_bad_local_part_is_refused(local_part: str) -> None:
    with pytest.raises(ValidationError) as exc:
        make_mailbox(local_part)
    assert "not a valid mailbox name" in messages(exc)
    assert not Mailbox.objects.exists()


def test_duplicate_address_is_refused_whatever_the_case() -> None:
    domain = make_domain()
    make_mailbox("anna", domain=domain)
    with pytest.raises(ValidationError) as exc:
        make_mailbox("ANNA", domain=domain)
    assert "already exists" in messages(exc)
    assert Mailbox.objects.count() == 1


def test_a_duplicate_on_an_idn_domain_is_named_as_people_write_it() -> None:
    domain = make_domain(name="bäckerei-müller.example")
    make_mailbox("anna", domain=domain)
    with pytest.raises(ValidationError) as exc:
        make_mailbox("anna", domain=domain)
    assert "The mailbox anna@bäckerei-müller.example already exists." in messages(exc)
    assert "xn--" not in messages(exc)


@pytest.mark.parametrize("quota", [0, -1])
def test_quota_must_be_positive(quota: int) -> None:
    with pytest.raises(ValidationError) as exc:
        make_mailbox(quota_bytes=quota)
    assert "greater than zero" in messages(exc)


def test_quota_above_the_plan_is_refused() -> None:
    plan = make_plan(max_quota_bytes=GIB)
    with pytest.raises(ValidationError) as exc:
        make_mailbox(plan=plan, quota_bytes=2 * GIB)
    assert "allows at most 1.0" in messages(exc)


def test_protocol_outside_the_plan_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        make_mailbox(plan=make_plan(protocol="pop3"), protocol="imap")
    assert "does not include IMAP" in messages(exc)


def test_weak_password_is_refused_with_every_reason() -> None:
    with pytest.raises(ValidationError) as exc:
        make_mailbox("anna", password="anna123")
    text = messages(exc)
    assert "at least 10 characters" in text
    assert "must not contain the mailbox name" in text


def test_create_is_audited_with_actor_and_ip() -> None:
    staff = User.objects.create_user("staff", password="x", is_staff=True)
    domain = make_domain()
    mailbox = mailbox_create(
        domain=domain,
        local_part="anna",
        password=PASSWORD,
        plan=make_plan(),
        actor=staff,
        ip="192.0.2.7",
    )
    entry = AuditEntry.objects.get(action="mailbox.create")
    assert (entry.actor, entry.actor_name, entry.ip_address) == (staff, "staff", "192.0.2.7")
    assert (entry.target_type, entry.target_id) == ("mailbox", mailbox.pk)
    assert entry.customer == domain.customer


def test_password_change_replaces_the_hash() -> None:
    mailbox = make_mailbox()
    mailbox_set_password(mailbox=mailbox, password="Another-Pass-9911", actor="test")
    mailbox.refresh_from_db()
    assert verify_password(mailbox.password_hash, "Another-Pass-9911")
    assert not verify_password(mailbox.password_hash, PASSWORD)
    assert AuditEntry.objects.filter(action="mailbox.password").count() == 1


def test_quota_change_is_validated_and_audited() -> None:
    mailbox = make_mailbox(plan=make_plan(max_quota_bytes=GIB), quota_bytes=100 * MIB)
    with pytest.raises(ValidationError):
        mailbox_set_quota(mailbox=mailbox, quota_bytes=2 * GIB, actor="test")
    mailbox_set_quota(mailbox=mailbox, quota_bytes=200 * MIB, actor="test")
    mailbox.refresh_from_db()
    assert mailbox.quota_bytes == 200 * MIB
    entry = AuditEntry.objects.get(action="mailbox.quota")
    assert entry.details == {"old": 100 * MIB, "new": 200 * MIB}


def test_plan_change_caps_the_quota_and_picks_an_allowed_protocol() -> None:
    mailbox = make_mailbox(plan=make_plan(max_quota_bytes=10 * GIB), quota_bytes=5 * GIB)
    cheap = make_plan(protocol="pop3", max_quota_bytes=GIB)
    mailbox_change_plan(mailbox=mailbox, plan=cheap, actor="test")
    mailbox.refresh_from_db()
    assert (mailbox.plan, mailbox.protocol, mailbox.quota_bytes) == (cheap, "pop3", GIB)


def test_suspend_twice_says_so() -> None:
    mailbox = make_mailbox()
    mailbox_suspend(mailbox=mailbox, actor="test")
    with pytest.raises(ValidationError) as exc:
        mailbox_suspend(mailbox=mailbox, actor="test")
    assert "already suspended" in messages(exc)
    mailbox_reactivate(mailbox=mailbox, actor="test")
    assert Mailbox.objects.get().status == "active"


def test_delete_removes_the_row_and_keeps_the_audit(django_capture_on_commit_callbacks) -> None:
    mailbox = make_mailbox()
    mailbox_id = mailbox.pk
    with django_capture_on_commit_callbacks() as callbacks:
        mailbox_delete(mailbox=mailbox, actor="test")
    assert not Mailbox.objects.exists()
    assert AuditEntry.objects.filter(action="mailbox.delete", target_id=mailbox_id).exists()
    assert len(callbacks) == 1  # the storage purge, queued only after commit
    purge = StoragePurge.objects.get()
    assert (purge.storage_path, purge.done_at) == (mailbox.storage_path, None)


def test_recreated_address_gets_fresh_storage() -> None:
    domain = make_domain()
    first = make_mailbox("anna", domain=domain)
    old_path = first.storage_path
    mailbox_delete(mailbox=first, actor="test")
    second = make_mailbox("anna", domain=domain)
    assert second.storage_path != old_path


def test_every_problem_is_reported_at_once() -> None:
    plan = make_plan(protocol="pop3", max_quota_bytes=GIB)
    with pytest.raises(ValidationError) as exc:
        mailbox_create(
            domain=make_domain(),
            local_part="an..na",
            password="short",
            plan=plan,
            protocol="imap",
            quota_bytes=2 * GIB,
            actor="test",
        )
    assert set(exc.value.message_dict) == {"local_part", "protocol", "quota_bytes", "password"}


def test_domain_on_a_closed_server_is_refused() -> None:
    closed = make_server("closed", active=False)
    with pytest.raises(ValidationError) as exc:
        domain_create(customer=make_customer(), name="example.org", mail_server=closed, actor="t")
    assert "accepts no new mailboxes" in messages(exc)


def test_master_password_comes_from_the_named_variable_or_its_file(monkeypatch, tmp_path) -> None:
    server = make_server("mx2", master_password_env="MX2_MASTER")
    monkeypatch.setenv("MX2_MASTER", "from-variable")
    assert server.master_password() == "from-variable"
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.setenv("MX2_MASTER_FILE", str(tmp_path / "pw"))
    assert server.master_password() == "from-file"
    # A misspelt per-server variable is not quietly replaced by the default password.
    server.master_password_env = "MX2_MASTR"
    assert server.master_password() == ""
