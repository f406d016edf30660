"""Poll every mail server now, instead of waiting for the next scheduled interval."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from mailboxes import quota_warnings, usage
from mailboxes.tasks import poll_all
from mailserver.errors import MailServerError


class Command(BaseCommand):
    help = "Measure every mailbox now: queue the poll for the workers, or run it here (--here)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--here", action="store_true", help="poll in this process and print the outcome"
        )

    def handle(self, *args: Any, here: bool, **options: Any) -> None:
        if not here:
            poll_all.delay()
            self.stdout.write("Poll queued for the workers.")
            return
        failed = False
        for run in usage.schedule_polls():
            try:
                done = usage.poll_server(run.pk)
            except MailServerError as exc:
                self.stderr.write(f"{run.server}: {exc}")
                failed = True
                continue
            assert done is not None
            if done.status == done.Status.DONE:
                quota_warnings.evaluate(server_id=done.server_id)
            self.stdout.write(
                f"{done.server}: {done.status}, {done.mailboxes_done} of "
                f"{done.mailboxes_total} mailboxes measured {done.error}".rstrip()
            )
            failed = failed or done.status != done.Status.DONE
        if failed:
            raise CommandError("some servers could not be polled")
