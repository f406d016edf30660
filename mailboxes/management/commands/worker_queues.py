"""``manage.py worker_queues``: the queues a Celery worker should consume, for ``-Q``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext as _

from mailboxes.selectors import worker_queues
from provider.celery import BACKUP, POLL
from provider.cli import usage_error


class Command(BaseCommand):
    # Scripts call it to start workers: a listing, no reason to refuse it.
    requires_system_checks: list[str] = []
    help = (
        "Print the Celery queues for a worker's -Q, comma-separated: every queue (one worker "
        "for everything), one kind's, or one mail server's (docs/operations.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--kind",
            choices=[POLL, BACKUP],
            help=_("Only polls or only backups: the shared queue and every server's."),
        )
        parser.add_argument(
            "--server",
            metavar="NAME",
            help=_("Only this mail server's queues, for a worker that caps its concurrency."),
        )

    def handle(self, *args: Any, kind: str | None, server: str | None, **options: Any) -> None:
        try:
            queues = worker_queues(kind=kind, server=server)
        except LookupError as exc:
            raise usage_error(str(exc)) from exc
        self.stdout.write(",".join(queues))
