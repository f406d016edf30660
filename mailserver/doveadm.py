"""Dovecot's doveadm HTTP API: one request answers for every user of a server."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from .errors import MailServerError, MailServerUnavailable
from .server import Server
from .usage import Folder, Usage


def doveadm_usage(server: Server, timeout: float = 600) -> tuple[set[str], dict[str, Usage]]:
    """Dovecot's user list and every user's folders, in one doveadm HTTP API request.

    The batch path: no login per mailbox. Totals are the sums of the folders' virtual sizes,
    which is exactly what Dovecot's ``count`` quota adds up. Users without any folder on disk
    yet (never logged in, never received mail) are listed but have no folders.
    """
    commands: list[list[object]] = [
        ["user", {"userMask": ["*"]}, "users"],
        [
            "mailboxStatus",
            {"allUsers": True, "field": ["messages", "vsize"], "mailboxMask": ["*"]},
            "folders",
        ],
    ]
    answers = {tag: (kind, payload) for kind, payload, tag in _doveadm(server, commands, timeout)}
    for tag in ("users", "folders"):
        kind, payload = answers[tag]
        if kind != "doveadmResponse":
            raise MailServerError(f"{server.name}: doveadm {tag} failed: {payload}")
    users = set(answers["users"][1]["userList"])
    folders: dict[str, list[Folder]] = {user: [] for user in users}
    for row in answers["folders"][1]:
        folders.setdefault(row["username"], []).append(
            Folder(row["mailbox"], int(row["messages"]), int(row["vsize"]))
        )
    usage = {
        user: Usage(
            used_bytes=sum(f.size_bytes for f in listed),
            message_count=sum(f.message_count for f in listed),
            limit_bytes=None,
            folders=tuple(listed),
        )
        for user, listed in folders.items()
    }
    return users, usage


def _doveadm(server: Server, commands: list[list[object]], timeout: float) -> list[list]:
    request = urllib.request.Request(
        f"http://{server.hostname}:{server.doveadm_port}/doveadm/v1",
        data=json.dumps(commands).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "X-Dovecot-API "
            + base64.b64encode(server.doveadm_api_key().encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise MailServerError(f"{server.name}: doveadm API refused the request: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise MailServerUnavailable(f"{server.name}: doveadm API: {exc}") from exc
