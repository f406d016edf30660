"""Events fired by the real services, in their transaction, sent after commit."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from backups import jobs
from backups import services as backup_services
from backups.models import BackupJob, JobStatus, RestoreJob
from mailboxes.models import MIB, Mailbox
from mailboxes.quota_warnings import evaluate
from mailboxes.services import mailbox_reactivate, mailbox_suspend
from tests.backups.helpers import backup_keys, backup_settings, make_snapshot, message
from tests.factories import make_customer, make_domain, make_mailbox, make_server
from tests.mailboxes.test_quota_warnings import use
from webhooks import events
from webhooks.models import WebhookDelivery
from webhooks.services import endpoint_set_active

from .helpers import endpoint_at

pytestmark = pytest.mark.django_db
__all__ = ["backup_keys", "backup_settings"]  # fixtures

URL = "https://billing.example/hooks"


def sent(event: str) -> list[dict[str, Any]]:
    return [d.payload for d in WebhookDelivery.objects.filter(event=event).order_by("pk")]


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    return make_server()


def test_a_created_mailbox_is_announced_after_commit(
    server, sent_tasks, django_capture_on_commit_callbacks
):
    endpoint = endpoint_at(URL, [events.MAILBOX_CREATED])
    domain = make_domain(make_customer("Bäckerei"), "bäckerei.example")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        mailbox = make_mailbox("anna", domain=domain, quota_bytes=200 * MIB)
    assert sent_tasks == []  # nothing before the commit
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.endpoint == endpoint and delivery.status == "pending"
    for callback in callbacks:
        callback()
    assert ("webhooks.deliver", (delivery.pk,), {}) in sent_tasks

    payload = delivery.payload
    assert payload["id"] == str(delivery.event_id) and payload["type"] == "mailbox.created"
    assert payload["data"] == {
        "mailbox": {
            "id": mailbox.pk,
            "address": "anna@bäckerei.example",
            "address_ascii": "anna@xn--bckerei-5wa.example",
            "domain": domain.pk,
            "customer": domain.customer_id,
            "plan": mailbox.plan_id,
            "protocol": "imap",
            "status": "active",
            "quota_bytes": 200 * MIB,
        }
    }


def test_a_mailbox_that_is_not_created_is_not_announced(server):
    endpoint_at(URL)
    domain = make_domain()
    make_mailbox("anna", domain=domain)
    with pytest.raises(ValidationError):
        make_mailbox("anna", domain=domain)
    assert len(sent(events.MAILBOX_CREATED)) == 1


def test_only_active_endpoints_that_chose_the_event_get_it_with_one_event_id(server):
    first = endpoint_at(URL, [events.MAILBOX_CREATED])
    second = endpoint_at(URL + "/2", [events.MAILBOX_CREATED, events.QUOTA_FULL])
    endpoint_at(URL + "/3", [events.QUOTA_FULL])
    disabled = endpoint_at(URL + "/4", [events.MAILBOX_CREATED])
    endpoint_set_active(endpoint=disabled, active=False, actor="test")

    make_mailbox("anna")

    deliveries = WebhookDelivery.objects.order_by("endpoint_id")
    assert [d.endpoint_id for d in deliveries] == [first.pk, second.pk]
    assert len({d.event_id for d in deliveries}) == 1


def test_nothing_is_written_without_endpoints(server):
    make_mailbox("anna")
    assert not WebhookDelivery.objects.exists()


def test_a_suspended_mailbox_is_announced_and_a_reactivated_one_is_not(server):
    endpoint_at(URL)
    mailbox = make_mailbox("anna")
    mailbox_suspend(mailbox=mailbox, actor="test")
    mailbox_reactivate(mailbox=Mailbox.objects.get(pk=mailbox.pk), actor="test")

    (suspended,) = sent(events.MAILBOX_SUSPENDED)
    assert suspended["data"]["mailbox"]["id"] == mailbox.pk
    assert suspended["data"]["mailbox"]["status"] == "suspended"
    assert WebhookDelivery.objects.count() == 2  # created, suspended


def test_crossing_a_threshold_and_filling_up_are_announced_once(server):
    endpoint_at(URL, [events.QUOTA_THRESHOLD_CROSSED, events.QUOTA_FULL])
    mailbox = make_mailbox("anna", quota_bytes=100 * MIB)

    use(mailbox, 81)
    evaluate()
    evaluate()  # still at 81 %: nothing new
    (crossed,) = sent(events.QUOTA_THRESHOLD_CROSSED)
    assert crossed["data"]["threshold_percent"] == 80
    assert crossed["data"]["used_bytes"] == int(100 * MIB * 0.81)
    assert crossed["data"]["quota_bytes"] == 100 * MIB
    assert crossed["data"]["mailbox"]["id"] == mailbox.pk

    use(mailbox, 100)
    evaluate()
    (full,) = sent(events.QUOTA_FULL)
    assert full["data"]["threshold_percent"] == 100
    assert full["data"]["used_bytes"] == 100 * MIB
    assert len(sent(events.QUOTA_THRESHOLD_CROSSED)) == 1


def test_the_hoster_hears_of_crossings_the_customer_chose_no_email_for(server):
    endpoint_at(URL)
    customer = make_customer()
    customer.only_full_warnings = True
    customer.save()
    mailbox = make_mailbox("anna", domain=make_domain(customer), quota_bytes=100 * MIB)
    use(mailbox, 91)
    assert evaluate() == []  # no email
    (crossed,) = sent(events.QUOTA_THRESHOLD_CROSSED)
    assert crossed["data"]["threshold_percent"] == 90


def _backup_job(mailbox: Mailbox) -> BackupJob:
    repository = backup_services.repository_for(mailbox)
    return BackupJob.objects.create(repository=repository, requested_by="test")


def test_a_finished_backup_is_announced(server, backup_settings):
    endpoint_at(URL)
    mailbox = make_mailbox("anna")
    job = _backup_job(mailbox)
    claimed, token = jobs.claim(BackupJob, job.pk)
    jobs.finish(claimed, token, JobStatus.DONE, bytes_written=1234)
    jobs.finish(claimed, token, JobStatus.DONE)  # a second finish changes nothing

    (completed,) = sent(events.BACKUP_COMPLETED)
    data = completed["data"]
    assert data["backup"]["id"] == job.pk and data["backup"]["status"] == "done"
    assert data["backup"]["bytes_stored"] == 1234
    assert data["repository"]["mailbox"] == mailbox.pk
    assert data["repository"]["address"] == mailbox.address
    assert data["snapshot"] is None


def test_a_failed_backup_is_announced_also_when_it_gives_up(server, backup_settings):
    endpoint_at(URL, [events.BACKUP_FAILED])
    mailbox = make_mailbox("anna")
    job = _backup_job(mailbox)
    claimed, token = jobs.claim(BackupJob, job.pk)
    jobs.finish(claimed, token, JobStatus.FAILED, "the store is full")
    (failed,) = sent(events.BACKUP_FAILED)
    assert failed["data"]["backup"]["error"] == "the store is full"

    again = _backup_job(mailbox)
    BackupJob.objects.filter(pk=again.pk).update(attempts=settings.JOB_MAX_ATTEMPTS)
    assert jobs.claim(BackupJob, again.pk) is None  # one attempt too many: failed
    assert [f["data"]["backup"]["id"] for f in sent(events.BACKUP_FAILED)] == [job.pk, again.pk]


def test_a_completed_restore_is_announced_and_a_failed_one_is_not(server, backup_settings):
    endpoint_at(URL)
    mailbox = make_mailbox("anna")
    snapshot = make_snapshot(mailbox, {"INBOX": [(message("Rechnung"), [])]})

    def restore_job() -> RestoreJob:  # one at a time into a mailbox
        return RestoreJob.objects.create(
            repository=snapshot.repository,
            snapshot=snapshot,
            scope="mailbox",
            target_mailbox=mailbox,
            requested_by="test",
        )

    done = restore_job()
    claimed, token = jobs.claim(RestoreJob, done.pk)
    RestoreJob.objects.filter(pk=done.pk).update(messages_restored=1, bytes_restored=300)
    jobs.finish(claimed, token, JobStatus.DONE)
    failed = restore_job()
    claimed, token = jobs.claim(RestoreJob, failed.pk)
    jobs.finish(claimed, token, JobStatus.FAILED, "the mailbox is full")

    (completed,) = sent(events.RESTORE_COMPLETED)
    data = completed["data"]
    assert data["restore"]["id"] == done.pk and data["restore"]["messages_restored"] == 1
    assert data["restore"]["bytes_restored"] == 300
    assert data["mailbox"]["id"] == mailbox.pk and data["snapshot"] == snapshot.pk


def test_every_mailbox_of_a_csv_import_is_announced(server):
    from mailboxes import imports
    from tests.factories import make_plan

    endpoint_at(URL, [events.MAILBOX_CREATED])
    make_plan(name="IMAP 10G")
    header = ",".join(imports.COLUMNS)
    rows = [f"Acme GmbH,it@acme.example,en,acme.example,,{name},,IMAP 10G,,," for name in "abc"]
    checked = imports.check(("\r\n".join([header, *rows]) + "\r\n").encode())
    assert checked.problems == []
    imports.import_checked(checked=checked, file_name="x.csv", actor="test")

    announced = {p["data"]["mailbox"]["address"] for p in sent(events.MAILBOX_CREATED)}
    assert announced == {"a@acme.example", "b@acme.example", "c@acme.example"}
