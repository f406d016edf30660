"""Measure every mailbox now, instead of waiting for the next scheduled interval."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from mailboxes import polling
from mailboxes.models import PollRun
from mailserver.errors import MailServerError
from provider.celery import POLL, enqueue_after_commit, server_queue


class Command(BaseCommand):
    help = _(
        "Measure every mailbox of every mail server now and report what was measured: by the "
        "workers (waiting for them, up to --wait seconds), or in this process with --here."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--here", action="store_true", help=_("poll in this process instead of the workers")
        )
        parser.add_argument(
            "--wait",
            type=int,
            default=300,
            metavar="SECONDS",
            help=_("how long to wait for the workers (default 300; 0: queue and return)"),
        )

    def handle(self, *args: Any, here: bool, wait: int, **options: Any) -> None:
        runs = polling.poll_now()
        if not runs:
            raise CommandError(_("There is no mail server to poll; add one with mailserver_save."))
        if here:
            for run in runs:
                try:
                    polling.poll_server(run.pk)
                except MailServerError as exc:
                    self.stderr.write(f"{run.server}: {exc}")
        else:
            for run in runs:
                queue = server_queue(POLL, run.server.name)
                enqueue_after_commit("mailboxes.poll_server", run.pk, queue=queue)
            self.stdout.write(
                _("Poll of %(count)d mail server(s) queued for the workers.") % {"count": len(runs)}
            )
            if wait <= 0:
                return
            runs = self._wait(runs, wait)
        self._report(runs)

    def _wait(self, runs: list[PollRun], seconds: int) -> list[PollRun]:
        """Until every run has ended or time is up, showing progress on a terminal."""
        deadline = time.monotonic() + seconds
        ids = [run.pk for run in runs]
        while True:
            current = list(PollRun.objects.filter(pk__in=ids).select_related("server"))
            done = sum(r.mailboxes_done for r in current)
            total = sum(r.mailboxes_total for r in current)
            ended = all(r.status in (PollRun.Status.DONE, PollRun.Status.FAILED) for r in current)
            if self.stdout.isatty():
                self.stdout.write(f"\r{done}/{total}", ending="")
            if ended or time.monotonic() > deadline:
                if self.stdout.isatty():
                    self.stdout.write("")
                return current
            time.sleep(0.5)

    def _report(self, runs: list[PollRun]) -> None:
        failed = False
        for run in runs:
            run.refresh_from_db()
            if run.status == PollRun.Status.DONE:
                line = _("%(server)s: %(done)d of %(total)d mailboxes measured.")
            elif run.status == PollRun.Status.FAILED:
                line = _("%(server)s: failed after %(done)d of %(total)d mailboxes: %(error)s")
            else:
                line = _(
                    "%(server)s: not finished yet (%(done)d of %(total)d mailboxes); are the "
                    "workers running?"
                )
            self.stdout.write(
                line
                % {
                    "server": run.server.name,
                    "done": run.mailboxes_done,
                    "total": run.mailboxes_total,
                    "error": run.error,
                }
            )
            failed = failed or run.status != PollRun.Status.DONE
        if failed:
            raise CommandError(_("Some mail servers could not be polled."))
