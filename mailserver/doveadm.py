"""Dovecot's doveadm HTTP API: a few requests answer for every user of a server."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from .errors import MailServerError, MailServerUnavailable, UntrustedCertificate
from .server import Server
from .tls import client_context
from .usage import Folder, Usage

# doveadm's exit code for a user its userdb does not know (EX_NOUSER).
_NO_SUCH_USER = 67


def doveadm_users(server: Server, timeout: float = 600) -> set[str]:
    """Every user Dovecot's userdb lists (its ``iterate_query``), in one request: cheap, as
    nothing is opened, and what drift is found from."""
    return set(_answer(server, "user", {"userMask": ["*"]}, timeout)["userList"])


def doveadm_folders(
    server: Server, users: Sequence[str], timeout: float = 600
) -> dict[str, Usage | MailServerError | None]:
    """The folders of each of ``users``, in one doveadm HTTP API request (one command per
    user); None for a user Dovecot does not know, the error for one it could not read.

    Totals are the sums of the folders' virtual sizes, which is exactly what Dovecot's
    ``count`` quota adds up. A user without any folder on disk yet (never logged in, never
    received mail) has none. A command per user costs about three times what doveadm's own
    iteration does (``doveadm_folders_matching``): this is for telling apart which users
    a failed masked request could not read.
    """
    commands: list[list[object]] = [
        [
            "mailboxStatus",
            {"user": user, "field": ["messages", "vsize"], "mailboxMask": ["*"]},
            str(index),
        ]
        for index, user in enumerate(users)
    ]
    measured: dict[str, Usage | MailServerError | None] = {}
    for kind, payload, tag in _doveadm(server, commands, timeout):
        user = users[int(tag)]
        if kind != "doveadmResponse":
            measured[user] = (
                None
                if payload.get("exitCode") == _NO_SUCH_USER
                else MailServerError(f"{server.name}: doveadm mailboxStatus failed: {payload}")
            )
            continue
        folders = tuple(
            Folder(row["mailbox"], int(row["messages"]), int(row["vsize"])) for row in payload
        )
        measured[user] = Usage(
            used_bytes=sum(f.size_bytes for f in folders),
            message_count=sum(f.message_count for f in folders),
            limit_bytes=None,
            folders=folders,
        )
    return measured


def doveadm_folders_matching(server: Server, mask: str, timeout: float = 600) -> dict[str, Usage]:
    """The folders of every user ``mask`` matches, in one doveadm HTTP API request, keyed by
    the username in lower case.

    ``*`` and ``?`` in ``mask`` are doveadm's wildcards (its ``-u``, case-insensitive):
    doveadm walks its user list and opens only the users that match, all in one process, which
    costs a third of what a command per user does. Requests with disjoint masks sent at once
    measure a server on all its cores. A user without any folder on disk yet has no entry.
    """
    rows = _answer(
        server,
        "mailboxStatus",
        {"user": mask, "field": ["messages", "vsize"], "mailboxMask": ["*"]},
        timeout,
    )
    folders: dict[str, list[Folder]] = {}
    for row in rows:
        folders.setdefault(row["username"].lower(), []).append(
            Folder(row["mailbox"], int(row["messages"]), int(row["vsize"]))
        )
    return {
        user: Usage(
            used_bytes=sum(f.size_bytes for f in listed),
            message_count=sum(f.message_count for f in listed),
            limit_bytes=None,
            folders=tuple(listed),
        )
        for user, listed in folders.items()
    }


# One folder as STATUS describes it: (UIDVALIDITY, UIDNEXT, MESSAGES, HIGHESTMODSEQ).
FolderStatus = tuple[int, int, int, int]


def doveadm_folder_states(
    server: Server, timeout: float = 600
) -> tuple[dict[str, dict[str, FolderStatus]], dict[str, set[str]]]:
    """Every user's folders with their STATUS values, and every user's subscribed folders,
    in two doveadm HTTP API requests: what the backup schedule compares with the last
    snapshot, without a login per mailbox.

    HIGHESTMODSEQ moves with every flag change and expunge (Dovecot keeps modseqs in its
    index as soon as a client asks for them, as this does). A user with no folder on disk
    yet is missing from the first dict.
    """
    # Two requests: in one, the second ``allUsers`` command fails (exit code 75) because the
    # first has already dropped the process's privileges to the mail user.
    status = _answer(
        server,
        "mailboxStatus",
        {
            "allUsers": True,
            "field": ["uidvalidity", "uidnext", "messages", "highestmodseq"],
            "mailboxMask": ["*"],
        },
        timeout,
    )
    listed = _answer(
        server,
        "mailboxList",
        {"allUsers": True, "subscriptions": True, "mailboxMask": ["*"]},
        timeout,
    )
    states: dict[str, dict[str, FolderStatus]] = {}
    for row in status:
        states.setdefault(row["username"], {})[row["mailbox"]] = (
            int(row["uidvalidity"]),
            int(row["uidnext"]),
            int(row["messages"]),
            int(row["highestmodseq"]),
        )
    subscribed: dict[str, set[str]] = {}
    for row in listed:
        subscribed.setdefault(row["username"], set()).add(row["mailbox"])
    return states, subscribed


def _answer(server: Server, command: str, parameters: dict[str, object], timeout: float) -> Any:
    [(kind, payload, _tag)] = _doveadm(server, [[command, parameters, "c"]], timeout)
    if kind != "doveadmResponse":
        raise MailServerError(f"{server.name}: doveadm {command} failed: {payload}")
    return payload


def _doveadm(server: Server, commands: list[list[object]], timeout: float) -> list[list]:
    request = urllib.request.Request(
        f"https://{server.hostname}:{server.doveadm_port}/doveadm/v1",
        data=json.dumps(commands).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "X-Dovecot-API "
            + base64.b64encode(server.doveadm_api_key().encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=client_context()) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise MailServerError(f"{server.name}: doveadm API refused the request: {exc}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise UntrustedCertificate(
                f"{server.name} (doveadm API {server.hostname}:{server.doveadm_port}): "
                f"{exc.reason.verify_message}"
            ) from exc
        raise MailServerUnavailable(f"{server.name}: doveadm API: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise MailServerUnavailable(f"{server.name}: doveadm API: {exc}") from exc


NO_SUCH_USER = 68


def doveadm_kick(server: Server, address: str, timeout: float = 30) -> bool:
    """Close ``address``'s open IMAP and POP3 sessions on ``server``; False where the server
    has no doveadm HTTP API configured (its sessions then end when the clients log out)."""
    if not server.doveadm_port:
        return False
    [(kind, payload, _tag)] = _doveadm(server, [["kick", {"mask": [address]}, "c"]], timeout)
    # Exit code 68 (EX_NOUSER): nobody was logged in, so nobody was kicked.
    if kind != "doveadmResponse" and payload.get("exitCode") != NO_SUCH_USER:
        raise MailServerError(f"{server.name}: doveadm kick failed: {payload}")
    return True
