"""The one place that speaks IMAP to the mail servers, logged in as the master user."""
from __future__ import annotations

import base64
import json
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from imapclient import IMAPClient, imap_utf7
from imapclient.exceptions import IMAPClientError, LoginError, ProtocolError
from imapclient.response_parser import parse_response

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
    # imapclient sets imaplib's debug level to 5, which formats the repr of everything it
    # reads even when nothing is logged; and without TCP_NODELAY a command ending in a small
    # write waits for a delayed ACK (~40 ms).
    client._imap.debug = 0  # noqa: SLF001
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
    capabilities = client.capabilities()
    if b"LIST-STATUS" in capabilities and b"STATUS=SIZE" in capabilities:
        listed = _list_status(client)
        if listed is not None:
            return listed
    has_status_size = b"STATUS=SIZE" in capabilities
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


def _list_status(client: IMAPClient) -> list[Folder] | None:
    """Every folder's size in one round trip (RFC 5819 LIST-STATUS with RFC 8438 SIZE).

    imapclient has no call for LIST ... RETURN (STATUS ...), so this goes through its imaplib
    connection; None (use the portable path) if the answer is not what we can parse.
    """
    imap = client._imap
    typ, _data = imap._simple_command(  # noqa: SLF001
        "LIST", '""', '"*"', "RETURN", "(STATUS (MESSAGES SIZE))"
    )
    imap.untagged_responses.pop("LIST", None)
    statuses = imap.untagged_responses.pop("STATUS", [])
    if typ != "OK":
        return None
    result = []
    for line in statuses:
        if not isinstance(line, bytes):
            return None  # a folder name sent as a literal: let the portable path handle it
        try:
            name, items = parse_response([line])
            values = dict(zip(items[::2], items[1::2], strict=True))
            folder = imap_utf7.decode(name if isinstance(name, bytes) else str(name).encode())
            result.append(Folder(folder, int(values[b"MESSAGES"]), int(values[b"SIZE"])))
        except (ValueError, KeyError, TypeError, ProtocolError):
            return None
    return result


def master_imap_probe(server: MailServer, address: str) -> None:
    """Log in as the master user and out again: proves the credentials workers rely on."""
    with master_imap(server, address):
        pass


def append_message(
    server: MailServer, address: str, folder: str, raw: bytes, flags: tuple[bytes, ...] = ()
) -> None:
    """Put a message into a folder of ``address``'s mailbox (as the master user)."""
    with master_imap(server, address) as client:
        client.append(folder, raw, flags=flags)


def doveadm_usage(server: MailServer, timeout: float = 600) -> tuple[set[str], dict[str, Usage]]:
    """Dovecot's user list and every user's folders, in one doveadm HTTP API request.

    The batch path: no login per mailbox. Totals are the sums of the folders' virtual sizes,
    which is exactly what Dovecot's ``count`` quota adds up. Users without any folder on disk
    yet (never logged in, never received mail) are listed but have no folders.
    """
    commands = [
        ["user", {"userMask": ["*"]}, "users"],
        ["mailboxStatus", {"allUsers": True, "field": ["messages", "vsize"], "mailboxMask": ["*"]},
         "folders"],
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


def _doveadm(server: MailServer, commands: list[list[object]], timeout: float) -> list[list]:
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
