"""The one place that speaks IMAP to the mail servers, logged in as the master user."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from imapclient import IMAPClient, imap_utf7
from imapclient.exceptions import IMAPClientError, LoginError, ProtocolError
from imapclient.response_parser import parse_response

from .errors import MailServerError, MailServerUnavailable, MasterLoginRejected
from .server import Server
from .usage import Folder, Usage

KIB = 1024


@contextmanager
def master_imap(server: Server, address: str, timeout: float = 30) -> Iterator[IMAPClient]:
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


def read_usage(server: Server, address: str, *, folders: bool = True) -> Usage:
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


def master_imap_probe(server: Server, address: str) -> None:
    """Log in as the master user and out again: proves the credentials workers rely on."""
    with master_imap(server, address):
        pass


def append_message(
    server: Server, address: str, folder: str, raw: bytes, flags: tuple[bytes, ...] = ()
) -> None:
    """Put a message into a folder of ``address``'s mailbox (as the master user)."""
    with master_imap(server, address) as client:
        client.append(folder, raw, flags=flags)


