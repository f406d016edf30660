"""The one place that speaks IMAP to the mail servers, logged in as the master user."""
from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from .models import MailServer

KIB = 1024


class MailServerError(Exception):
    """The server could not be asked; the reason is fit to show to staff."""


class MailServerUnavailable(MailServerError):
    """Transient: the server is down or unreachable. Worth a retry."""


class MasterLoginRejected(MailServerError):
    """The server refused the master login: a configuration problem, not worth a retry."""


class MailboxUnknown(MailServerError):
    """The server does not list this mailbox among its users."""


@dataclass(frozen=True)
class Folder:
    name: str
    message_count: int
    size_bytes: int


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    message_count: int | None
    limit_bytes: int | None
    folders: tuple[Folder, ...] = ()


@contextmanager
def master_imap(server: MailServer, address: str, timeout: float = 30) -> Iterator[IMAPClient]:
    """An IMAP session on ``address``'s mailbox, authenticated as the server's master user."""
    try:
        client = IMAPClient(server.hostname, port=server.imap_port, ssl=False, timeout=timeout)
    except (OSError, IMAPClientError) as exc:
        raise MailServerUnavailable(
            f"cannot reach {server.hostname}:{server.imap_port}: {exc}"
        ) from exc
    try:
        try:
            client.login(f"{address}*{server.master_user}", server.master_password())
        except LoginError as exc:
            raise MasterLoginRejected(
                f"{server.name} refused the master login for {address}: {exc}"
            ) from exc
        yield client
    except (OSError, IMAPClientError) as exc:
        raise MailServerUnavailable(f"{server.name}: {exc}") from exc
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the session is over either way
            pass


def read_usage(server: MailServer, address: str, *, folders: bool = True) -> Usage:
    """Usage as Dovecot reports it: totals from its quota (count backend, exact), and the size
    of every folder from STATUS ... SIZE (RFC 8438) or, where missing, a FETCH of sizes."""
    with master_imap(server, address) as client:
        _roots, quotas = client.get_quota_root("INBOX")
        listed = _folder_usage(client) if folders else ()
    # GETQUOTAROOT answers in KiB; a mailbox without a limit has no quota root at all.
    resources = {q.resource.upper(): q for q in quotas}
    storage = resources.get("STORAGE")
    messages = resources.get("MESSAGE")
    if storage is None:
        raise MailServerError(f"{server.name} reports no storage quota for {address}")
    return Usage(
        used_bytes=storage.usage * KIB,
        message_count=messages.usage if messages else sum(f.message_count for f in listed),
        limit_bytes=storage.limit * KIB,
        folders=tuple(listed),
    )


def _folder_usage(client: IMAPClient) -> list[Folder]:
    has_status_size = b"STATUS=SIZE" in client.capabilities()
    result = []
    for flags, _delimiter, name in client.list_folders():
        if b"\\Noselect" in flags or b"\\NonExistent" in flags:
            continue
        if has_status_size:
            status = client.folder_status(name, [b"MESSAGES", b"SIZE"])
            result.append(Folder(name, status[b"MESSAGES"], status[b"SIZE"]))
            continue
        client.select_folder(name, readonly=True)
        uids = client.search()
        sizes = client.fetch(uids, [b"RFC822.SIZE"]) if uids else {}
        result.append(Folder(name, len(uids), sum(v[b"RFC822.SIZE"] for v in sizes.values())))
    return result


def append_message(
    server: MailServer, address: str, folder: str, raw: bytes, flags: tuple[bytes, ...] = ()
) -> None:
    """Put a message into a folder of ``address``'s mailbox (as the master user)."""
    with master_imap(server, address) as client:
        client.append(folder, raw, flags=flags)


def dovecot_users(server: MailServer, timeout: float = 300) -> dict[str, int]:
    """Every login Dovecot's userdb iterates, with its quota usage in bytes (doveadm HTTP API).

    One request for the whole server; it needs ``doveadm_port`` and the API key.
    """
    request = urllib.request.Request(
        f"http://{server.hostname}:{server.doveadm_port}/doveadm/v1",
        data=json.dumps([["quotaGet", {"allUsers": True}, "postamt"]]).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "X-Dovecot-API "
            + base64.b64encode(server.doveadm_api_key().encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        raise MasterLoginRejected(f"{server.name}: doveadm API refused: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise MailServerUnavailable(f"{server.name}: doveadm API: {exc}") from exc
    kind, payload, _tag = answer[0]
    if kind != "doveadmResponse":
        raise MailServerError(f"{server.name}: doveadm quota get failed: {payload}")
    return {
        row["username"]: int(row["value"]) * KIB
        for row in payload
        if row.get("type") == "STORAGE"
    }


def purge_storage(server: MailServer, storage_path: str) -> bool:
    """Delete a removed mailbox's mail where this machine holds it (the private instance).

    Returns False when the mail lives on another machine: that server's own cleanup applies.
    """
    if server.name != settings.DOVECOT["SERVER_NAME"]:
        return False
    mail_root = (Path(settings.DOVECOT["ROOT"]) / "mail").resolve()
    target = (mail_root / storage_path).resolve()
    if mail_root not in target.parents:
        raise MailServerError(f"refusing to delete {target}: outside {mail_root}")
    shutil.rmtree(target, ignore_errors=True)
    return True
