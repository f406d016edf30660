"""Last logins per protocol as Dovecot records them, and the report of unused mailboxes.

Rows are written here the way Dovecot's dict writes them (login name, protocol, Unix time);
tests/integration/test_dovecot_logins.py has Dovecot write them for real.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import F
from django.utils import timezone, translation

from mailboxes.models import MIB, Mailbox, MailboxLogin
from mailboxes.selectors import (
    LAST_LOGIN_MIGRATION,
    last_login_tracked_since,
    not_logged_in_since,
    unused_mailboxes,
    with_last_login,
)
from mailboxes.services import mailbox_delete, mailbox_suspend
from tests.factories import make_domain, make_mailbox, make_plan

pytestmark = pytest.mark.django_db

# Whole seconds, as Dovecot records them; the report command measures from the real clock.
NOW = timezone.now().replace(microsecond=0)


def login(mailbox: Mailbox | str, protocol: str, at: datetime) -> None:
    """What Dovecot's dict-sql does on a login: insert, or update the existing row."""
    username = mailbox if isinstance(mailbox, str) else mailbox.address
    MailboxLogin.objects.update_or_create(
        username=username, protocol=protocol, defaults={"last_login": int(at.timestamp())}
    )


def created(mailbox: Mailbox, at: datetime) -> Mailbox:
    Mailbox.objects.filter(pk=mailbox.pk).update(created_at=at)
    mailbox.refresh_from_db()
    return mailbox


def used(mailbox: Mailbox, used_bytes: int | None) -> None:
    Mailbox.objects.filter(pk=mailbox.pk).update(used_bytes=used_bytes)


def tracking_began(at: datetime) -> None:
    app, name = LAST_LOGIN_MIGRATION
    MigrationRecorder.Migration.objects.filter(app=app, name=name).update(applied=at)


def annotated(mailbox: Mailbox) -> Mailbox:
    return with_last_login(Mailbox.objects.filter(pk=mailbox.pk)).get()


# --- with_last_login --------------------------------------------------------------------------


def test_each_protocol_has_its_own_last_login_and_last_login_is_the_later():
    anna = created(make_mailbox("anna"), NOW - timedelta(days=400))
    login(anna, "imap", NOW - timedelta(hours=2))
    login(anna, "pop3", NOW - timedelta(days=30))

    anna = annotated(anna)

    assert anna.last_imap_login == NOW - timedelta(hours=2)
    assert anna.last_pop3_login == NOW - timedelta(days=30)
    assert anna.last_login == NOW - timedelta(hours=2)


def test_a_mailbox_that_never_logged_in_has_none_and_is_recorded_since_its_creation():
    tracking_began(NOW - timedelta(days=1000))
    anna = annotated(make_mailbox("anna"))

    assert (anna.last_imap_login, anna.last_pop3_login, anna.last_login) == (None, None, None)
    assert anna.logins_recorded_since == anna.created_at


def test_a_mailbox_older_than_the_recording_is_recorded_since_the_recording_began():
    tracking_began(NOW - timedelta(days=10))
    anna = annotated(created(make_mailbox("anna"), NOW - timedelta(days=400)))

    assert anna.last_login is None
    assert anna.logins_recorded_since == NOW - timedelta(days=10)


def test_logins_of_a_deleted_mailbox_do_not_pass_to_a_new_one_at_the_same_address():
    old = make_mailbox("anna")
    address = old.address
    login(address, "pop3", timezone.now() - timedelta(days=3))
    mailbox_delete(mailbox=old, actor="test")
    new = make_mailbox("anna", domain=old.domain)
    assert new.address == address

    assert annotated(new).last_pop3_login is None
    login(address, "pop3", new.created_at.replace(microsecond=0))  # same second counts
    assert annotated(new).last_pop3_login == new.created_at.replace(microsecond=0)


def test_only_imap_and_pop3_count():
    anna = created(make_mailbox("anna"), NOW - timedelta(days=400))
    login(anna, "lmtp", NOW)  # were the plugin ever loaded for deliveries

    assert annotated(anna).last_login is None


def test_lists_can_sort_by_last_login_with_never_last():
    domain = make_domain()
    boxes = {n: created(make_mailbox(n, domain=domain), NOW - timedelta(days=400)) for n in "abc"}
    login(boxes["a"], "imap", NOW - timedelta(days=5))
    login(boxes["b"], "pop3", NOW - timedelta(days=1))

    ordered = with_last_login(Mailbox.objects.filter(domain=domain)).order_by(
        F("last_login").desc(nulls_last=True)
    )
    assert [m.local_part for m in ordered] == ["b", "a", "c"]


def test_not_logged_in_since_counts_a_login_at_the_moment_itself():
    domain = make_domain()
    anna = make_mailbox("anna", domain=domain)
    bert = make_mailbox("bert", domain=domain)
    since = NOW - timedelta(days=30)
    login(anna, "imap", since)
    login(bert, "imap", since - timedelta(seconds=1))

    assert list(not_logged_in_since(Mailbox.objects.filter(domain=domain), since)) == [bert]


def test_tracking_began_when_the_table_was_made():
    began = last_login_tracked_since()
    assert began is not None and began <= timezone.now()


# --- unused_mailboxes ---------------------------------------------------------------------------


@pytest.fixture
def boxes() -> dict[str, Mailbox]:
    """Four mailboxes a year old with different usage, and one created last week."""
    domain = make_domain()
    pop3 = make_plan(protocol="pop3", max_quota_bytes=100 * MIB)
    made = {
        "half": make_mailbox("half", domain=domain, quota_bytes=100 * MIB),
        "full-pop": make_mailbox("full-pop", domain=domain, plan=pop3, protocol="pop3",
                                 quota_bytes=10 * MIB),
        "unmeasured": make_mailbox("unmeasured", domain=domain),
        "used-imap": make_mailbox("used-imap", domain=domain),
        "young": make_mailbox("young", domain=domain),
    }  # fmt: skip
    for name, mailbox in made.items():
        created(mailbox, NOW - timedelta(days=7 if name == "young" else 365))
    used(made["half"], 50 * MIB)
    used(made["full-pop"], 9 * MIB)
    used(made["used-imap"], 99 * MIB)
    login(made["used-imap"], "imap", NOW - timedelta(days=2))
    login(made["half"], "imap", NOW - timedelta(days=40))
    login(made["full-pop"], "pop3", NOW - timedelta(days=200))
    return made


def test_unused_mailboxes_most_full_first_without_recent_or_young_ones(boxes):
    unused = list(unused_mailboxes(days=30, now=NOW))

    assert [m.local_part for m in unused] == ["full-pop", "half", "unmeasured"]
    assert unused[0].last_pop3_login == NOW - timedelta(days=200)
    assert unused[1].last_imap_login == NOW - timedelta(days=40)


def test_a_login_over_either_protocol_makes_a_mailbox_used(boxes):
    login(boxes["full-pop"], "imap", NOW - timedelta(days=1))  # e.g. before a protocol change

    assert "full-pop" not in [m.local_part for m in unused_mailboxes(days=30, now=NOW)]


def test_fewer_days_list_fewer_mailboxes(boxes):
    assert [m.local_part for m in unused_mailboxes(days=60, now=NOW)] == [
        "full-pop",
        "unmeasured",
    ]


def test_suspended_mailboxes_are_listed_they_still_fill_up(boxes):
    mailbox_suspend(mailbox=boxes["unmeasured"], actor="test")

    assert "unmeasured" in [m.local_part for m in unused_mailboxes(days=30, now=NOW)]


# --- manage.py unused_mailboxes ---------------------------------------------------------------


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    with translation.override("en"):
        call_command("unused_mailboxes", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_report_lists_unused_mailboxes_and_flags_pop3(boxes):
    tracking_began(NOW - timedelta(days=1000))

    out, err = run("--days", "30")

    lines = out.splitlines()
    assert err == ""
    assert lines[0].startswith("3 mailboxes without an IMAP or POP3 login since ")
    assert lines[1].split() == ["mailbox", "protocol", "used", "last", "IMAP", "last", "POP3",
                                "note"]  # fmt: skip
    full_pop, half, unmeasured = lines[2:]
    assert full_pop.startswith("full-pop@")
    assert "9.0\xa0MB of 10.0\xa0MB (90%)" in full_pop
    assert full_pop.endswith("POP3: mail is not being collected")
    assert half.startswith("half@") and "50.0\xa0MB of 100.0\xa0MB (50%)" in half
    assert "never" in half  # POP3: never
    assert "not measured yet" in unmeasured
    assert unmeasured.count("never") == 2


def test_the_report_says_since_when_logins_are_recorded(boxes):
    tracking_began(NOW - timedelta(days=5))

    out, err = run("--days", "30")

    assert "Logins are recorded since " in err
    assert "none since " in out and "never" not in out


def test_the_report_says_when_every_mailbox_was_used():
    tracking_began(NOW - timedelta(days=1000))
    anna = created(make_mailbox("anna"), NOW - timedelta(days=100))
    login(anna, "imap", NOW)

    out, _err = run("--days", "30")

    assert out.startswith("Every mailbox older than 30 days has logged in since ")


def test_the_report_as_json(boxes):
    out, _err = run("--days", "100", "--json")

    data = json.loads(out)
    assert [row["address"].split("@")[0] for row in data] == ["full-pop", "unmeasured"]
    assert data[0]["protocol"] == "pop3" and data[0]["used_bytes"] == 9 * MIB
    assert data[0]["last_imap_login"] is None
    assert datetime.fromisoformat(data[0]["last_pop3_login"]) == NOW - timedelta(days=200)


@pytest.mark.parametrize("days", ["0", "-3", "many"])
def test_the_report_wants_a_positive_number_of_days(days):
    with pytest.raises(CommandError, match="is not a number of days"):
        run("--days", days)
