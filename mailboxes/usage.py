"""Measured usage: asked of the mail server, stored with its history, never guessed.

A poll measures every active mailbox of one server for one interval slot (a ``PollRun``).
Samples are unique per (mailbox, run), so a redelivered or restarted run only measures
what is still missing, and a killed worker leaves whole chunks or nothing.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber, TruncDay, TruncHour
from django.utils import timezone
from django.utils.translation import gettext as _

from .mailserver import (
    MailboxUnknown,
    MailServerError,
    MailServerUnavailable,
    MasterLoginRejected,
    Usage,
    dovecot_users,
    read_usage,
)
from .models import FolderUsage, Health, Mailbox, MailServer, PollRun, UsageSample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    mailbox_id: int
    usage: Usage | None = None
    error: MailServerError | None = None


def current_slot(now: datetime | None = None) -> datetime:
    """The start of the polling interval ``now`` falls in: the identity of a scheduled poll."""
    interval = settings.POSTAMT_POLL_INTERVAL
    now = now or timezone.now()
    return datetime.fromtimestamp(now.timestamp() // interval * interval, tz=now.tzinfo)


def schedule_polls(now: datetime | None = None) -> list[PollRun]:
    """The run of this slot for every server; runs already finished are left alone."""
    slot = current_slot(now)
    runs = []
    for server in MailServer.objects.all():
        run, _created = PollRun.objects.get_or_create(server=server, slot=slot)
        if run.status != PollRun.Status.DONE:
            runs.append(run)
    return runs


def poll_server(run_id: int) -> PollRun | None:
    """Measure every active mailbox of the run's server not yet sampled in this run."""
    run = PollRun.objects.select_related("server").filter(pk=run_id).first()
    if run is None or run.status == PollRun.Status.DONE:
        return run
    server = run.server
    PollRun.objects.filter(pk=run.pk).update(
        status=PollRun.Status.RUNNING,
        attempts=F("attempts") + 1,
        started_at=run.started_at or timezone.now(),
    )
    pending = list(
        Mailbox.objects.filter(mail_server=server, status=Mailbox.Status.ACTIVE)
        .exclude(samples__run=run)
        .values_list("pk", "address")
    )
    total = Mailbox.objects.filter(mail_server=server, status=Mailbox.Status.ACTIVE).count()
    PollRun.objects.filter(pk=run.pk).update(mailboxes_total=total)

    succeeded = failed = 0
    if server.doveadm_port:
        pending = _compare_with_dovecot(server, run, pending)
    chunk: list[Outcome] = []
    server_error: MailServerUnavailable | None = None
    for outcome in _measure_all(server, pending):
        if isinstance(outcome.error, MailServerUnavailable):
            server_error = outcome.error
            break
        chunk.append(outcome)
        if len(chunk) >= settings.POSTAMT_POLL_CHUNK:
            succeeded, failed = _tally(_store(run, chunk), succeeded, failed)
            chunk = []
    succeeded, failed = _tally(_store(run, chunk), succeeded, failed)

    now = timezone.now()
    if server_error is not None:
        _mark_stale(server, run, str(server_error))
        _set_health(server, Health.FAILING, str(server_error), now)
        PollRun.objects.filter(pk=run.pk).update(status=PollRun.Status.FAILED, error=str(server_error))
        raise server_error
    if failed and not succeeded:
        # Every login refused: the master credentials are wrong, not every mailbox missing.
        message = (
            f"{server.name} refused the master login for every mailbox: the master password "
            f"is wrong, or this Dovecot serves another server name than {server.name!r}"
        )
        _mark_stale(server, run, message)
        _set_health(server, Health.AUTH_FAILED, message, now)
        PollRun.objects.filter(pk=run.pk).update(
            status=PollRun.Status.FAILED, error=message, finished_at=now
        )
        return run
    _set_health(server, Health.OK, "", now)
    PollRun.objects.filter(pk=run.pk).update(status=PollRun.Status.DONE, finished_at=now)
    run.refresh_from_db()
    return run


def _compare_with_dovecot(
    server: MailServer, run: PollRun, pending: list[tuple[int, str]]
) -> list[tuple[int, str]]:
    """Flag drift both ways from Dovecot's own user list; returns what is left to measure."""
    try:
        known = dovecot_users(server)
    except MailServerError as exc:
        log.warning("drift check skipped: %s", exc)
        return pending
    ours = set(
        Mailbox.objects.filter(mail_server=server).values_list("address", flat=True)
    )
    MailServer.objects.filter(pk=server.pk).update(unknown_users=sorted(set(known) - ours)[:500])
    missing = [(pk, address) for pk, address in pending if address not in known]
    message = _("the mail server does not know this mailbox")
    _store(run, [Outcome(pk, error=MailboxUnknown(str(message))) for pk, _a in missing])
    return [(pk, address) for pk, address in pending if address in known]


def _tally(result: tuple[int, int], succeeded: int, failed: int) -> tuple[int, int]:
    return succeeded + result[0], failed + result[1]


def _measure_all(server: MailServer, mailboxes: list[tuple[int, str]]) -> Iterable[Outcome]:
    """Measure in parallel, at most ``server.poll_concurrency`` sessions at once."""

    def measure(mailbox_id: int, address: str) -> Outcome:
        try:
            return Outcome(mailbox_id, usage=read_usage(server, address))
        except MailServerError as exc:
            return Outcome(mailbox_id, error=exc)

    with ThreadPoolExecutor(max_workers=server.poll_concurrency) as pool:
        futures = [pool.submit(measure, pk, address) for pk, address in mailboxes]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _store(run: PollRun | None, outcomes: list[Outcome]) -> tuple[int, int]:
    """Write one chunk in one transaction: samples, latest figures, folders and flags."""
    if not outcomes:
        return 0, 0
    now = timezone.now()
    good = [o for o in outcomes if o.usage is not None]
    bad = [o for o in outcomes if o.error is not None]
    with transaction.atomic():
        mailboxes = Mailbox.objects.in_bulk([o.mailbox_id for o in outcomes])
        updated = []
        for outcome in good:
            mailbox = mailboxes.get(outcome.mailbox_id)
            if mailbox is None:  # deleted while we measured
                continue
            assert outcome.usage is not None
            mailbox.used_bytes = outcome.usage.used_bytes
            mailbox.message_count = outcome.usage.message_count
            mailbox.usage_checked_at = now
            mailbox.usage_state = Mailbox.UsageState.OK
            mailbox.usage_error = ""
            updated.append(mailbox)
        for outcome in bad:
            mailbox = mailboxes.get(outcome.mailbox_id)
            if mailbox is None or not mailbox.is_active:  # deleted or suspended meanwhile
                continue
            # A refused master login for one mailbox while others work: Dovecot lacks it.
            mailbox.usage_state = (
                Mailbox.UsageState.DRIFT
                if isinstance(outcome.error, MasterLoginRejected | MailboxUnknown)
                else Mailbox.UsageState.STALE
            )
            mailbox.usage_error = str(outcome.error)[:500]
            updated.append(mailbox)
        Mailbox.objects.bulk_update(
            updated,
            ["used_bytes", "message_count", "usage_checked_at", "usage_state", "usage_error"],
        )
        measured = [m for m in updated if m.usage_state == Mailbox.UsageState.OK]
        UsageSample.objects.bulk_create(
            [
                UsageSample(
                    mailbox=m, run=run, taken_at=now, used_bytes=m.used_bytes,
                    message_count=m.message_count,
                )
                for m in measured
            ],
            ignore_conflicts=True,
        )
        FolderUsage.objects.filter(mailbox__in=measured).delete()
        FolderUsage.objects.bulk_create(
            [
                FolderUsage(
                    mailbox_id=o.mailbox_id, name=f.name, message_count=f.message_count,
                    size_bytes=f.size_bytes, measured_at=now,
                )
                for o in good
                if o.mailbox_id in {m.pk for m in measured}
                for f in o.usage.folders  # type: ignore[union-attr]
            ]
        )
        if run is not None:
            PollRun.objects.filter(pk=run.pk).update(
                mailboxes_done=F("mailboxes_done") + len(measured),
                mailboxes_failed=F("mailboxes_failed") + len(bad),
            )
    return len(measured), len(bad)


def _mark_stale(server: MailServer, run: PollRun, reason: str) -> None:
    """Keep the last figures of every mailbox this run could not measure, marked stale."""
    Mailbox.objects.filter(mail_server=server, status=Mailbox.Status.ACTIVE).exclude(
        samples__run=run
    ).update(usage_state=Mailbox.UsageState.STALE, usage_error=reason[:500])


def _set_health(server: MailServer, health: str, message: str, now: datetime) -> None:
    fields = {"health": health, "health_message": message, "last_poll_at": now}
    if health == Health.OK:
        fields["last_poll_ok_at"] = now
    MailServer.objects.filter(pk=server.pk).update(**fields)


def refresh_mailbox_usage(mailbox_id: int) -> Mailbox | None:
    """Measure one mailbox now ("refresh"); None if it is gone or not active."""
    mailbox = Mailbox.objects.select_related("mail_server").filter(pk=mailbox_id).first()
    if mailbox is None or not mailbox.is_active:
        return None
    try:
        usage = read_usage(mailbox.mail_server, mailbox.address)
    except MailServerUnavailable as exc:
        Mailbox.objects.filter(pk=mailbox.pk).update(
            usage_state=Mailbox.UsageState.STALE, usage_error=str(exc)[:500]
        )
        raise
    except MailServerError as exc:
        _store(None, [Outcome(mailbox.pk, error=exc)])
    else:
        _store(None, [Outcome(mailbox.pk, usage=usage)])
    mailbox.refresh_from_db()
    return mailbox


def request_refresh(mailbox: Mailbox) -> bool:
    """Claim a refresh slot; False while the last request is younger than the rate limit."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.POSTAMT_REFRESH_MIN_INTERVAL)
    claimed = Mailbox.objects.filter(
        Q(refresh_requested_at__isnull=True) | Q(refresh_requested_at__lt=cutoff), pk=mailbox.pk
    ).update(refresh_requested_at=now)
    if claimed:
        from .tasks import refresh_usage

        transaction.on_commit(lambda: refresh_usage.delay(mailbox.pk))
    return bool(claimed)


def thin_history(now: datetime | None = None) -> int:
    """Keep every sample for a week, the first of each hour for 90 days, then one a day."""
    now = now or timezone.now()
    deleted = 0
    for older_than, bucket in (
        (now - timedelta(days=settings.POSTAMT_HISTORY_FULL_DAYS), TruncHour("taken_at")),
        (now - timedelta(days=settings.POSTAMT_HISTORY_HOURLY_DAYS), TruncDay("taken_at")),
    ):
        ranked = UsageSample.objects.filter(taken_at__lt=older_than).annotate(
            rank=Window(RowNumber(), partition_by=[F("mailbox_id"), bucket], order_by=F("taken_at").asc())
        )
        surplus = list(ranked.filter(rank__gt=1).values_list("pk", flat=True))
        for start in range(0, len(surplus), 5000):
            deleted += UsageSample.objects.filter(pk__in=surplus[start : start + 5000]).delete()[0]
    return deleted


def forecast_days_until_full(mailbox: Mailbox, now: datetime | None = None) -> int | None:
    """Days until the quota is reached at the recent rate, or None when usage is not growing.

    A least-squares line through the last 14 days of samples: robust to a single spike,
    and it needs at least two samples a day apart to say anything.
    """
    now = now or timezone.now()
    samples = list(
        mailbox.samples.filter(taken_at__gte=now - timedelta(days=14)).values_list(
            "taken_at", "used_bytes"
        )
    )
    if len(samples) < 2 or (samples[-1][0] - samples[0][0]) < timedelta(days=1):
        return None
    t0 = samples[0][0]
    xs = [(t - t0).total_seconds() / 86400 for t, _ in samples]
    ys = [float(b) for _, b in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var_x = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var_x
    if slope <= 0 or mailbox.used_bytes is None:
        return None
    remaining = mailbox.quota_bytes - mailbox.used_bytes
    return max(0, int(remaining / slope))
