"""Quota warnings end to end: LMTP delivery, polling by a real worker, real SMTP."""

from __future__ import annotations

import smtplib
import threading
from datetime import timedelta
from email.message import EmailMessage

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from mailboxes import quota_warnings, usage
from mailboxes.models import MIB, Mailbox, QuotaWarning
from mailboxes.services import mailbox_set_quota
from mailboxes.tasks import poll_server, refresh_usage, send_pending_warnings
from tests.factories import make_customer, make_domain, make_mailbox
from tests.mailclients import imaps
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def mail_of(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@example.org"
    msg["To"] = "anna@example.org"
    msg["Subject"] = "filler"
    msg.set_content("x" * size)
    return msg.as_bytes()


_interval = iter(range(1, 1000))


def poll_now() -> None:
    """The scheduled poll of the next interval, run by the worker."""
    later = timezone.now() + timedelta(seconds=settings.POSTAMT_POLL_INTERVAL * next(_interval))
    run = usage.schedule_polls(later)[0]
    poll_server.delay(run.pk).get(timeout=30)


@pytest.mark.parametrize(
    ("language", "subject_80", "subject_95", "advice"),
    [
        ("en", "is 8", "is 9", "Empty the Trash and Junk folders"),
        ("de", "ist zu 8", "ist zu 9", "Leeren Sie den Papierkorb"),
    ],
)
def test_filling_a_real_mailbox_sends_exactly_the_expected_emails(
    dovecot,
    mail_server,
    celery_worker,
    deliver,
    smtp_server,
    language,
    subject_80,
    subject_95,
    advice,
):
    customer = make_customer("Bäckerei Müller", language=language)
    mailbox = make_mailbox("anna", domain=make_domain(customer), quota_bytes=MIB)

    deliver(mailbox.address, mail_of(500_000))  # ~49 %
    poll_now()
    deliver(mailbox.address, mail_of(340_000))  # ~82 %
    poll_now()
    poll_now()  # nothing new: no second email
    wait_for(lambda: len(smtp_server.messages) >= 1, "the emails", timeout=20)

    deliver(mailbox.address, mail_of(150_000))  # ~96 %: jumps over 90, warns 95 only
    poll_now()
    wait_for(lambda: len(smtp_server.messages) >= 2, "the emails", timeout=20)
    with pytest.raises(smtplib.SMTPDataError):  # as the warning said: more mail is refused
        deliver(mailbox.address, mail_of(100_000))
    poll_now()
    # The poll and its evaluation are over: no third warning was made, so none can be sent.
    assert QuotaWarning.objects.count() == 2

    wait_for(
        lambda: not QuotaWarning.objects.exclude(status=QuotaWarning.Status.SENT).exists(),
        "both warnings sent",
        timeout=20,
    )
    assert len(smtp_server.messages) == 2
    first, second = smtp_server.messages
    assert first["To"] == customer.contact_email
    assert subject_80 in first["Subject"] and "anna@" in first["Subject"]
    assert subject_95 in second["Subject"]
    text = first.get_body(("plain",)).get_content()
    assert advice in text
    assert first.get_body(("html",)) is not None
    assert [w.threshold for w in QuotaWarning.objects.order_by("pk")] == [80, 95]
    assert all(w.status == QuotaWarning.Status.SENT for w in QuotaWarning.objects.all())


def test_lowering_the_quota_warns_without_new_mail(
    dovecot, mail_server, celery_worker, deliver, smtp_server
):
    mailbox = make_mailbox("anna", quota_bytes=10 * MIB)
    deliver(mailbox.address, mail_of(950_000))
    refresh_usage.delay(mailbox.pk).get(timeout=30)
    assert smtp_server.messages == []

    mailbox_set_quota(mailbox=Mailbox.objects.get(pk=mailbox.pk), quota_bytes=MIB, actor="test")
    wait_for(lambda: len(smtp_server.messages) == 1, "the emails", timeout=20)
    assert "is 9" in smtp_server.messages[0]["Subject"]  # ~93 % of the new 1 MiB


def test_two_evaluations_at_once_send_one_email(dovecot, mail_server, celery_worker, smtp_server):
    mailbox = make_mailbox("anna", quota_bytes=MIB)
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=int(MIB * 0.9), usage_state=Mailbox.UsageState.OK
    )
    barrier = threading.Barrier(2)
    results: list[list[int]] = []

    def evaluate() -> None:
        barrier.wait()
        try:
            results.append(quota_warnings.evaluate(mailbox_ids=[mailbox.pk]))
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(len(r) for r in results) == [0, 1]
    assert QuotaWarning.objects.count() == 1  # one warning, and a warning is sent once
    wait_for(
        lambda: QuotaWarning.objects.get().status == QuotaWarning.Status.SENT,
        "the warning sent",
        timeout=20,
    )
    assert len(smtp_server.messages) == 1


def test_smtp_down_then_up_sends_once(dovecot, mail_server, celery_worker, smtp_server):
    mailbox = make_mailbox("anna", quota_bytes=MIB)
    Mailbox.objects.filter(pk=mailbox.pk).update(
        used_bytes=int(MIB * 0.85), usage_state=Mailbox.UsageState.OK
    )
    smtp_server.refuse = True
    [warning_id] = quota_warnings.evaluate(mailbox_ids=[mailbox.pk])
    wait_for(lambda: QuotaWarning.objects.get(pk=warning_id).error != "", "the refusal", timeout=20)
    warning = QuotaWarning.objects.get(pk=warning_id)
    assert warning.status == QuotaWarning.Status.PENDING and "451" in warning.error

    smtp_server.refuse = False
    QuotaWarning.objects.filter(pk=warning_id).update(
        created_at=warning.created_at.replace(year=2000), lease_until=None
    )
    send_pending_warnings.delay().get(timeout=30)  # the sweeper, as beat runs it
    wait_for(
        lambda: QuotaWarning.objects.get(pk=warning_id).status == QuotaWarning.Status.SENT,
        "the warning sent",
        timeout=20,
    )
    assert len(smtp_server.messages) == 1
    assert QuotaWarning.objects.get(pk=warning_id).attempts >= 2


def test_staff_digest_lists_full_mailboxes(mail_server, smtp_server, settings):
    settings.POSTAMT_STAFF_EMAILS = ["noc@hoster.example"]
    domain = make_domain(make_customer("Bäckerei Müller"), name="bäckerei.example")
    full = make_mailbox("anna", domain=domain, quota_bytes=MIB)
    fine = make_mailbox("bob", domain=domain, quota_bytes=MIB)
    Mailbox.objects.filter(pk=full.pk).update(used_bytes=MIB, usage_state="ok")
    Mailbox.objects.filter(pk=fine.pk).update(used_bytes=MIB // 2, usage_state="ok")

    assert quota_warnings.send_staff_digest() == 1

    [digest] = smtp_server.messages
    assert digest["To"] == "noc@hoster.example"
    assert "1 mailbox is full" in digest["Subject"]
    body = digest.get_body(("plain",)).get_content()
    assert "anna@bäckerei.example (Bäckerei Müller)" in body and "100 %" in body
    assert "bob@" not in body


def test_a_copy_goes_into_the_mailbox_only_while_it_has_room(
    dovecot, mail_server, celery_worker, deliver, smtp_server
):

    from tests.factories import PASSWORD

    customer = make_customer("Bäckerei Müller")
    customer.copy_warnings_to_mailbox = True
    customer.save()
    roomy = make_mailbox("anna", domain=make_domain(customer), quota_bytes=10 * MIB)
    full = make_mailbox("bob", domain=roomy.domain, quota_bytes=MIB)
    Mailbox.objects.filter(pk=roomy.pk).update(used_bytes=int(8.1 * MIB), usage_state="ok")
    Mailbox.objects.filter(pk=full.pk).update(used_bytes=MIB, usage_state="ok")

    quota_warnings.evaluate()
    wait_for(lambda: len(smtp_server.messages) == 2, "the emails", timeout=20)
    wait_for(
        lambda: QuotaWarning.objects.filter(mailbox=roomy, copied_to_mailbox=True).exists(),
        "the copy in the mailbox",
        timeout=20,
    )

    def inbox_subjects(address: str) -> list[bytes]:
        client = imaps(dovecot)
        client.login(address, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        uids = client.search()
        found = [v[b"ENVELOPE"].subject for v in client.fetch(uids, ["ENVELOPE"]).values()]
        client.logout()
        return found

    assert len(inbox_subjects(roomy.address)) == 1
    assert inbox_subjects(full.address) == []  # no room: only the contact address is told
    assert not QuotaWarning.objects.get(mailbox=full).copied_to_mailbox
