"""The one place that speaks IMAP to the mail servers, logged in as the master user.

Backup and restore see only ``MailboxSession`` (through ``master_session``): plain data in
and out, and the adapter's own exceptions, so nothing outside this package depends on
imapclient or imaplib.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from imapclient import IMAPClient, imap_utf7
from imapclient.datetime_util import datetime_to_INTERNALDATE
from imapclient.exceptions import IMAPClientError, LoginError, ProtocolError
from imapclient.imapclient import seq_to_parenstr
from imapclient.response_parser import parse_response

from .errors import (
    CommandRefused,
    FolderError,
    MailServerError,
    MailServerUnavailable,
    MasterLoginRejected,
    OverQuota,
    SessionLost,
    UnexpectedAnswer,
    UntrustedCertificate,
)
from .fetch import (
    METADATA_CHUNK,
    MIB,
    MessageInfo,
    fetch_bodies,
    fetch_body_piece,
    folder_metadata,
    uid_set,
)
from .server import Server
from .tls import client_context
from .usage import Folder, Usage

KIB = 1024
# A large message travels in pieces of this size, each way: one round trip per piece.
PIECE = MIB
log = logging.getLogger(__name__)


def _login(server: Server, address: str, timeout: float) -> IMAPClient:
    """A connection logged in to ``address``'s mailbox as the server's master user."""
    try:
        client = IMAPClient(
            server.hostname,
            port=server.imaps_port,
            ssl=True,
            ssl_context=client_context(),
            timeout=timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        raise UntrustedCertificate(
            f"{server.name} ({server.hostname}:{server.imaps_port}): {exc.verify_message}"
        ) from exc
    except (OSError, IMAPClientError) as exc:
        raise MailServerUnavailable(
            f"cannot reach {server.hostname}:{server.imaps_port}: {exc}"
        ) from exc
    # imapclient sets imaplib's debug level to 5, which formats the repr of everything it
    # reads even when nothing is logged; and without TCP_NODELAY a command ending in a small
    # write waits for a delayed ACK (~40 ms).
    client._imap.debug = 0
    try:
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.login(f"{address}*{server.master_user}", server.master_password())
    except LoginError as exc:
        _logout(client)
        raise MasterLoginRejected(
            f"{server.name} refused the master login for {address}: {exc}"
        ) from exc
    except (OSError, IMAPClientError) as exc:
        _logout(client)
        raise MailServerUnavailable(f"{server.name}: {exc}") from exc
    return client


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - the session is over either way
        pass


@contextmanager
def master_imap(server: Server, address: str, timeout: float = 30) -> Iterator[IMAPClient]:
    """An imapclient session on ``address``'s mailbox, for the adapter's own readers."""
    client = _login(server, address, timeout)
    try:
        yield client
    except (OSError, IMAPClientError) as exc:
        raise MailServerUnavailable(f"{server.name}: {exc}") from exc
    finally:
        _logout(client)


@contextmanager
def master_session(server: Server, address: str, timeout: float = 30) -> Iterator[MailboxSession]:
    """A ``MailboxSession`` on ``address``'s mailbox, logged in as the master user.

    Unlike ``master_imap``, errors of the caller's own code inside the block pass through
    as they are: the session turns its own into ``mailserver.errors``.
    """
    client = _login(server, address, timeout)
    try:
        session = MailboxSession(client, server.name)
        with session.guard():
            # Timestamps with their zone; HIGHESTMODSEQ in STATUS and SELECT answers.
            client.normalise_times = False
            if client.has_capability("CONDSTORE"):
                client.enable("CONDSTORE")
        yield session
    finally:
        _logout(client)


@dataclass(frozen=True)
class MailFolder:
    """A folder that can be selected, as LIST names it."""

    name: str
    delimiter: str
    subscribed: bool


@dataclass(frozen=True)
class FolderStatus:
    messages: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int | None  # None where the server does not keep modification sequences


@dataclass(frozen=True)
class SelectedFolder:
    exists: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int | None


@dataclass(frozen=True)
class MessageHead:
    """What restore compares before reading whole messages."""

    uid: int
    size: int
    flags: list[str]  # sorted, without \Recent
    header: bytes  # the header fields asked for, as the server sent them


# Flags and an internal date for each raw message to append.
NewMessage = tuple[bytes, Sequence[str], datetime]


class MailboxSession:
    """What backup and restore do in one mailbox, over one IMAP connection.

    Every method returns plain data and raises only ``mailserver.errors``: ``SessionLost``
    when the connection broke (worth retrying the job), ``CommandRefused`` and its
    subclasses when the server answered no, ``UnexpectedAnswer`` when it answered in a
    form the readers do not know. Methods after ``select`` act on the selected folder.
    """

    def __init__(self, client: IMAPClient, server_name: str) -> None:
        self._client = client
        self._imap: imaplib.IMAP4 = client._imap  # the readers' way past the lexer
        self._server = server_name

    @contextmanager
    def guard(
        self, refused: type[CommandRefused] = CommandRefused, what: str = ""
    ) -> Iterator[None]:
        """Turn imapclient's and the socket's exceptions into the adapter's."""
        try:
            yield
        except imaplib.IMAP4.readonly as exc:  # before abort, its base class
            raise refused(f"{what}: {exc}" if what else str(exc)) from exc
        except (imaplib.IMAP4.abort, OSError) as exc:
            raise SessionLost(f"{self._server}: connection lost: {exc}") from exc
        except IMAPClientError as exc:
            raise refused(f"{what}: {exc}" if what else str(exc)) from exc

    # --- folders --------------------------------------------------------------------------

    def folders(self) -> list[MailFolder]:
        """Every selectable folder and whether it is subscribed: one ``LIST ... RETURN
        (SUBSCRIBED)`` (RFC 5258), or LIST and LSUB where the server lacks it."""
        with self.guard(what="LIST"):
            if self._client.has_capability("LIST-EXTENDED"):
                rows = self._list_subscribed()
                subscribed = {name for flags, _d, name in rows if b"\\Subscribed" in flags}
            else:
                rows = self._client.list_folders()
                subscribed = {name for _f, _d, name in self._client.list_sub_folders()}
        return [
            MailFolder(name, (delimiter or b"").decode(), name in subscribed)
            for flags, delimiter, name in rows
            if b"\\Noselect" not in flags and b"\\NonExistent" not in flags
        ]

    def _list_subscribed(self) -> list[tuple[tuple[bytes, ...], bytes | None, str]]:
        # imapclient has no call for LIST's return options; its parser reads the answer.
        typ, data = self._imap._simple_command("LIST", '""', '"*"', "RETURN", "(SUBSCRIBED)")
        if typ != "OK":
            raise CommandRefused(f"LIST failed: {data!r:.200}")
        typ, data = self._imap._untagged_response(typ, data, "LIST")
        rows = self._client._proc_folder_list(data)
        for flags, _delimiter, name in rows:
            if not isinstance(flags, tuple) or not isinstance(name, str):
                raise UnexpectedAnswer(f"LIST answer not understood: {data!r:.200}")
        return rows

    def status(self, folder: str) -> FolderStatus:
        with self.guard(FolderError, f"cannot read the status of folder {folder!r}"):
            status = self._client.folder_status(
                folder, [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY", b"HIGHESTMODSEQ"]
            )
        return FolderStatus(
            messages=status[b"MESSAGES"],
            uidnext=status[b"UIDNEXT"],
            uidvalidity=status[b"UIDVALIDITY"],
            highestmodseq=status.get(b"HIGHESTMODSEQ"),
        )

    def select(self, folder: str, *, readonly: bool = True) -> SelectedFolder:
        with self.guard(FolderError, f"cannot open folder {folder!r}"):
            info = self._client.select_folder(folder, readonly=readonly)
        return SelectedFolder(
            exists=info[b"EXISTS"],
            uidnext=info[b"UIDNEXT"],
            uidvalidity=info[b"UIDVALIDITY"],
            highestmodseq=info.get(b"HIGHESTMODSEQ"),
        )

    def create_folder(self, folder: str) -> None:
        with self.guard(FolderError, f"cannot create folder {folder!r}"):
            self._client.create_folder(folder)

    def subscribe(self, folder: str, subscribed: bool = True) -> None:
        with self.guard(FolderError, f"cannot change the subscription of {folder!r}"):
            if subscribed:
                self._client.subscribe_folder(folder)
            else:
                self._client.unsubscribe_folder(folder)

    def delete_folder(self, folder: str) -> None:
        with self.guard(FolderError, f"cannot delete folder {folder!r}"):
            self._client.delete_folder(folder)

    # --- messages of the selected folder ---------------------------------------------------

    def uids(self) -> list[int]:
        """``UID SEARCH ALL``, read without imapclient's lexer."""
        with self.guard(what="UID SEARCH"):
            typ, data = self._imap.uid("SEARCH", "ALL")
        if typ != "OK":
            raise CommandRefused(f"UID SEARCH failed: {data!r:.200}")
        try:
            return [int(uid) for line in data if line for uid in line.split()]
        except (TypeError, ValueError) as exc:
            raise UnexpectedAnswer(f"UID SEARCH answer not understood: {data!r:.200}") from exc

    def metadata(self) -> dict[int, MessageInfo]:
        """UID, size, flags and internal date of every message (see ``fetch.folder_metadata``)."""
        with self.guard(what="UID FETCH"):
            return folder_metadata(self._imap)

    def bodies(self, uids: Iterable[int]) -> dict[int, bytes]:
        """The raw messages with these UIDs; a UID expunged meanwhile is absent."""
        with self.guard(what="UID FETCH"):
            return fetch_bodies(self._imap, uids)

    def body_pieces(self, uid: int, size: int) -> Iterator[bytes]:
        """A message of ``size`` bytes in pieces of at most ``PIECE`` (partial FETCHes), for
        messages too large to hold whole. Ends early (fewer than ``size`` bytes in all, none
        at all if it was expunged meanwhile) when the message is shorter than that."""
        offset = 0
        while offset < size:
            with self.guard(what="UID FETCH"):
                piece = fetch_body_piece(self._imap, uid, offset, min(PIECE, size - offset))
            if not piece:
                return
            offset += len(piece)
            yield piece

    def heads(self, fields: Sequence[str]) -> dict[int, MessageHead]:
        """Size, flags and the header ``fields`` of every message: what restore matches the
        messages to restore against, without reading them whole."""
        names = " ".join(field.upper() for field in fields)
        item, key = f"BODY.PEEK[HEADER.FIELDS ({names})]", f"BODY[HEADER.FIELDS ({names})]"
        found: dict[int, MessageHead] = {}
        uids = self.uids()
        with self.guard(what="UID FETCH"):
            for start in range(0, len(uids), METADATA_CHUNK):
                answer = self._client.fetch(
                    uids[start : start + METADATA_CHUNK], [b"FLAGS", b"RFC822.SIZE", item.encode()]
                )
                for uid, data in answer.items():
                    found[uid] = MessageHead(
                        uid=uid,
                        size=data[b"RFC822.SIZE"],
                        flags=sorted(
                            flag.decode() for flag in data[b"FLAGS"] if flag.lower() != b"\\recent"
                        ),
                        header=data.get(key.encode()) or b"",
                    )
        return found

    def set_flags(self, flags: Mapping[int, Sequence[str]]) -> None:
        """Give these messages exactly these flags (``UID STORE ... FLAGS.SILENT``): one
        command per distinct set of flags, not per message. Needs a folder selected with
        ``readonly=False``."""
        by_flags: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for uid, wanted in flags.items():
            by_flags[tuple(sorted(wanted))].append(uid)
        with self.guard(what="UID STORE"):
            for wanted, uids in by_flags.items():
                for start in range(0, len(uids), METADATA_CHUNK):
                    typ, data = self._imap.uid(
                        "STORE",
                        uid_set(uids[start : start + METADATA_CHUNK]),
                        "FLAGS.SILENT",
                        f"({' '.join(wanted)})",
                    )
                    if typ != "OK":
                        raise CommandRefused(f"UID STORE failed: {data!r:.200}")

    def expunge(self, uids: Iterable[int]) -> None:
        """Delete these messages for good (``UID EXPUNGE``, RFC 4315: no other message
        marked deleted goes with them). Needs a folder selected with ``readonly=False``."""
        wanted = sorted(uids)
        with self.guard(what="UID EXPUNGE"):
            for start in range(0, len(wanted), METADATA_CHUNK):
                chunk = uid_set(wanted[start : start + METADATA_CHUNK])
                typ, data = self._imap.uid("STORE", chunk, "+FLAGS.SILENT", "(\\Deleted)")
                if typ == "OK":
                    typ, data = self._imap.uid("EXPUNGE", chunk)
                if typ != "OK":
                    raise CommandRefused(f"UID EXPUNGE failed: {data!r:.200}")

    def expunge_all(self) -> None:
        """Empty the selected folder."""
        uids = self.uids()
        if uids:
            self.expunge(uids)

    def append(self, folder: str, messages: Sequence[NewMessage]) -> None:
        """Store messages in a folder with one ``MULTIAPPEND`` (RFC 3502), which the server
        commits whole or not at all. Raises ``OverQuota`` when the mailbox is full."""
        try:
            # imapclient's multiappend returns a refusal instead of raising it.
            status, answer = self._client.multiappend(
                folder,
                [{"msg": raw, "flags": flags, "date": date} for raw, flags, date in messages],
            )
        except (imaplib.IMAP4.abort, OSError) as exc:
            raise SessionLost(f"{self._server}: connection lost: {exc}") from exc
        except IMAPClientError as exc:
            status, answer = "NO", [str(exc).encode()]
        if status != "OK":
            reason = b" ".join(a for a in answer if isinstance(a, bytes)).decode(errors="replace")
            if "OVERQUOTA" in reason.upper():
                raise OverQuota(reason)
            raise CommandRefused(reason)

    def append_file(
        self, folder: str, source: BinaryIO, size: int, flags: Sequence[str], date: datetime
    ) -> None:
        """APPEND one message of ``size`` bytes read from ``source`` in pieces of ``PIECE``:
        imapclient and imaplib take a message only as bytes, so the literal is written here,
        as imaplib's own ``_command`` writes one. Raises ``OverQuota`` when the mailbox is
        full; a ``source`` shorter than ``size`` loses the session (``SessionLost``), as the
        server still waits for the rest of the literal."""
        imap = self._imap
        folder_name = self._client._normalise_folder(folder)
        if isinstance(folder_name, str):
            folder_name = folder_name.encode()
        command = b" ".join(
            [
                b"APPEND",
                folder_name,
                seq_to_parenstr(flags).encode(),
                f'"{datetime_to_INTERNALDATE(date)}"'.encode(),
                f"{{{size}}}".encode(),
            ]
        )
        with self.guard(what="APPEND"):
            tag = imap._new_tag()
            imap.send(tag + b" " + command + b"\r\n")
            while imap._get_response():  # None: the server's "+", go on
                if imap.tagged_commands[tag]:  # refused before the literal (quota, folder)
                    break
            else:
                sent = 0
                while sent < size:
                    piece = source.read(min(PIECE, size - sent))
                    if not piece:
                        raise SessionLost(f"{self._server}: the message ended before {size} bytes")
                    imap.send(piece)
                    sent += len(piece)
                imap.send(b"\r\n")
            status, answer = imap._command_complete("APPEND", tag)
        if status != "OK":
            reason = b" ".join(a for a in answer if isinstance(a, bytes)).decode(errors="replace")
            if "OVERQUOTA" in reason.upper():
                raise OverQuota(reason)
            raise CommandRefused(reason)


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
    typ, _data = imap._simple_command("LIST", '""', '"*"', "RETURN", "(STATUS (MESSAGES SIZE))")
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


# One folder as STATUS describes it: (UIDVALIDITY, UIDNEXT, MESSAGES, HIGHESTMODSEQ), as
# ``doveadm.doveadm_folder_states`` gives it.
StatusValues = tuple[int, int, int, int]
_STATE_ITEMS = [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES", b"HIGHESTMODSEQ"]


def imap_folder_states(
    server: Server, addresses: Iterable[str], *, connections: int, timeout: float = 30
) -> tuple[dict[str, dict[str, StatusValues]], dict[str, set[str]]]:
    """``doveadm_folder_states`` over IMAP, for a server without the doveadm API: each
    mailbox's folders with their STATUS values and its subscriptions, over one master login
    per mailbox, ``connections`` mailboxes at a time.

    One round trip per mailbox where the server has LIST-STATUS (RFC 5819): ``LIST "" "*"
    RETURN (SUBSCRIBED STATUS (... HIGHESTMODSEQ))``; else LIST and a STATUS per folder
    (asking for HIGHESTMODSEQ enables CONDSTORE, RFC 7162, so flag changes show). A mailbox
    whose login or answer fails is left out: for the caller, a doubt."""
    states: dict[str, dict[str, StatusValues]] = {}
    subscribed: dict[str, set[str]] = {}

    def ask(address: str) -> None:
        try:
            with master_imap(server, address, timeout) as client:
                folders, subscriptions = _folder_states(client)
        except (MailServerError, ProtocolError, ValueError, KeyError, TypeError) as exc:
            log.info("%s: folder states of %s not read: %s", server.name, address, exc)
            return
        states[address] = folders
        subscribed[address] = subscriptions

    with ThreadPoolExecutor(max_workers=max(1, connections)) as pool:
        list(pool.map(ask, addresses))
    return states, subscribed


def _folder_states(client: IMAPClient) -> tuple[dict[str, StatusValues], set[str]]:
    capabilities = client.capabilities()
    if b"LIST-STATUS" in capabilities and b"LIST-EXTENDED" in capabilities:
        found = _list_states(client)
        if found is not None:
            return found
    rows = client.list_folders()
    subscriptions = {name for _f, _d, name in client.list_sub_folders()}
    states = {}
    for flags, _delimiter, name in rows:
        if b"\\Noselect" in flags or b"\\NonExistent" in flags:
            continue
        status = client.folder_status(name, _STATE_ITEMS)
        states[name] = _values(status)
    return states, subscriptions


def _list_states(client: IMAPClient) -> tuple[dict[str, StatusValues], set[str]] | None:
    """Every folder's STATUS and subscription in one round trip; None (use the portable
    path) if the answer is not what we can parse."""
    imap = client._imap
    typ, data = imap._simple_command(
        "LIST",
        '""',
        '"*"',
        "RETURN",
        "(SUBSCRIBED STATUS (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ))",
    )
    listed = imap.untagged_responses.pop("LIST", [])
    statuses = imap.untagged_responses.pop("STATUS", [])
    if typ != "OK":
        return None
    rows = client._proc_folder_list(listed)
    subscriptions = {name for flags, _d, name in rows if b"\\Subscribed" in flags}
    selectable = {
        name
        for flags, _d, name in rows
        if b"\\Noselect" not in flags and b"\\NonExistent" not in flags
    }
    states = {}
    for line in statuses:
        if not isinstance(line, bytes):
            return None  # a folder name sent as a literal: let the portable path handle it
        name, items = parse_response([line])
        folder = imap_utf7.decode(name if isinstance(name, bytes) else str(name).encode())
        states[folder] = _values(dict(zip(items[::2], items[1::2], strict=True)))
    if set(states) != selectable:
        return None
    return states, subscriptions


def _values(status: Mapping[bytes, object]) -> StatusValues:
    return (
        int(status[b"UIDVALIDITY"]),  # type: ignore[call-overload]
        int(status[b"UIDNEXT"]),  # type: ignore[call-overload]
        int(status[b"MESSAGES"]),  # type: ignore[call-overload]
        int(status[b"HIGHESTMODSEQ"]),  # type: ignore[call-overload]
    )


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
