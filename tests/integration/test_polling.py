"""Usage polling against the real Dovecot, through a real Celery worker on Redis."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage

import pytest

from mailboxes import usage
from mailboxes.models import (
    FolderUsage,
    Health,
    Mailbox,
    MailServer,
    PollRun,
    ServerUsageSample,
    UsageSample,
)
from mailboxes.services import mailbox_suspend
from mailboxes.tasks import poll_all, poll_server, refresh_usage
from mailserver.errors import MailServerUnavailable
from tests.factories import PASSWORD, make_domain, make_mailbox
from tests.mailclients import imaps
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def message(subject: str, body_size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@example.org"
    msg["To"] = "someone@example.org"
    msg["Subject"] = subject
    msg.set_content("x" * body_size)
    return msg.as_bytes()


def doveadm_quota(dovecot, address: str) -> int:
    out = subprocess.run(
        ["doveadm", "-c", str(dovecot.config_file), "-f", "json", "quota", "get", "-u", address],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    storage = next(row for row in json.loads(out) if row["type"] == "STORAGE")
    return int(storage["value"]) * 1024


def fill_folders(dovecot, address: str) -> None:
    client = imaps(dovecot)
    client.login(address, PASSWORD)
    client.create_folder("Projekte/Bäckerei")
    client.append("Sent", message("sent", 30_000))
    client.append("Projekte/Bäckerei", message("nested", 50_000))
    client.append("Projekte/Bäckerei", message("nested 2", 10_000))
    client.logout()


def kib_up(n: int) -> int:
    return -(-n // 1024) * 1024


@pytest.mark.parametrize("path", ["doveadm", "imap"])
def test_poll_through_the_worker_matches_dovecot(
    dovecot, mail_server, celery_worker, deliver, path
):
    if path == "imap":  # the portable path: one master login per mailbox
        MailServer.objects.filter(pk=mail_server.pk).update(doveadm_port=None)
    anna = make_mailbox("anna")
    bob = make_mailbox("bob", domain=anna.domain)
    deliver(anna.address, message("hello", 20_000))
    deliver(bob.address, message("hi", 5_000))
    fill_folders(dovecot, anna.address)

    run_ids = poll_all.delay().get(timeout=30)
    assert len(run_ids) == 1
    run = PollRun.objects.get(pk=run_ids[0])
    # poll_server runs on the worker after poll_all returns
    wait_for(lambda: PollRun.objects.get(pk=run.pk).status == PollRun.Status.DONE, "the run")
    run.refresh_from_db()
    assert (run.status, run.mailboxes_done, run.mailboxes_total) == ("done", 2, 2)

    anna.refresh_from_db()
    # Dovecot's quota reports whole KiB; the batch path sums exact bytes.
    assert kib_up(anna.used_bytes) == doveadm_quota(dovecot, anna.address) > 80_000
    assert anna.usage_state == Mailbox.UsageState.OK
    assert anna.message_count == 4
    folders = {f.name: f for f in FolderUsage.objects.filter(mailbox=anna)}
    # Both paths list every folder that exists on disk; IMAP also lists the special-use
    # folders Dovecot shows before they are first used (empty, so they change no total).
    assert {"INBOX", "Sent", "Projekte/Bäckerei"} <= set(folders)
    assert folders["Projekte/Bäckerei"].message_count == 2
    assert sum(f.message_count for f in folders.values()) == anna.message_count
    # The folders' exact byte sizes add up to the total.
    assert kib_up(sum(f.size_bytes for f in folders.values())) == kib_up(anna.used_bytes)
    largest_first = [f.name for f in FolderUsage.objects.filter(mailbox=anna)]
    assert largest_first[0] == "Projekte/Bäckerei"
    assert UsageSample.objects.filter(mailbox=anna, run=run).count() == 1
    server = MailServer.objects.get(pk=mail_server.pk)
    assert server.health == Health.OK and server.last_poll_ok_at is not None


def test_a_poll_delivered_twice_stores_one_sample_per_mailbox(dovecot, mail_server, celery_worker):
    anna = make_mailbox("anna")
    make_mailbox("bob", domain=anna.domain)
    run = usage.schedule_polls()[0]

    first = poll_server.delay(run.pk)
    second = poll_server.delay(run.pk)
    first.get(timeout=30), second.get(timeout=30)

    assert UsageSample.objects.filter(run=run).count() == 2
    # The server's totals for the overview: once per run, however often it was delivered.
    (totals,) = ServerUsageSample.objects.filter(server=mail_server)
    assert (totals.mailbox_count, totals.allocated_bytes) == (2, 2 * anna.quota_bytes)
    assert usage.schedule_polls() == []  # the slot's run is done: nothing scheduled again


def test_an_interrupted_run_resumes_where_it_stopped(dovecot, mail_server, deliver):
    domain = make_domain()
    boxes = [make_mailbox(f"user{i}", domain=domain) for i in range(4)]
    run = usage.schedule_polls()[0]
    # As if a worker died after its first chunk: two samples written, run left running.
    measured = [
        usage.Outcome(b.pk, usage=usage.read_usage(mail_server, b.address)) for b in boxes[:2]
    ]
    usage._store(run, measured)
    PollRun.objects.filter(pk=run.pk).update(status=PollRun.Status.RUNNING)
    deliver(boxes[0].address, message("after", 10_000))

    usage.poll_server(run.pk)

    run.refresh_from_db()
    assert run.status == PollRun.Status.DONE
    assert UsageSample.objects.filter(run=run).count() == 4
    boxes[0].refresh_from_db()
    assert boxes[0].used_bytes == 0  # measured once in this run, not again


def test_server_down_marks_usage_stale_and_recovers(dovecot, mail_server, deliver):
    anna = make_mailbox("anna")
    deliver(anna.address, message("hello", 20_000))
    usage.refresh_mailbox_usage(anna.pk)
    anna.refresh_from_db()
    measured = anna.used_bytes

    dovecot.stop()
    try:
        run = usage.schedule_polls()[0]
        with pytest.raises(MailServerUnavailable):
            usage.poll_server(run.pk)
        anna.refresh_from_db()
        assert anna.used_bytes == measured  # kept, not zeroed or guessed
        assert anna.usage_state == Mailbox.UsageState.STALE
        assert "refused" in anna.usage_error  # connection refused, kept as the reason
        server = MailServer.objects.get(pk=mail_server.pk)
        assert server.health == Health.FAILING
        assert not UsageSample.objects.filter(run=run).exists()
    finally:
        dovecot.start()

    usage.poll_server(run.pk)  # the retry of the same run
    anna.refresh_from_db()
    assert anna.usage_state == Mailbox.UsageState.OK and anna.usage_error == ""
    assert MailServer.objects.get(pk=mail_server.pk).health == Health.OK


def test_wrong_master_password_flags_the_server(dovecot, mail_server, monkeypatch):
    make_mailbox("anna")
    monkeypatch.setenv("WRONG_MASTER", "not-the-master-password")
    MailServer.objects.filter(pk=mail_server.pk).update(master_password_env="WRONG_MASTER")
    run = usage.schedule_polls()[0]

    usage.poll_server(run.pk)

    server = MailServer.objects.get(pk=mail_server.pk)
    assert server.health == Health.AUTH_FAILED
    assert "refused the master login" in server.health_message
    run.refresh_from_db()
    assert run.status == PollRun.Status.FAILED
    assert Mailbox.objects.get().usage_state == Mailbox.UsageState.STALE


def test_mailbox_unknown_to_dovecot_is_flagged_as_drift(dovecot, mail_server):
    """Without the doveadm API, a refused master login among working ones means drift."""
    MailServer.objects.filter(pk=mail_server.pk).update(doveadm_port=None)
    anna = make_mailbox("anna")
    ghost = make_mailbox("ghost", domain=anna.domain)
    with dovecot_view_without(ghost.address):  # as a lagging or misconfigured server would
        run = usage.schedule_polls()[0]
        usage.poll_server(run.pk)

    ghost.refresh_from_db()
    anna.refresh_from_db()
    assert anna.usage_state == Mailbox.UsageState.OK
    assert ghost.usage_state == Mailbox.UsageState.DRIFT
    assert "refused the master login" in ghost.usage_error
    assert MailServer.objects.get(pk=mail_server.pk).health == Health.OK


def test_doveadm_api_finds_drift_both_ways(dovecot, mail_server, settings):
    """With the doveadm HTTP API, Dovecot's own user list is compared with Postamt's."""
    MailServer.objects.filter(pk=mail_server.pk).update(doveadm_port=dovecot.doveadm_port)
    anna = make_mailbox("anna")
    ghost = make_mailbox("ghost", domain=anna.domain)
    stranger = "stranger@elsewhere.test"
    # A user only Dovecot knows (it borrows anna's row for the other columns).
    extra = (
        " UNION ALL SELECT CAST(%s AS varchar(320)), m.password_hash, m.protocol, 1,"
        " m.quota_bytes, m.storage_path, s.name FROM mailboxes_mailbox m"
        " JOIN mailboxes_mailserver s ON s.id = m.mail_server_id WHERE m.address = %s"
    )
    with dovecot_view_without(ghost.address, extra=extra, extra_params=[stranger, anna.address]):
        run = usage.schedule_polls()[0]
        usage.poll_server(run.pk)

    ghost.refresh_from_db()
    assert ghost.usage_state == Mailbox.UsageState.DRIFT
    assert ghost.usage_error == "the mail server does not know this mailbox"
    server = MailServer.objects.get(pk=mail_server.pk)
    assert server.unknown_users == [stranger]
    assert server.health == Health.OK
    assert Mailbox.objects.get(pk=anna.pk).usage_state == Mailbox.UsageState.OK


@contextmanager
def dovecot_view_without(
    address: str, extra: str = "", extra_params: list[str] | None = None
) -> Iterator[None]:
    """Make Dovecot's view of the database miss one mailbox while Postamt still has it."""
    from django.db import connection

    from mailboxes import dovecot_view

    replace = dovecot_view.CREATE.replace("CREATE VIEW", "CREATE OR REPLACE VIEW")
    with connection.cursor() as cursor:
        cursor.execute(replace + " WHERE m.address <> %s" + extra, [address, *(extra_params or [])])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(replace)


def test_refresh_is_rate_limited(dovecot, mail_server, celery_worker, settings):
    settings.POSTAMT_REFRESH_MIN_INTERVAL = 3600
    anna = make_mailbox("anna")
    assert usage.request_refresh(anna) is True
    assert usage.request_refresh(anna) is False


def test_suspended_mailboxes_are_not_polled(dovecot, mail_server):
    anna = make_mailbox("anna")
    mailbox_suspend(mailbox=anna, actor="test")
    run = usage.schedule_polls()[0]
    usage.poll_server(run.pk)
    run.refresh_from_db()
    assert (run.status, run.mailboxes_total) == ("done", 0)


def test_refresh_task_stores_a_sample(dovecot, mail_server, celery_worker, deliver):
    anna = make_mailbox("anna")
    deliver(anna.address, message("hello", 10_000))
    # The refresh measures over IMAP, in whole KiB like Dovecot's own figure.
    assert refresh_usage.delay(anna.pk).get(timeout=30) == doveadm_quota(dovecot, anna.address)
    assert UsageSample.objects.filter(mailbox=anna, run=None).count() == 1


@pytest.mark.parametrize(
    "capabilities",
    [
        pytest.param({b"STATUS=SIZE"}, id="STATUS per folder"),
        pytest.param(set(), id="FETCH of sizes"),
    ],
)
def test_every_folder_path_measures_the_same(dovecot, mail_server, capabilities, monkeypatch):
    """Servers without LIST-STATUS or STATUS=SIZE get the same figures the slower way."""
    from mailserver.imap import _folder_usage, master_imap

    anna = make_mailbox("anna")
    fill_folders(dovecot, anna.address)
    with master_imap(mail_server, anna.address) as client:
        fast = sorted(_folder_usage(client), key=lambda f: f.name)
        monkeypatch.setattr(client, "capabilities", lambda: capabilities)
        portable = sorted(_folder_usage(client), key=lambda f: f.name)
    assert portable == fast
    assert ("Projekte/Bäckerei", 2) in [(f.name, f.message_count) for f in fast]


def test_poll_usage_command_measures_every_server_now(dovecot, mail_server, deliver):
    from io import StringIO

    from django.core.management import call_command

    anna = make_mailbox("anna")
    deliver(anna.address, message("hello", 3_000))
    out = StringIO()
    call_command("poll_usage", "--here", stdout=out)
    assert out.getvalue() == "test: 1 of 1 mailboxes measured.\n"
    assert Mailbox.objects.get(pk=anna.pk).used_bytes > 3_000


def test_poll_usage_measures_a_mailbox_made_after_this_intervals_scheduled_poll(
    dovecot, mail_server, deliver, celery_worker
):
    """The scheduled run of this interval is done; "measure now" must still measure."""
    from io import StringIO

    from django.core.management import call_command

    from mailboxes.usage import schedule_polls

    make_mailbox("early")
    for run in schedule_polls():
        poll_server.delay(run.pk).get(timeout=30)
    assert schedule_polls() == []  # the slot is done: the beat would skip the server now

    late = make_mailbox("late")
    deliver(late.address, message("after the poll", 5_000))
    out = StringIO()
    call_command("poll_usage", "--wait", "30", stdout=out)

    assert out.getvalue().splitlines() == [
        "Poll of 1 mail server(s) queued for the workers.",
        "test: 2 of 2 mailboxes measured.",
    ]
    assert Mailbox.objects.get(pk=late.pk).used_bytes > 5_000


def test_a_worker_killed_mid_poll_leaves_whole_chunks_and_the_redelivery_completes(
    dovecot, mail_server
):
    """kill -9 of a real worker process mid-run; the broker hands the run to the next one."""
    import os
    import signal
    import time

    from django.db import connection

    from mailboxes.passwords import hash_password
    from tests.workers import start_worker_process

    MailServer.objects.filter(pk=mail_server.pk).update(doveadm_port=None, poll_concurrency=1)
    domain = make_domain()
    plan = make_mailbox("first", domain=domain).plan
    password_hash = hash_password(PASSWORD)
    Mailbox.objects.bulk_create(
        Mailbox(
            domain=domain,
            local_part=f"u{i}",
            address=f"u{i}@{domain.name}",
            protocol="imap",
            plan=plan,
            mail_server=mail_server,
            quota_bytes=plan.default_quota_bytes,
            password_hash=password_hash,
            storage_path=f"{domain.name}/u{i}",
        )
        for i in range(399)
    )
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "POSTAMT_POLL_CHUNK": "10",
        "CELERY_VISIBILITY_TIMEOUT": "2",  # the broker gives the message to the next worker
        "SILENCED_SYSTEM_CHECKS": "postamt.E010",  # which the start-up check would refuse
    }
    queue = f"poll-kill-test-{os.getpid()}"
    run = usage.schedule_polls()[0]
    first = start_worker_process(queue, env)
    second = None
    try:
        poll_server.apply_async((run.pk,), queue=queue)
        deadline = time.monotonic() + 60
        while run.mailboxes_done < 30:
            assert time.monotonic() < deadline, "the poll did not start"
            time.sleep(0.01)
            run.refresh_from_db()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        run.refresh_from_db()
        assert run.status == PollRun.Status.RUNNING and 30 <= run.mailboxes_done < 400
        # Whole chunks only: every sample written belongs to a mailbox marked measured.
        assert UsageSample.objects.filter(run=run).count() == run.mailboxes_done
        assert run.mailboxes_done % 10 == 0

        time.sleep(2)  # past the visibility timeout
        second = start_worker_process(queue, env)
        deadline = time.monotonic() + 90
        while run.status != PollRun.Status.DONE:
            assert time.monotonic() < deadline, "the redelivered poll did not finish"
            time.sleep(0.1)
            run.refresh_from_db()
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(30)

    assert run.attempts == 2
    assert run.mailboxes_done == 400
    samples = UsageSample.objects.filter(run=run)
    assert samples.count() == 400 == len(set(samples.values_list("mailbox_id", flat=True)))
