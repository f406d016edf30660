"""A poll is a measurement of every mailbox of a server followed by the warnings it may
trigger: one place for both, used by the scheduled tasks and by ``manage.py poll_usage``."""

from __future__ import annotations

from django.utils import timezone

from . import quota_warnings, usage
from .models import Mailbox, MailServer, PollRun


def poll_now() -> list[PollRun]:
    """A run for every server, starting now, whatever the scheduled slot has done already.

    Its slot is this instant rather than the interval's start: a scheduled run that finished
    earlier in the interval must not make "measure now" a no-op.
    """
    now = timezone.now()
    return [PollRun.objects.create(server=server, slot=now) for server in MailServer.objects.all()]


def poll_server(run_id: int) -> PollRun | None:
    """Measure the run's server; once every mailbox is measured, warn whom it concerns."""
    run = usage.poll_server(run_id)
    if run is not None and run.status == PollRun.Status.DONE:
        quota_warnings.evaluate(server_id=run.server_id)
    return run


def refresh_mailbox(mailbox_id: int) -> Mailbox | None:
    """Measure one mailbox now, then warn if that crossed a threshold."""
    mailbox = usage.refresh_mailbox_usage(mailbox_id)
    if mailbox is not None:
        quota_warnings.evaluate(mailbox_ids=[mailbox.pk])
    return mailbox
