"""Copying a mailbox from one mail server to another, logged in as the master user on both.

Chosen over ``doveadm sync``/``backup``: these need the two servers to reach each other (a
doveadm TCP service with its own password, or SSH), while master IMAP logins are what Postamt's
workers already have on every server; it works the same on Dovecot 2.3 and 2.4, and with any
IMAP server behind the adapter.

Messages are matched by size, internal date and Message-ID (as a multiset: two identical
copies stay two), so a pass run again after a lost worker copies nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from .fetch import MIB, MessageInfo, batches
from .imap import MailboxSession, master_session
from .server import Server

BATCH_MESSAGES = 200
BATCH_BYTES = 16 * MIB

Key = tuple[int, datetime, bytes]


@dataclass(frozen=True)
class FolderCopy:
    """One folder after a pass: the source as read, the target as read again afterwards."""

    name: str
    uidvalidity: int
    last_uid: int  # the highest source UID this pass saw
    messages: int
    size: int
    target_messages: int
    target_size: int
    copied: int

    @property
    def matches(self) -> bool:
        return (self.messages, self.size) == (self.target_messages, self.target_size)


Progress = Callable[[int, int, int], None]  # messages checked, of total, copied so far


def copy_mailbox(
    source: Server,
    target: Server,
    address: str,
    *,
    after: Mapping[str, tuple[int, int]] | None = None,
    progress: Progress | None = None,
) -> list[FolderCopy]:
    """Copy ``address``'s folders, subscriptions, messages, flags and internal dates.

    Without ``after``: a full pass that makes the target a copy of the source (flags set
    again, messages the source no longer has removed: only an earlier attempt put them there).
    With ``after`` (per folder: UIDVALIDITY and the last UID already copied): the catch-up
    after the switch, which copies only newer messages and leaves what the customer has done
    on the target since alone.
    """
    with master_session(source, address) as src, master_session(target, address) as dst:
        folders = sorted(src.folders(), key=lambda folder: folder.name)
        total = sum(src.status(folder.name).messages for folder in folders)
        existing = {folder.name: folder for folder in dst.folders()}
        done = copied = 0
        result = []
        for folder in folders:
            theirs = existing.get(folder.name)
            if theirs is None:
                dst.create_folder(folder.name)
            if theirs is None or theirs.subscribed != folder.subscribed:
                dst.subscribe(folder.name, folder.subscribed)
            state = src.select(folder.name)
            ours = _messages(src)
            since = (after or {}).get(folder.name)
            if since is not None and since[0] == state.uidvalidity:
                wanted = {uid: key for uid, key in ours.items() if uid > since[1]}
            else:
                wanted = dict(ours)
            dst.select(folder.name, readonly=False)
            present = _messages(dst)
            infos = src.metadata()
            missing = _missing(wanted, present)
            if after is None:
                _mirror_flags(dst, ours, present, infos)
                _remove_extras(dst, ours, present)
            folder_copied = 0
            for batch in batches(
                [infos[uid] for uid in missing if uid in infos],
                lambda info: info.size,
                count=BATCH_MESSAGES,
                max_bytes=BATCH_BYTES,
            ):
                bodies = src.bodies(info.uid for info in batch)
                dst.append(
                    folder.name,
                    [(bodies[i.uid], i.flags, i.internal_date) for i in batch if i.uid in bodies],
                )
                copied += len(batch)
                folder_copied += len(batch)
                if progress:
                    progress(done + len(ours) - len(missing) + folder_copied, total, copied)
            done += len(ours)
            if progress:
                progress(done, total, copied)
            dst.select(folder.name)
            after_copy = dst.metadata()
            result.append(
                FolderCopy(
                    name=folder.name,
                    uidvalidity=state.uidvalidity,
                    last_uid=max(ours, default=0),
                    messages=len(ours),
                    size=sum(info.size for info in infos.values()),
                    target_messages=len(after_copy),
                    target_size=sum(info.size for info in after_copy.values()),
                    copied=len(missing),
                )
            )
    return result


def remove_mailbox(server: Server, address: str) -> None:
    """Empty every folder and delete all but INBOX: the old copy, once the move is done."""
    with master_session(server, address) as session:
        folders = session.folders()
        for folder in folders:
            session.select(folder.name, readonly=False)
            session.expunge_all()
        # Children before their parents.
        for folder in sorted(folders, key=lambda f: f.name.count(f.delimiter or "/"), reverse=True):
            if folder.name.upper() != "INBOX":
                session.subscribe(folder.name, False)
                session.delete_folder(folder.name)


def _messages(session: MailboxSession) -> dict[int, Key]:
    """UID -> what identifies the message across servers, in the selected folder."""
    dates = session.metadata()
    heads = session.heads(["MESSAGE-ID"])
    return {
        uid: (head.size, dates[uid].internal_date, head.header.strip().lower())
        for uid, head in heads.items()
        if uid in dates
    }


def _missing(wanted: Mapping[int, Key], present: Mapping[int, Key]) -> list[int]:
    """The source UIDs whose message the target lacks (counting duplicates)."""
    have = Counter(present.values())
    missing = []
    for uid, key in sorted(wanted.items()):
        if have[key]:
            have[key] -= 1
        else:
            missing.append(uid)
    return missing


def _pairs(ours: Mapping[int, Key], present: Mapping[int, Key]) -> dict[int, int]:
    """Source UID -> target UID of the same message."""
    by_key: dict[Key, list[int]] = {}
    for uid, key in sorted(present.items()):
        by_key.setdefault(key, []).append(uid)
    pairs = {}
    for uid, key in sorted(ours.items()):
        if by_key.get(key):
            pairs[uid] = by_key[key].pop(0)
    return pairs


def _mirror_flags(
    dst: MailboxSession,
    ours: Mapping[int, Key],
    present: Mapping[int, Key],
    infos: Mapping[int, MessageInfo],
) -> None:
    """Messages an earlier pass copied get the flags the source has now."""
    if not present:
        return
    theirs = dst.metadata()
    changed = {
        target_uid: infos[uid].flags
        for uid, target_uid in _pairs(ours, present).items()
        if uid in infos and target_uid in theirs and theirs[target_uid].flags != infos[uid].flags
    }
    if changed:
        dst.set_flags(changed)


def _remove_extras(
    dst: MailboxSession, ours: Mapping[int, Key], present: Mapping[int, Key]
) -> None:
    """Before the switch the target holds only what a pass copied: what the source has
    no more (deleted since an earlier attempt) goes."""
    kept = set(_pairs(ours, present).values())
    extras = [uid for uid in present if uid not in kept]
    if extras:
        dst.expunge(extras)
