"""The scheduled pass skips unchanged mailboxes without opening them, against the real Dovecot:
one doveadm HTTP API request per server (or, without the API, one short IMAP session per
mailbox), compared with the last snapshot's folder states."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups import services
from backups.models import BackupJob, Repository
from backups.unchanged import unchanged_repositories
from mailboxes.models import Mailbox, MailServer
from mailserver import imap as imap_adapter
from mailserver.doveadm import doveadm_folder_states
from mailserver.imap import MailboxSession, imap_folder_states
from tests.backups import helpers
from tests.backups.helpers import append, imap, message
from tests.factories import make_mailbox
from tests.integration.test_backups import backup_now, fill

pytestmark = pytest.mark.integration

backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
restore_side = helpers.restore_side
DATE = helpers.DATE


def scheduled(sent_tasks, later: timedelta = timedelta(days=2)) -> set[str]:  # type: ignore[no-untyped-def]
    """The addresses the scheduled pass sends a backup for, as it runs ``later``."""
    sent_tasks.clear()
    job_ids = services.schedule_due(timezone.now() + later)
    jobs = BackupJob.objects.filter(pk__in=job_ids).select_related("repository")
    addresses = {job.repository.address for job in jobs}
    assert [name for name, _a, _k in sent_tasks] == ["backups.backup_mailbox"] * len(job_ids)
    # Run them as the worker would, so the next pass compares with their snapshots.
    for job in jobs:
        BackupJob.objects.filter(pk=job.pk).delete()
        backup_now(job.repository.mailbox)
    return addresses


def test_doveadm_reports_what_imap_status_does(dovecot, mail_server, restore_side):
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    backup_now(anna)  # lists with RETURN (SUBSCRIBED) and asks STATUS with HIGHESTMODSEQ
    states, subscribed = doveadm_folder_states(mail_server)

    with imap(dovecot, anna.address) as client:
        for name in ("INBOX", "Sent", "Архив"):
            status = client.folder_status(
                name, [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES", b"HIGHESTMODSEQ"]
            )
            assert states[anna.address][name] == (
                status[b"UIDVALIDITY"],
                status[b"UIDNEXT"],
                status[b"MESSAGES"],
                status[b"HIGHESTMODSEQ"],
            )
        assert subscribed[anna.address] == {name for _f, _d, name in client.list_sub_folders()}


@pytest.mark.parametrize("asked", ["doveadm", "imap"])
def test_the_scheduled_pass_backs_up_only_changed_mailboxes(
    dovecot, mail_server, restore_side, sent_tasks, monkeypatch, asked
):
    if asked == "imap":  # a server without the doveadm API: the portable path
        MailServer.objects.filter(pk=mail_server.pk).update(doveadm_port=None)
    names = ["same", "new", "flag", "validity", "folder", "gone"]
    boxes = {name: make_mailbox(name) for name in names}
    for mailbox in boxes.values():
        fill(dovecot, mailbox.address)
        with imap(dovecot, mailbox.address) as client:
            client.create_folder("Old")
    # The first pass backs everything up: nothing has a snapshot to compare with yet.
    assert scheduled(sent_tasks) == {m.address for m in boxes.values()}

    with imap(dovecot, boxes["new"].address) as client:
        append(client, "INBOX", message("new mail"), (), DATE)
    with imap(dovecot, boxes["flag"].address) as client:
        client.select_folder("Sent")
        client.add_flags(client.search(), [b"$Done"])  # flags only: HIGHESTMODSEQ moves
    with imap(dovecot, boxes["validity"].address) as client:
        client.delete_folder("Projekte/Bäckerei")  # the same name again, a new UIDVALIDITY
        client.create_folder("Projekte/Bäckerei")
        append(client, "Projekte/Bäckerei", message("nested"), (), DATE)
    with imap(dovecot, boxes["folder"].address) as client:
        client.create_folder("Neu")  # empty: only the folder is new
    with imap(dovecot, boxes["gone"].address) as client:
        client.delete_folder("Old")  # it was empty: only the folder is gone

    opened: list[str] = []
    original = MailboxSession.__init__

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append("session")
        original(self, *args, **kwargs)

    monkeypatch.setattr(MailboxSession, "__init__", spy)
    sent = scheduled(sent_tasks)

    assert sent == {boxes[n].address for n in ["new", "flag", "validity", "folder", "gone"]}
    assert len(opened) == len(sent)  # the unchanged one was not opened
    same = Repository.objects.get(mailbox=boxes["same"])
    assert same.seq == 1 and same.checked_unchanged_at is not None
    assert same.last_backup_at == same.checked_unchanged_at  # not due again for an interval
    assert services.schedule_due(timezone.now() + timedelta(days=2, hours=1)) == []

    # Backed up, every changed one is skipped on the pass after.
    assert scheduled(sent_tasks, timedelta(days=4)) == set()


def test_a_subscription_alone_or_an_unfinished_run_means_a_backup(
    dovecot, mail_server, restore_side, sent_tasks
):
    anna = make_mailbox("anna")
    bert = make_mailbox("bert")
    for mailbox in (anna, bert):
        fill(dovecot, mailbox.address)
    scheduled(sent_tasks)
    with imap(dovecot, anna.address) as client:
        client.subscribe_folder("Архив")  # moves no STATUS value
    repository = Repository.objects.get(mailbox=bert)
    repository.folders.filter(name="INBOX").update(seq=repository.seq + 1)  # a run that died

    assert scheduled(sent_tasks) == {anna.address, bert.address}
    assert scheduled(sent_tasks, timedelta(days=4)) == set()


def test_imap_reports_what_doveadm_does(dovecot, mail_server, restore_side, monkeypatch):
    """The portable path reads the very values the doveadm API gives, one round trip per
    mailbox (LIST-STATUS) or, on a server without it, a STATUS per folder."""
    anna = make_mailbox("anna")
    bert = make_mailbox("bert")
    for mailbox in (anna, bert):
        fill(dovecot, mailbox.address)
    backup_now(anna)
    with imap(dovecot, anna.address) as client:
        client.select_folder("Sent")
        client.add_flags(client.search(), [b"$Done"])
    addresses = [anna.address, bert.address, "nobody@" + anna.domain.name]

    over_imap = imap_folder_states(mail_server, addresses, connections=2)

    # After the logins: a first login creates the special-use folders Dovecot is told to.
    expected = doveadm_folder_states(mail_server)

    for address in (anna.address, bert.address):
        assert over_imap[0][address] == expected[0][address]
        assert over_imap[1][address] == expected[1][address]
    assert "nobody@" + anna.domain.name not in over_imap[0]  # no such mailbox: a doubt

    monkeypatch.setattr(imap_adapter, "_list_states", lambda client: None)  # no LIST-STATUS
    portable = imap_folder_states(mail_server, [anna.address], connections=1)
    assert portable[0][anna.address] == expected[0][anna.address]
    assert portable[1][anna.address] == expected[1][anna.address]


def test_without_the_doveadm_api_unchanged_mailboxes_are_skipped_over_imap(
    dovecot, mail_server, restore_side, sent_tasks
):
    anna = make_mailbox("anna")
    bert = make_mailbox("bert")
    for mailbox in (anna, bert):
        fill(dovecot, mailbox.address)
    scheduled(sent_tasks)
    MailServer.objects.filter(pk=mail_server.pk).update(doveadm_port=None)
    with imap(dovecot, bert.address) as client:
        append(client, "INBOX", message("new mail"), (), DATE)

    assert scheduled(sent_tasks) == {bert.address}
    assert Repository.objects.get(mailbox=anna).checked_unchanged_at is not None


def backed_up_once(  # type: ignore[no-untyped-def]
    dovecot, mail_server, sent_tasks
) -> tuple[Mailbox, Repository, MailServer]:
    """A mailbox with mail, backed up by a scheduled pass; its repository; a copy of its
    server's row to point at ports where nothing listens."""
    anna = make_mailbox("anna")
    fill(dovecot, anna.address)
    scheduled(sent_tasks)
    return anna, Repository.objects.get(mailbox=anna), MailServer.objects.get(pk=mail_server.pk)


def test_a_mailbox_whose_state_cannot_be_read_is_backed_up(
    dovecot, mail_server, restore_side, sent_tasks
):
    anna, repository, server = backed_up_once(dovecot, mail_server, sent_tasks)
    server.doveadm_port = None
    server.imaps_port = 1  # nothing listens there either (workers speak IMAPS)

    assert unchanged_repositories(server, [(repository, anna.address)]) == set()


def test_a_server_whose_doveadm_api_fails_is_asked_over_imap(
    dovecot, mail_server, restore_side, sent_tasks
):
    anna, repository, server = backed_up_once(dovecot, mail_server, sent_tasks)
    server.doveadm_port = 1  # nothing listens there

    assert unchanged_repositories(server, [(repository, anna.address)]) == {repository.pk}
    with imap(dovecot, anna.address) as client:
        client.select_folder("INBOX")
        client.add_flags(client.search(), [b"$Seen-by-test"])
    assert unchanged_repositories(server, [(repository, anna.address)]) == set()
