"""Hostile mail through the whole of backups, against the real Dovecot: generated and broken
headers, folder names and bodies go through backup → browse → download → restore, and every
step must work (no server error) and the restore must give back the very bytes.

Property-based (hypothesis), with few examples so that CI stays quick; the examples that once
broke something are pinned with ``@example``.
"""

from __future__ import annotations

import io
import itertools
import zipfile

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from imapclient import imap_utf7

from accounts.models import User
from backups import engine, selectors, services
from backups import restore as restore_engine
from backups.downloads import link_token, run_download
from backups.models import BackupJob, Blob, DownloadJob, JobStatus
from tests.backups import helpers
from tests.backups.helpers import DATE, imap, mailbox_contents
from tests.factories import make_domain, make_mailbox

pytestmark = pytest.mark.integration

backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
restore_side = helpers.restore_side

# --- What hostile mail looks like ----------------------------------------------------------

EOLS = st.sampled_from([b"\r\n", b"\n", b"\r"])
BROKEN_VALUES = st.sampled_from(
    [
        b".:",  # made the address parser raise AttributeError
        b'"',
        b"<@>",
        b"=?utf-8?q?\xff?=",
        b"=?x?b?===?=",
        b"(((",
        b",,,@",
        b'"a\\" <b@c>, :;',
        b"=?utf-8?b?" + b"A" * 3 + b"?=",
        b"\xc3\x28 caf\xe9",
        b"",
    ]
)
HEADER_NAMES = st.sampled_from(
    [b"From", b"To", b"Subject", b"Date", b"Message-ID", b"Content-Type", b"X-Odd"]
)
HEADER_VALUE = st.one_of(
    BROKEN_VALUES,
    st.binary(max_size=60).map(lambda value: value.replace(b"\r", b"").replace(b"\n", b"")),
    st.text(max_size=40).map(lambda value: value.replace("\r", "").replace("\n", "").encode()),
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    eol = draw(EOLS)
    headers = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUE), max_size=6))
    body = draw(st.binary(max_size=200))  # NUL, 8-bit, bare CR and LF, "From " lines
    if draw(st.booleans()):  # no header block at all: just bytes
        raw = body
    else:
        raw = b"".join(name + b": " + value + eol for name, value in headers) + eol + body
    return raw or b"x"  # Dovecot refuses a message of zero bytes


COMPONENT = (
    st.text(alphabet=st.sampled_from(list("abcXYZ09 -_&äßЖ€😀")), min_size=1, max_size=40)
    .map(str.strip)
    .filter(lambda name: bool(name) and name.lower() != "inbox")
)


def _fits(name: str) -> bool:
    """Maildir++ keeps the whole name in one directory name: 255 bytes, with its dot."""
    return max(len(imap_utf7.encode(name)), len(name.encode())) <= 250


FOLDER_NAMES = st.lists(COMPONENT, min_size=1, max_size=3).map("/".join).filter(_fits)
FLAGS = st.lists(st.sampled_from([b"\\Seen", b"\\Flagged", b"\\Answered", b"$Label1"]), unique=True)
MAILBOXES = st.dictionaries(
    st.one_of(st.just("INBOX"), FOLDER_NAMES),
    st.lists(st.tuples(messages(), FLAGS), min_size=1, max_size=3),
    min_size=1,
    max_size=3,
    # Dovecot compares folder names without regard to case only for INBOX; two names that
    # differ only there would be one folder.
).filter(lambda folders: len({name.upper() for name in folders}) == len(folders))

LONG_NAME = "a" * 200 + "/" + "b" * 49  # 250 bytes, the most Maildir++ takes

# --- The round trip -------------------------------------------------------------------------

_numbers = itertools.count()


@pytest.fixture
def world(dovecot, mail_server, restore_side, settings):  # type: ignore[no-untyped-def]
    settings.BACKUP_RESTORES_PER_CUSTOMER = settings.BACKUP_DOWNLOADS_PER_CUSTOMER = 10_000
    domain = make_domain()
    owner = User.objects.create_user("owner", customer=domain.customer)
    client = Client()
    client.force_login(owner)
    return {"dovecot": dovecot, "domain": domain, "owner": owner, "client": client}


def _fill(dovecot, address: str, folders) -> None:  # type: ignore[no-untyped-def]
    with imap(dovecot, address) as client:
        for name, contents in folders.items():
            if name != "INBOX":
                client.create_folder(name)
            for raw, flags in contents:
                client.append(name, raw, flags=tuple(flags), msg_time=DATE)


def _empty(dovecot, address: str, folders) -> None:  # type: ignore[no-untyped-def]
    """Every message gone, and the folders of the test too: the restore creates them again."""
    with imap(dovecot, address) as client:
        for flags, _delimiter, name in client.list_folders():
            if b"\\Noselect" in flags or b"\\NonExistent" in flags:
                continue
            client.select_folder(name)
            if uids := client.search():
                client.delete_messages(uids)
                client.expunge()
        client.select_folder("INBOX")
        for name in sorted(set(folders) - {"INBOX"}, key=lambda name: -name.count("/")):
            client.delete_folder(name)


def _mbox_count(mbox: bytes) -> int:
    """Messages in an mboxrd file: lines that start with "From " (the others are quoted)."""
    return sum(1 for line in mbox.split(b"\n") if line.startswith(b"From "))


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(folders=MAILBOXES)
@example(folders={"INBOX": [(b"From: .:\r\nSubject: Kaputt\r\n\r\nbody\r\n", [])]})
@example(folders={LONG_NAME: [(b"no headers, a NUL \x00 and a bare \r in it", [b"\\Seen"])]})
@example(folders={"Привет/&мир": [(b"Subject: caf\xe9\n\nFrom here\nFrom: .:\n", [])]})
def test_hostile_mail_survives_backup_browse_download_and_restore(world, folders):  # type: ignore[no-untyped-def]
    dovecot, client = world["dovecot"], world["client"]
    mailbox = make_mailbox(f"h{next(_numbers)}", domain=world["domain"])
    _fill(dovecot, mailbox.address, folders)
    before = mailbox_contents(dovecot, mailbox.address)

    job = BackupJob.objects.create(repository=services.repository_for(mailbox), requested_by="t")
    engine.run_backup(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.DONE, job.error
    snapshot = job.snapshot
    # Each message's display headers are kept sealed next to it, for browsing.
    blobs = Blob.objects.filter(repository=snapshot.repository)
    assert blobs.exists() and not blobs.filter(headers__isnull=True).exists()

    # Browse: every folder's page answers, whatever its messages' headers.
    listed = selectors.snapshot_folders(snapshot)
    assert {name for name, _count in listed} >= set(folders)
    for name, count in listed:
        url = reverse("portal_backups:browse", args=[snapshot.pk])
        page = client.get(url, {"folder": name})
        assert page.status_code == 200, name
        assert page.content.decode().count('name="messages"') == min(count, 50)

    # Download: a whole zip, one mbox per folder with each message once.
    asked = client.post(reverse("portal_backups:download", args=[snapshot.pk]))
    assert asked.status_code == 302
    download = DownloadJob.objects.get(pk=asked["Location"].rstrip("/").rsplit("/", 1)[1])
    run_download(download.pk)  # the worker's part
    download.refresh_from_db()
    assert download.status == JobStatus.DONE, download.error
    token = link_token(download)
    response = client.get(reverse("portal_backups:download_file", args=[download.pk, token]))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    counts = (_mbox_count(archive.read(entry)) for entry in archive.namelist())
    # (the empty folders, Drafts and the like, are in the zip as empty files)
    assert sorted(count for count in counts if count) == sorted(count for _, count in listed)

    # Restore into the emptied mailbox: the same folders, bytes, flags and dates come back.
    _empty(dovecot, mailbox.address, folders)
    restore = services.restore_request(snapshot=snapshot, scope="mailbox", actor=world["owner"])
    restore_engine.run_restore(restore.pk)
    restore.refresh_from_db()
    assert restore.status == JobStatus.DONE, restore.error
    after = mailbox_contents(dovecot, mailbox.address)
    assert after == before
    assert sum(len(contents) for contents in after.values()) == sum(
        len(contents) for contents in folders.values()
    )
