"""Measured usage: asked of the mail server, stored with its history, never guessed.

A poll measures every active mailbox of one server for one interval slot (a ``PollRun``).
Samples are unique per (mailbox, run), so a redelivered or restarted run only measures
what is still missing, and a killed worker leaves whole chunks or nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, Sum, Window
from django.db.models.functions import Coalesce, RowNumber, TruncDay, TruncHour
from django.utils import timezone
from django.utils.translation import gettext as _

from mailserver.doveadm import doveadm_folders, doveadm_folders_matching, doveadm_users
from mailserver.errors import (
    MailboxUnknown,
    MailServerError,
    MailServerUnavailable,
    MasterLoginRejected,
)
from mailserver.imap import master_imap_probe, read_usage
from mailserver.storage import purge_storage
from mailserver.usage import Usage
from provider.celery import enqueue_after_commit

from .logins import copy_last_logins
from .models import (
    FolderUsage,
    Health,
    Mailbox,
    MailServer,
    PollRun,
    ServerUsageSample,
    StoragePurge,
    UsageSample,
)

log = logging.getLogger(__name__)

THIN_MAILBOXES_PER_STATEMENT = 500


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
    active = Mailbox.objects.filter(mail_server=server, status=Mailbox.Status.ACTIVE)
    pending = list(active.exclude(samples__run=run).values_list("pk", "address"))
    PollRun.objects.filter(pk=run.pk).update(mailboxes_total=active.count())

    measured = refused = 0
    failure: MailServerError | None = None
    chunk: list[Outcome] = []
    try:
        for outcome in _outcomes(server, pending):
            if isinstance(outcome.error, MailServerUnavailable):
                failure = outcome.error
                break
            chunk.append(outcome)
            if len(chunk) >= settings.POSTAMT_POLL_CHUNK:
                measured += _store(run, chunk)
                refused += _count_refused(chunk)
                chunk = []
    except MasterLoginRejected as exc:  # the batch path's probe: credentials, not a mailbox
        failure = exc
    measured += _store(run, chunk)
    refused += _count_refused(chunk)

    now = timezone.now()
    if isinstance(failure, MailServerUnavailable):
        _fail(server, run, Health.FAILING, str(failure), now)
        raise failure
    if failure is None and refused and not measured:
        # Every login refused: the master credentials are wrong, not every mailbox missing.
        failure = MasterLoginRejected(
            f"{server.name} refused the master login for every mailbox: the master password "
            f"is wrong, or this Dovecot serves another server name than {server.name!r}"
        )
    if failure is not None:
        _fail(server, run, Health.AUTH_FAILED, str(failure), now)
        return run
    _set_health(server, Health.OK, "", now)
    with transaction.atomic():
        # Claimed first: a run delivered twice records its totals once.
        if (
            PollRun.objects.filter(pk=run.pk)
            .exclude(status=PollRun.Status.DONE)
            .update(status=PollRun.Status.DONE, finished_at=now)
        ):
            record_server_usage(server, now)
    copy_last_logins(server)
    run.refresh_from_db()
    return run


def _outcomes(server: MailServer, pending: list[tuple[int, str]]) -> Iterator[Outcome]:
    """The batch path where the server offers it, else one IMAP session per mailbox."""
    if server.doveadm_port:
        done: set[int] = set()
        try:
            for outcome in _measure_batch(server, pending):
                done.add(outcome.mailbox_id)
                yield outcome
            return
        except MailServerUnavailable as exc:
            yield Outcome(0, error=exc)
            return
        except MasterLoginRejected:
            raise
        except MailServerError as exc:
            log.warning("%s: doveadm batch path failed, polling over IMAP: %s", server.name, exc)
            pending = [(pk, address) for pk, address in pending if pk not in done]
    yield from _measure_all(server, pending)


def _count_refused(outcomes: list[Outcome]) -> int:
    return sum(isinstance(o.error, MasterLoginRejected) for o in outcomes)


def _fail(server: MailServer, run: PollRun, health: str, reason: str, now: datetime) -> None:
    _mark_stale(server, run, reason)
    _set_health(server, health, reason, now)
    PollRun.objects.filter(pk=run.pk).update(
        status=PollRun.Status.FAILED, error=reason, finished_at=now
    )


def _measure_batch(server: MailServer, pending: list[tuple[int, str]]) -> Iterator[Outcome]:
    """The doveadm HTTP path: the mailboxes in one request per user mask (see
    ``user_masks``), ``POSTAMT_POLL_DOVEADM_REQUESTS`` at once, and Dovecot's own user list
    beside them for the users Postamt lacks. Each request is a doveadm process of its own, so
    the server measures on several cores, and each answer is stored while the next ones are
    measured.

    One master login is still tried, so a broken master password (which the workers'
    backups depend on) is caught even when no mailbox needs IMAP."""
    unknown = MailboxUnknown(str(_("the mail server does not know this mailbox")))
    no_folders = Usage(used_bytes=0, message_count=0, limit_bytes=None, folders=())
    probed = False
    known: set[str] | None = None
    pks = {address: pk for pk, address in pending}
    pool = ThreadPoolExecutor(max_workers=settings.POSTAMT_POLL_DOVEADM_REQUESTS)
    try:
        listed = pool.submit(doveadm_users, server)
        futures = {
            pool.submit(_measure_masked, server, mask, addresses): addresses
            for mask, addresses in user_masks(list(pks), settings.POSTAMT_POLL_DOVEADM_REQUESTS)
        }
        for future in as_completed(futures):
            measured = future.result()
            if known is None:
                known = {user.lower() for user in listed.result()}
            for address in futures[future]:
                # Only the users this mask was asked for: it may match others as well.
                usage = measured.get(
                    address.lower(), no_folders if address.lower() in known else None
                )
                if usage is None or isinstance(usage, MailServerError):
                    yield Outcome(pks[address], error=usage or unknown)
                    continue
                if not probed:
                    probed = True
                    _probe_master_login(server, address)
                yield Outcome(pks[address], usage=usage)
        ours = set(Mailbox.objects.filter(mail_server=server).values_list("address", flat=True))
        unknown_users = sorted(listed.result() - ours)[:500]
        MailServer.objects.filter(pk=server.pk).update(unknown_users=unknown_users)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# Characters a mask cannot name as themselves: doveadm's wildcards, and the backslash that
# some Dovecot versions read as an escape.
_NOT_LITERAL_IN_MASKS = frozenset("*?\\")


def user_masks(addresses: list[str], requests: int) -> list[tuple[str, list[str]]]:
    """doveadm user masks that together measure each of ``addresses`` exactly once, each with
    the addresses it is asked for, largest first (so ``requests`` at once finish together).

    One request with ``*`` (every user, doveadm's own iteration) where ``requests`` is 1.
    Else one mask per last character of the local part, case-insensitive like doveadm's
    matching: ``*7@*``, ``*a@*``. A doveadm request runs one masked command (a second one
    in the same request fails once the first has dropped privileges), so each mask is a
    request of its own. An address whose local part ends in a character a mask cannot name
    (a wildcard, a backslash, anything not ASCII) gets a mask of its own: itself with that
    character as ``?``. A mask may also match users not asked for (ones Dovecot alone lists,
    or mailboxes already measured in this run): the caller keeps only those it asked for.
    """
    if requests <= 1:
        return [("*", addresses)] if addresses else []
    groups: dict[str, list[str]] = defaultdict(list)
    for address in addresses:
        local, _at, domain = address.lower().rpartition("@")
        last = local[-1:]
        if last.isascii() and last and last not in _NOT_LITERAL_IN_MASKS:
            groups[f"*{last}@*"].append(address)
        else:
            groups[f"{local[:-1]}?@{domain}"].append(address)
    return sorted(groups.items(), key=lambda group: -len(group[1]))


def _measure_masked(
    server: MailServer, mask: str, addresses: list[str]
) -> dict[str, Usage | MailServerError | None]:
    """One mask's users, keyed in lower case. Where doveadm cannot read one of them, the
    whole masked command fails: its users are then measured one command each, so only that
    one mailbox stays stale."""
    try:
        return dict(doveadm_folders_matching(server, mask))
    except MailServerUnavailable:
        raise
    except MailServerError as exc:
        log.warning("%s: doveadm failed for %s, one command per user: %s", server.name, mask, exc)
        return {
            address.lower(): usage for address, usage in doveadm_folders(server, addresses).items()
        }


def _probe_master_login(server: MailServer, address: str) -> None:
    try:
        master_imap_probe(server, address)
    except MasterLoginRejected as exc:
        raise MasterLoginRejected(
            f"{server.name} refused the master login for {address}, "
            f"a mailbox it lists: the master password is wrong"
        ) from exc


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


def _store(run: PollRun | None, outcomes: list[Outcome]) -> int:
    """Write one chunk in one transaction: samples, latest figures, folders and flags.

    Most mailboxes do not change between two polls, so only changed figures and folder lists
    are rewritten; everything measured gets its sample and its check time. Returns how many
    mailboxes were measured.
    """
    if not outcomes:
        return 0
    now = timezone.now()
    with transaction.atomic():
        mailboxes = Mailbox.objects.in_bulk([o.mailbox_id for o in outcomes])
        # Deleted while we measured, or suspended meanwhile: nothing to say about those.
        current = [(o, mailboxes[o.mailbox_id]) for o in outcomes if o.mailbox_id in mailboxes]
        measured = [(o.usage, m) for o, m in current if o.usage is not None]
        failed = [(o.error, m) for o, m in current if o.error is not None and m.is_active]

        changed = []
        for usage, mailbox in measured:
            if (mailbox.used_bytes, mailbox.message_count) != (
                usage.used_bytes,
                usage.message_count,
            ):
                mailbox.used_bytes, mailbox.message_count = usage.used_bytes, usage.message_count
                changed.append(mailbox)
        Mailbox.objects.bulk_update(changed, ["used_bytes", "message_count"])
        Mailbox.objects.filter(pk__in=[m.pk for _u, m in measured]).update(
            usage_checked_at=now, usage_state=Mailbox.UsageState.OK, usage_error=""
        )
        for state in (Mailbox.UsageState.DRIFT, Mailbox.UsageState.STALE):
            for reason in {str(e)[:500] for e, _m in failed if _state_for(e) == state}:
                Mailbox.objects.filter(
                    pk__in=[m.pk for e, m in failed if str(e)[:500] == reason]
                ).update(usage_state=state, usage_error=reason)

        UsageSample.objects.bulk_create(
            [
                UsageSample(
                    mailbox=m,
                    run=run,
                    taken_at=now,
                    used_bytes=u.used_bytes,
                    message_count=u.message_count,
                )
                for u, m in measured
            ],
            ignore_conflicts=True,
        )
        _replace_changed_folders(measured, now)
        if run is not None:
            PollRun.objects.filter(pk=run.pk).update(
                mailboxes_done=F("mailboxes_done") + len(measured),
                mailboxes_failed=F("mailboxes_failed") + len(failed),
            )
    return len(measured)


def _state_for(error: MailServerError) -> str:
    # A refused master login for one mailbox while others work: Dovecot lacks it.
    if isinstance(error, MasterLoginRejected | MailboxUnknown):
        return Mailbox.UsageState.DRIFT
    return Mailbox.UsageState.STALE


def _replace_changed_folders(measured: list[tuple[Usage, Mailbox]], now: datetime) -> None:
    stored: dict[int, set[tuple[str, int, int]]] = defaultdict(set)
    for row in FolderUsage.objects.filter(mailbox__in=[m for _u, m in measured]).values_list(
        "mailbox_id", "name", "message_count", "size_bytes"
    ):
        stored[row[0]].add(row[1:])
    replace = {
        m.pk: u
        for u, m in measured
        if stored[m.pk] != {(f.name, f.message_count, f.size_bytes) for f in u.folders}
    }
    FolderUsage.objects.filter(mailbox_id__in=list(replace)).delete()
    FolderUsage.objects.bulk_create(
        FolderUsage(
            mailbox_id=pk,
            name=f.name,
            message_count=f.message_count,
            size_bytes=f.size_bytes,
            measured_at=now,
        )
        for pk, usage in replace.items()
        for f in usage.folders
    )


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
        enqueue_after_commit("mailboxes.refresh_usage", mailbox.pk)
    return bool(claimed)


def pending_refreshes(now: datetime | None = None) -> list[int]:
    """ "Refresh now" requests not measured after a minute (their task was lost, e.g. to a
    broker outage): the sweeper's. Older than an hour they are moot; the poll has run since."""
    now = now or timezone.now()
    return list(
        Mailbox.objects.filter(
            refresh_requested_at__lt=now - timedelta(minutes=1),
            refresh_requested_at__gt=now - timedelta(hours=1),
        )
        .filter(
            Q(usage_checked_at__isnull=True) | Q(usage_checked_at__lt=F("refresh_requested_at"))
        )
        .values_list("pk", flat=True)[:500]
    )


def thin_history(now: datetime | None = None) -> int:
    """Keep every sample for a week, the first of each hour for 90 days, then one a day.

    A few hundred mailboxes per statement: a run after a long pause deletes a lot, and this
    keeps each transaction short and the surplus in the database instead of in memory."""
    now = now or timezone.now()
    deleted = 0
    mailbox_ids = list(Mailbox.objects.order_by("pk").values_list("pk", flat=True))
    for older_than, bucket in (
        (now - timedelta(days=settings.POSTAMT_HISTORY_FULL_DAYS), TruncHour("taken_at")),
        (now - timedelta(days=settings.POSTAMT_HISTORY_HOURLY_DAYS), TruncDay("taken_at")),
    ):
        for start in range(0, len(mailbox_ids), THIN_MAILBOXES_PER_STATEMENT):
            chunk = mailbox_ids[start : start + THIN_MAILBOXES_PER_STATEMENT]
            ranked = UsageSample.objects.filter(
                mailbox_id__in=chunk, taken_at__lt=older_than
            ).annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("mailbox_id"), bucket],
                    order_by=F("taken_at").asc(),
                )
            )
            surplus = ranked.filter(rank__gt=1).values("pk")
            deleted += UsageSample.objects.filter(pk__in=surplus).delete()[0]
        # The servers' totals, a row per poll: few enough for one statement.
        ranked_totals = ServerUsageSample.objects.filter(taken_at__lt=older_than).annotate(
            rank=Window(RowNumber(), partition_by=[F("server_id"), bucket], order_by="taken_at")
        )
        surplus_totals = ranked_totals.filter(rank__gt=1).values("pk")
        deleted += ServerUsageSample.objects.filter(pk__in=surplus_totals).delete()[0]
    return deleted


def record_server_usage(server: MailServer, now: datetime) -> ServerUsageSample:
    """The server's totals after a poll, from its mailboxes' latest figures (one aggregate)."""
    totals = Mailbox.objects.filter(mail_server=server).aggregate(
        used=Coalesce(Sum("used_bytes"), 0),
        allocated=Coalesce(Sum("quota_bytes"), 0),
        count=Count("pk"),
    )
    return ServerUsageSample.objects.create(
        server=server,
        taken_at=now,
        used_bytes=totals["used"],
        allocated_bytes=totals["allocated"],
        mailbox_count=totals["count"],
    )


def purge_deleted_mailbox(purge_id: int) -> bool:
    """Remove a deleted mailbox's mail where this machine holds it; idempotent."""
    purge = (
        StoragePurge.objects.select_related("server")
        .filter(pk=purge_id, done_at__isnull=True)
        .first()
    )
    if purge is None:
        return False
    StoragePurge.objects.filter(pk=purge.pk).update(attempts=F("attempts") + 1)
    try:
        removed = purge_storage(purge.server, purge.storage_path)
    except MailServerError as exc:
        StoragePurge.objects.filter(pk=purge.pk).update(error=str(exc))
        return False
    if not removed:
        StoragePurge.objects.filter(pk=purge.pk).update(
            error="the mail lives on another machine: remove it there"
        )
        return False
    StoragePurge.objects.filter(pk=purge.pk).update(done_at=timezone.now(), error="")
    return True


def pending_purges() -> list[int]:
    return list(
        StoragePurge.objects.filter(done_at__isnull=True, attempts__lt=5).values_list(
            "pk", flat=True
        )[:500]
    )
