"""A mail server's polls and backups travel on queues of its own (``poll.<server>``,
``backup.<server>``), through the real broker to a real worker, so a worker consuming only
them caps what runs against that server."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from io import StringIO

import pytest
from celery.signals import task_prerun
from django.core.management import call_command

from backups import services as backup_services
from backups.models import BackupJob, JobStatus, Snapshot
from mailboxes.models import PollRun
from mailboxes.tasks import poll_all
from tests.backups import helpers
from tests.conftest import Fleet
from tests.factories import make_mailbox, make_server
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

# The fixtures the unit tests get from tests/backups/conftest.py.
backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings


def run(command_line: str) -> str:
    out = StringIO()
    call_command(*shlex.split(command_line), stdout=out)
    return out.getvalue()


@pytest.fixture
def queues_seen() -> Iterator[dict[str, str]]:
    """Each task the worker starts, by name, with the queue it was delivered from."""
    seen: dict[str, str] = {}

    def record(task, **_kwargs) -> None:  # type: ignore[no-untyped-def]
        seen[task.name] = task.request.delivery_info["routing_key"]
        deliveries.append((task.name, task.request.delivery_info["routing_key"]))

    deliveries.clear()
    task_prerun.connect(record, weak=False)
    yield seen
    task_prerun.disconnect(record)


# Every (task, queue) the worker started, in order, while ``queues_seen`` is in use.
deliveries: list[tuple[str, str]] = []


def test_a_servers_poll_and_backup_arrive_on_its_own_queues_and_run(
    dovecot, mail_server, celery_worker, backup_settings, deliver, queues_seen
):
    mailbox = make_mailbox("anna")
    deliver(mailbox.address, b"Subject: hello\r\n\r\nkept\r\n")

    poll_all.delay()
    run_ = wait_for(
        lambda: PollRun.objects.filter(status=PollRun.Status.DONE).first(), "the poll", 30
    )
    job = backup_services.backup_request(mailbox=mailbox, actor="test")
    wait_for(lambda: BackupJob.objects.get(pk=job.pk).status == JobStatus.DONE, "backup", 60)

    assert run_.mailboxes_done == 1
    assert queues_seen["mailboxes.poll_all"] == "default"
    assert queues_seen["mailboxes.poll_server"] == "poll.test"
    assert queues_seen["backups.backup_mailbox"] == "backup.test"


def test_worker_queues_lists_every_servers_queues_for_a_workers_q(mail_server) -> None:
    make_server("mx2")
    assert run("worker_queues") == (
        "default,poll,backup,webhooks,poll.mx2,backup.mx2,poll.test,backup.test\n"
    )
    assert run("worker_queues --kind backup") == "backup,backup.mx2,backup.test\n"
    assert run("worker_queues --server mx2 --kind backup") == "backup.mx2\n"
    assert run("worker_queues --server mx2") == "poll.mx2,backup.mx2\n"


def test_two_servers_behind_the_proxy_are_polled_and_backed_up_each_on_its_own_queues(
    fleet: Fleet, celery_worker, backup_settings, queues_seen
):
    anna = make_mailbox("anna", mail_server=fleet.server_a)
    bert = make_mailbox("bert", mail_server=fleet.server_b)
    fleet.deliver(anna.address, b"Subject: for anna\r\n\r\n" + b"a" * 20_000 + b"\r\n")
    fleet.deliver(bert.address, b"Subject: for bert\r\n\r\n" + b"b" * 60_000 + b"\r\n")

    poll_all.delay()
    wait_for(
        lambda: PollRun.objects.filter(status=PollRun.Status.DONE).count() == 2, "both polls", 60
    )
    jobs = [backup_services.backup_request(mailbox=m, actor="test") for m in (anna, bert)]
    wait_for(
        lambda: all(BackupJob.objects.get(pk=j.pk).status == JobStatus.DONE for j in jobs),
        "both backups",
        90,
    )

    # Each server measured its own mailbox (the proxy delivered each message to its server).
    anna.refresh_from_db()
    bert.refresh_from_db()
    assert 20_000 < anna.used_bytes < 21_000
    assert 60_000 < bert.used_bytes < 61_000
    assert sorted(q for task, q in deliveries if task == "mailboxes.poll_server") == [
        "poll.fleet-a",
        "poll.fleet-b",
    ]
    assert sorted(q for task, q in deliveries if task == "backups.backup_mailbox") == [
        "backup.fleet-a",
        "backup.fleet-b",
    ]
    for mailbox in (anna, bert):
        snapshot = Snapshot.objects.get(repository__mailbox=mailbox)
        assert snapshot.messages == 1
