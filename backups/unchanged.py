"""Which mailboxes are still exactly as their last snapshot recorded them, without opening any.

The scheduled pass asks each mail server once for every folder's STATUS (UIDVALIDITY,
UIDNEXT, MESSAGES, HIGHESTMODSEQ) and every subscription, through the doveadm HTTP API (or,
for a server without it or when it fails, over IMAP: one short session per due mailbox,
``BACKUP_STATUS_CONNECTIONS`` at a time), and compares it with the ``FolderState`` rows
the last backup run saved. New mail moves UIDNEXT, an expunge MESSAGES and HIGHESTMODSEQ, a
flag change HIGHESTMODSEQ, a re-created folder UIDVALIDITY; new and deleted folders change
the set of names. Any difference, or any doubt,
means a backup run: it is the run that decides what to fetch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings

from mailserver.doveadm import doveadm_folder_states
from mailserver.errors import MailServerError
from mailserver.imap import imap_folder_states
from mailserver.server import Server

from .models import FolderState, Repository

log = logging.getLogger(__name__)

CHUNK = 5000  # repositories per query of their folder states


def unchanged_repositories(
    server: Server, repositories: Sequence[tuple[Repository, str]]
) -> set[int]:
    """Of these repositories (with their mailbox's address, on ``server``), the ids of those
    whose mailbox is as their last snapshot recorded it. A mailbox whose state could not be
    read is not among them: it is backed up as before."""
    candidates = {r.pk: r for r, _address in repositories if r.seq > 0}
    addresses = {r.pk: address for r, address in repositories}
    if not candidates:
        return set()
    on_server, subscribed = _folder_states(server, [addresses[pk] for pk in candidates])
    recorded: dict[int, dict[str, tuple[tuple[int, int, int, int | None], bool | None]]] = {}
    # A state saved after the last snapshot belongs to a run that did not finish: no skip.
    unfinished: set[int] = set()
    ids = list(candidates)
    for start in range(0, len(ids), CHUNK):
        rows = FolderState.objects.filter(repository_id__in=ids[start : start + CHUNK]).values_list(
            "repository_id",
            "name",
            "uidvalidity",
            "uidnext",
            "messages",
            "highestmodseq",
            "subscribed",
            "seq",
        )
        for repository_id, name, validity, uidnext, messages, modseq, sub, seq in rows:
            if seq > candidates[repository_id].seq:
                unfinished.add(repository_id)
            recorded.setdefault(repository_id, {})[name] = (
                (validity, uidnext, messages, modseq),
                sub,
            )
    unchanged = set()
    for repository_id in candidates:
        address = addresses[repository_id]
        folders = on_server.get(address)
        if not folders or repository_id in unfinished:
            continue
        user_subscribed = subscribed.get(address, set())
        now = {name: (status, name in user_subscribed) for name, status in folders.items()}
        if now == recorded.get(repository_id):
            unchanged.add(repository_id)
    return unchanged


def _folder_states(
    server: Server, addresses: list[str]
) -> tuple[dict[str, dict[str, tuple[int, int, int, int]]], dict[str, set[str]]]:
    """The doveadm API's answer for the whole server; over IMAP, mailbox by mailbox, where
    the server has no API or it fails."""
    if server.doveadm_port:
        try:
            return doveadm_folder_states(server)
        except MailServerError as exc:
            log.warning("%s: doveadm API failed, asking over IMAP: %s", server.name, exc)
    return imap_folder_states(server, addresses, connections=settings.BACKUP_STATUS_CONNECTIONS)
