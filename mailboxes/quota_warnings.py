"""Quota warnings: once per threshold crossed, never a flood, never from missing data.

Evaluation is set-based: one query per plan finds the few mailboxes whose level changes, and
one conditional UPDATE per kind of change claims them. Only the evaluator whose UPDATE moved a
row (it leaves its ``warning_claim`` token there) creates the warning, so two evaluators at
once send one email. Emails are sent after commit, each warning row leased before SMTP.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Case, F, IntegerField, Q, Value, When
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import User
from mailserver.errors import MailServerError
from mailserver.imap import append_message
from provider.celery import enqueue_after_commit
from provider.emails import render_email
from webhooks import events

from .event_data import mailbox_data
from .forecast import forecast_days_until_full
from .models import FULL_PERCENT, Mailbox, Plan, QuotaWarning

log = logging.getLogger(__name__)
FULL = FULL_PERCENT
SEND_BATCH = 50


def _level_case(thresholds: list[int], offset: int = 0) -> Case:
    """The highest threshold t with usage >= (t - offset) % of the quota, else 0."""
    return Case(
        *[
            When(used_x100__gte=F("quota_bytes") * (t - offset), then=Value(t))
            for t in reversed(thresholds)
        ],
        default=Value(0),
        output_field=IntegerField(),
    )


def evaluate(
    *,
    mailbox_ids: Iterable[int] | None = None,
    server_id: int | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Move warning levels to match current usage; returns the ids of warnings to send."""
    now = now or timezone.now()
    hysteresis = settings.POSTAMT_WARNING_HYSTERESIS
    reminder_cutoff = now - timedelta(hours=settings.POSTAMT_WARNING_REMINDER_HOURS)
    # Stale, missing or drifting usage neither triggers nor clears a warning.
    measured = Mailbox.objects.filter(
        status=Mailbox.Status.ACTIVE, usage_state=Mailbox.UsageState.OK, used_bytes__isnull=False
    )
    if mailbox_ids is not None:
        measured = measured.filter(pk__in=list(mailbox_ids))
    if server_id is not None:
        measured = measured.filter(mail_server_id=server_id)

    transitions: dict[tuple[int, int, str], list[int]] = defaultdict(list)
    for plan in Plan.objects.filter(pk__in=measured.values("plan_id")):
        thresholds = plan.thresholds
        if not thresholds:
            continue
        top = thresholds[-1]
        rows = (
            measured.filter(plan=plan)
            .annotate(used_x100=F("used_bytes") * 100)
            .annotate(reached=_level_case(thresholds), held=_level_case(thresholds, hysteresis))
            .filter(
                Q(reached__gt=F("warning_level"))
                | Q(held__lt=F("warning_level"))
                | Q(warning_level=top, reached=top, warning_sent_at__lt=reminder_cutoff)
            )
            .values_list("pk", "warning_level", "reached", "held")
        )
        for pk, level, reached, held in rows:
            if reached > level:  # crossed upwards: announce only the highest threshold
                transitions[(level, reached, QuotaWarning.Kind.WARNING)].append(pk)
            elif held < level:  # fell below threshold minus hysteresis: re-arm quietly
                transitions[(level, max(reached, held), "rearm")].append(pk)
            else:
                transitions[(level, level, QuotaWarning.Kind.REMINDER)].append(pk)
    if not transitions:
        return []

    token = uuid.uuid4()
    with transaction.atomic():
        for (old, new, kind), ids in transitions.items():
            for start in range(0, len(ids), 5000):
                claim = Mailbox.objects.filter(pk__in=ids[start : start + 5000], warning_level=old)
                changes: dict[str, object] = {"warning_level": new}
                if kind == QuotaWarning.Kind.REMINDER:
                    claim = claim.filter(warning_sent_at__lt=reminder_cutoff)
                if kind != "rearm":
                    changes.update(warning_claim=token, warning_sent_at=now)
                claim.update(**changes)
        claimed = list(
            Mailbox.objects.filter(warning_claim=token).select_related("domain__customer")
        )
        kind_of = {pk: kind for (_o, _n, kind), ids in transitions.items() for pk in ids}
        warnings = _create_warnings(claimed, kind_of)
        _emit_crossings(claimed, kind_of)
        ids = [w.pk for w in warnings]
        for start in range(0, len(ids), SEND_BATCH):
            # Unsent rows stay pending: the sweeper (send_pending_warnings) is the backstop.
            enqueue_after_commit("mailboxes.send_quota_warnings", ids[start : start + SEND_BATCH])
    return ids


def _create_warnings(claimed: list[Mailbox], kind_of: dict[int, str]) -> list[QuotaWarning]:
    warnings = []
    for mailbox in claimed:
        customer = mailbox.domain.customer
        if customer.only_full_warnings and mailbox.warning_level < FULL:
            continue  # the customer opted out of the early warnings
        assert mailbox.used_bytes is not None  # evaluate() claims only measured mailboxes
        warnings.append(
            QuotaWarning(
                mailbox=mailbox,
                kind=kind_of[mailbox.pk],
                threshold=mailbox.warning_level,
                used_bytes=mailbox.used_bytes,
                quota_bytes=mailbox.quota_bytes,
                recipient=customer.contact_email,
                language=customer.language,
            )
        )
    return QuotaWarning.objects.bulk_create(warnings, batch_size=2000)


def _emit_crossings(claimed: list[Mailbox], kind_of: dict[int, str]) -> None:
    """Webhook events for the thresholds crossed upwards (not the daily reminders): for the
    hoster, whatever the customer chose for the emails."""
    crossed: dict[str, list[dict[str, object]]] = {
        events.QUOTA_THRESHOLD_CROSSED: [],
        events.QUOTA_FULL: [],
    }
    for mailbox in claimed:
        if kind_of[mailbox.pk] != QuotaWarning.Kind.WARNING:
            continue
        event = (
            events.QUOTA_FULL if mailbox.warning_level >= FULL else events.QUOTA_THRESHOLD_CROSSED
        )
        crossed[event].append(
            {
                "mailbox": mailbox_data(mailbox),
                "threshold_percent": mailbox.warning_level,
                "used_bytes": mailbox.used_bytes,
                "quota_bytes": mailbox.quota_bytes,
            }
        )
    for event, items in crossed.items():
        if items:
            events.emit_many(event, items)


def lease(warning_id: int, seconds: int = 300) -> QuotaWarning | None:
    """Take a pending warning for sending; None if it is sent or another sender holds it."""
    now = timezone.now()
    taken = QuotaWarning.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        pk=warning_id,
        status=QuotaWarning.Status.PENDING,
    ).update(lease_until=now + timedelta(seconds=seconds), attempts=F("attempts") + 1)
    if not taken:
        return None
    return QuotaWarning.objects.select_related(
        "mailbox__domain__customer", "mailbox__mail_server"
    ).get(pk=warning_id)


def pending_warning_ids(older_than: timedelta = timedelta(minutes=5)) -> list[int]:
    """Warnings whose task was lost or failed: the sweeper sends them again."""
    cutoff = timezone.now() - older_than
    return list(
        QuotaWarning.objects.filter(status=QuotaWarning.Status.PENDING, created_at__lt=cutoff)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=timezone.now()))
        .values_list("pk", flat=True)[:1000]
    )


def build_email(warning: QuotaWarning) -> EmailMultiAlternatives:
    """Subject, plain text and HTML in the customer's language."""
    mailbox = warning.mailbox
    with translation.override(warning.language):
        used, quota = filesizeformat(warning.used_bytes), filesizeformat(warning.quota_bytes)
    context = {
        "warning": warning,
        "mailbox": mailbox,
        "customer": mailbox.domain.customer,
        "used": used,
        "quota": quota,
        "percent": warning.percent,
        "full": warning.percent >= FULL,
        "level": mailbox.plan.usage_level(warning.percent),
        "days_until_full": warning.days_until_full,
        "portal_url": settings.SITE_URL.rstrip("/") + reverse("home"),
    }
    message = render_email(
        "quota_warning", context, to=[warning.recipient], language=warning.language
    )
    # Stable across retries: a resent warning is recognisably the same message.
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(">") or "postamt"
    message.extra_headers["Message-ID"] = f"<quota-warning-{warning.pk}@{domain}>"
    return message


def send(warning_id: int) -> bool:
    """Send one warning unless it is sent already; SMTP errors propagate for a retry."""
    warning = lease(warning_id)
    if warning is None:
        return False
    mailbox = warning.mailbox
    if warning.days_until_full is None:
        warning.days_until_full = forecast_days_until_full(mailbox)
    message = build_email(warning)
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        QuotaWarning.objects.filter(pk=warning.pk).update(error=str(exc)[:1000], lease_until=None)
        raise
    QuotaWarning.objects.filter(pk=warning.pk).update(
        status=QuotaWarning.Status.SENT,
        sent_at=timezone.now(),
        error="",
        days_until_full=warning.days_until_full,
    )
    if mailbox.domain.customer.copy_warnings_to_mailbox:
        _copy_into_mailbox(warning, message)
    return True


def _copy_into_mailbox(warning: QuotaWarning, message: EmailMultiAlternatives) -> None:
    """Best effort, and only while the copy fits: a full mailbox would refuse it anyway."""
    raw = message.message().as_bytes()
    mailbox = warning.mailbox
    if (mailbox.used_bytes or 0) + len(raw) >= mailbox.quota_bytes:
        return
    try:
        append_message(mailbox.mail_server, mailbox.address, "INBOX", raw)
    except MailServerError as exc:
        log.info("warning %s not copied into %s: %s", warning.pk, mailbox.address, exc)
        return
    QuotaWarning.objects.filter(pk=warning.pk).update(copied_to_mailbox=True)


def staff_recipients() -> list[str]:
    if settings.POSTAMT_STAFF_EMAILS:
        return list(settings.POSTAMT_STAFF_EMAILS)
    return list(
        User.objects.filter(is_staff=True, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )


def full_mailboxes() -> list[Mailbox]:
    """Mailboxes at or above their plan's top threshold, fullest first."""
    result: list[Mailbox] = []
    for plan in Plan.objects.all():
        thresholds = plan.thresholds
        if not thresholds:
            continue
        result.extend(
            Mailbox.objects.filter(
                plan=plan, status=Mailbox.Status.ACTIVE, used_bytes__isnull=False
            )
            .annotate(used_x100=F("used_bytes") * 100)
            .filter(used_x100__gte=F("quota_bytes") * thresholds[-1])
            .select_related("domain__customer")
        )
    return sorted(result, key=lambda m: -(m.used_bytes or 0) / m.quota_bytes)


def send_staff_digest() -> int:
    """One email a day listing the full mailboxes; nothing when there are none."""
    mailboxes = full_mailboxes()
    recipients = staff_recipients()
    if not mailboxes or not recipients:
        return 0
    rows = [
        {
            "mailbox": m,
            "customer": m.domain.customer,
            "used": filesizeformat(m.used_bytes or 0),
            "quota": filesizeformat(m.quota_bytes),
            "percent": int((m.used_bytes or 0) * 100 // m.quota_bytes),
            "stale": m.usage_state != Mailbox.UsageState.OK,
        }
        for m in mailboxes
    ]
    context = {"rows": rows, "count": len(rows)}
    render_email("staff_digest", context, to=recipients, language=settings.LANGUAGE_CODE).send()
    return len(rows)
