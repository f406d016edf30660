"""Moving a mailbox to another mail server, as a job (``MailboxMove``).

The steps: copy everything to the target (the mailbox is visible to both servers while the
move is unfinished, see ``dovecot_view``), verify each folder's message count and size, switch
the mailbox's server (the proxy routes the next login and delivery there), close the sessions
still open on the old server, catch up what reached it between the copy and the switch, and
remove the old copy. The password and the address are the mailbox's own rows: nothing about
them changes, so customers notice nothing.

Each step is claimed with a conditional UPDATE, so a task delivered twice does it once; a
move that failed leaves the mailbox where it was (or, after the switch, on the target).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit, roles
from accounts.audit import Actor
from mailserver.doveadm import doveadm_kick
from mailserver.errors import MailServerError, MailServerUnavailable
from mailserver.move import FolderCopy, copy_mailbox, remove_mailbox
from provider.celery import enqueue_after_commit

from .models import Mailbox, MailboxMove, MailServer
from .usage import request_refresh

MAX_ATTEMPTS = 5
State = MailboxMove.State


def _refuse(message: str) -> ValidationError:
    return ValidationError({"target": message})


def _check_target(mailbox: Mailbox, target: MailServer) -> None:
    if target.pk == mailbox.mail_server_id:
        raise _refuse(
            _("%(address)s is on %(server)s already.")
            % {"address": mailbox.display_address, "server": target.name}
        )
    if not target.active:
        raise _refuse(
            _("%(server)s does not accept new mailboxes; choose another server.")
            % {"server": target.name}
        )
    if target.capacity_bytes is not None:
        used = Mailbox.objects.filter(mail_server=target).aggregate(used=Sum("used_bytes"))
        needed = (used["used"] or 0) + (mailbox.used_bytes or 0)
        if needed > target.capacity_bytes:
            raise _refuse(
                _("%(server)s is full: %(needed)s would exceed its capacity of %(capacity)s.")
                % {
                    "server": target.name,
                    "needed": filesizeformat(needed),
                    "capacity": filesizeformat(target.capacity_bytes),
                }
            )


def mailbox_move_start(
    *,
    mailbox: Mailbox,
    target: MailServer,
    actor: Actor,
    ip: str | None = None,
    on_worker: bool = True,
) -> MailboxMove:
    """Queue moving ``mailbox`` to ``target``; refused with a message staff can act on.

    ``on_worker=False``: the caller runs the move itself (``run_move``); the sweeper still
    resumes it if the caller dies."""
    roles.authorize(actor, "mailbox.move")
    already = _("%(address)s is being moved already.") % {"address": mailbox.display_address}
    if MailboxMove.objects.filter(mailbox=mailbox, state__in=MailboxMove.UNFINISHED).exists():
        raise _refuse(already)
    if not mailbox.is_active:
        # The mail servers refuse every login to it, the workers' master logins too.
        raise _refuse(
            _("%(address)s is suspended; reactivate it to move it.")
            % {"address": mailbox.display_address}
        )
    _check_target(mailbox, target)
    try:
        with transaction.atomic():
            move = MailboxMove.objects.create(
                mailbox=mailbox,
                source_id=mailbox.mail_server_id,
                target=target,
                created_by=actor if not isinstance(actor, str) else None,
            )
            audit.record(
                "mailbox.move",
                mailbox,
                actor=actor,
                ip=ip,
                customer=mailbox.customer,
                from_server=mailbox.mail_server.name,
                to_server=target.name,
            )
            if on_worker:
                enqueue_after_commit("mailboxes.move_mailbox", move.pk)
    except IntegrityError as exc:  # a concurrent start won the race
        raise _refuse(already) from exc
    return move


def run_move(move_id: int) -> float | None:
    """Do the next steps of a move. Returns the seconds to wait before calling it again
    (after the switch, so deliveries routed just before it can land), or None when done."""
    move = (
        MailboxMove.objects.select_related("mailbox", "source", "target")
        .filter(pk=move_id, state__in=MailboxMove.UNFINISHED)
        .first()
    )
    if move is None:
        return None
    if move.attempts >= MAX_ATTEMPTS:
        _fail(move, _("Gave up after %(count)d attempts.") % {"count": move.attempts})
        return None
    claimed = MailboxMove.objects.filter(
        pk=move.pk, state=move.state, updated_at=move.updated_at
    ).update(
        attempts=F("attempts") + 1,
        state=State.COPYING if move.state == State.QUEUED else move.state,
        updated_at=timezone.now(),
    )
    if not claimed:
        return None  # another delivery of the task has it
    try:
        if move.state in (State.QUEUED, State.COPYING):
            _copy_and_switch(move)
            return settings.POSTAMT_MOVE_SETTLE_SECONDS
        _catch_up_and_finish(move)
    except MailServerUnavailable as exc:  # the task retries; the sweeper after that
        MailboxMove.objects.filter(pk=move.pk).update(error=str(exc))
        raise
    except MailServerError as exc:
        if move.state == State.SWITCHED:
            # The mailbox works on the target already; running again finishes the catch-up.
            MailboxMove.objects.filter(pk=move.pk).update(error=str(exc))
            raise
        # Nothing changed for the customer: the mailbox stays where it was.
        _fail(move, str(exc))
    return None


def _copy_and_switch(move: MailboxMove) -> None:
    address = move.mailbox.address

    def progress(done: int, total: int, copied: int) -> None:
        MailboxMove.objects.filter(pk=move.pk).update(
            messages_done=done,
            messages_total=total,
            messages_copied=copied,
            updated_at=timezone.now(),
        )

    folders = copy_mailbox(move.source, move.target, address, progress=progress)
    mismatched = [folder for folder in folders if not folder.matches]
    verified = {f.name: [f.messages, f.size, f.target_messages, f.target_size] for f in folders}
    if mismatched:
        _fail(
            move,
            _("The copy differs in %(folders)s; the mailbox stays on %(server)s.")
            % {
                "folders": ", ".join(
                    f"{f.name} ({f.messages}/{f.size} B → {f.target_messages}/{f.target_size} B)"
                    for f in mismatched
                ),
                "server": move.source.name,
            },
            verified=verified,
        )
        return
    with transaction.atomic():
        Mailbox.objects.filter(pk=move.mailbox_id).update(
            mail_server=move.target, updated_at=timezone.now()
        )
        MailboxMove.objects.filter(pk=move.pk).update(
            state=State.SWITCHED,
            switched_at=timezone.now(),
            copied_upto=_marks(folders),
            verified=verified,
            messages_done=sum(f.messages for f in folders),
            error="",
        )


def _marks(folders: list[FolderCopy]) -> dict[str, list[int]]:
    return {folder.name: [folder.uidvalidity, folder.last_uid] for folder in folders}


def _catch_up_and_finish(move: MailboxMove) -> None:
    address = move.mailbox.address
    # Sessions opened before the switch still write to the old server: end them first.
    doveadm_kick(move.source, address)
    marks = {name: (mark[0], mark[1]) for name, mark in move.copied_upto.items()}
    folders = copy_mailbox(move.source, move.target, address, after=marks)
    caught_up = sum(folder.copied for folder in folders)
    MailboxMove.objects.filter(pk=move.pk).update(
        caught_up=F("caught_up") + caught_up, copied_upto=_marks(folders)
    )
    remove_mailbox(move.source, address)
    with transaction.atomic():
        MailboxMove.objects.filter(pk=move.pk).update(
            state=State.DONE, finished_at=timezone.now(), error=""
        )
        # Usage was measured on the old server: measure it where the mail is now.
        request_refresh(move.mailbox)


def _fail(move: MailboxMove, error: str, **fields: object) -> None:
    MailboxMove.objects.filter(pk=move.pk, state__in=MailboxMove.UNFINISHED).update(
        state=State.FAILED, error=error, finished_at=timezone.now(), **fields
    )


def stalled_moves(minutes: int = 15) -> list[int]:
    """Unfinished moves nobody has worked on for a while (their task was lost): the
    sweeper's, which sends them again."""
    cutoff = timezone.now() - timedelta(minutes=minutes)
    return list(
        MailboxMove.objects.filter(
            state__in=MailboxMove.UNFINISHED, updated_at__lt=cutoff
        ).values_list("pk", flat=True)
    )


def latest_move(mailbox: Mailbox) -> MailboxMove | None:
    return (
        MailboxMove.objects.select_related("source", "target")
        .filter(mailbox=mailbox)
        .order_by("-created_at")
        .first()
    )
