"""Which mailboxes are still exactly as their last snapshot recorded them, without opening any.

The scheduled pass asks each mail server once for every folder's STATUS (UIDVALIDITY,
UIDNEXT, MESSAGES, HIGHESTMODSEQ) and every subscription, through the doveadm HTTP API, and
compares it with the ``FolderState`` rows the last backup run saved. New mail moves UIDNEXT,
an expunge MESSAGES and HIGHESTMODSEQ, a flag change HIGHESTMODSEQ, a re-created folder
UIDVALIDITY; new and deleted folders change the set of names. Any difference, or any doubt,
means a backup run: it is the run that decides what to fetch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mailserver.doveadm import doveadm_folder_states
from mailserver.errors import MailServerError
from mailserver.server import Server

from .models import FolderState, Repository

log = logging.getLogger(__name__)

CHUNK = 5000  # repositories per query of their folder states


def unchanged_repositories(
    server: Server, repositories: Sequence[tuple[Repository, str]]
) -> set[int]:
    """Of these repositories (with their mailbox's address, on ``server``), the ids of those
    whose mailbox is as their last snapshot recorded it. Empty if the server has no doveadm
    API or it fails: every mailbox is then backed up as before (that run's own STATUS check
    makes an unchanged mailbox cheap, at the price of a login)."""
    candidates = {r.pk: r for r, _address in repositories if r.seq > 0}
    addresses = {r.pk: address for r, address in repositories}
    if not candidates or not server.doveadm_port:
        return set()
    try:
        on_server, subscribed = doveadm_folder_states(server)
    except MailServerError as exc:
        log.warning(
            "%s: folder states not read, backing up every due mailbox: %s", server.name, exc
        )
        return set()
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
