"""Checking that backups can be restored, without restoring them (``manage.py backup_check``).

Three depths, each adding to the one before:

- always: the database agrees with itself and with the store: every stored message has its
  blob, and every pack and manifest the store should hold is there, at its recorded size;
- ``read_data``: every pack is read back and hashed; packs are named by their SHA-256, so
  this needs no key and finds any bit the disk changed;
- with the identity: every manifest is opened and must list what the database says, and
  with ``read_data`` every blob is opened and must hash to its name: all that a restore
  does except the APPEND.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyrage
from django.utils import timezone
from django.utils.translation import gettext as _

from .crypto import DecryptFailed
from .manifest import ManifestError, read_manifest
from .models import Blob, Repository, StoredMessage
from .packs import Location, locate, pack_key, unpack_blob
from .services import snapshot_messages
from .store import Store, StoreError, get_store

HASH_CHUNK = 8 * 1024 * 1024
MAX_LISTED = 10  # problems of one kind named one by one; beyond that, counted


@dataclass
class CheckResult:
    repository: Repository
    snapshots: int = 0
    messages: int = 0
    packs: int = 0
    pack_bytes: int = 0
    blobs_opened: int = 0
    problems: list[str] = field(default_factory=list)

    def report(self, kind: str, items: list[str]) -> None:
        """One line per item, at most ``MAX_LISTED`` of them, then how many more."""
        self.problems.extend(f"{kind}: {item}" for item in items[:MAX_LISTED])
        if len(items) > MAX_LISTED:
            self.problems.append(
                _("%(kind)s: %(count)d more") % {"kind": kind, "count": len(items) - MAX_LISTED}
            )


def check_repository(
    repository: Repository,
    *,
    read_data: bool = False,
    keys: list[pyrage.x25519.Identity] | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> CheckResult:
    result = CheckResult(repository)
    store = get_store()
    name = str(repository.key)
    snapshots = list(repository.snapshots.order_by("seq"))
    result.snapshots = len(snapshots)
    blobs = Blob.objects.filter(repository=repository)
    result.messages = blobs.count()  # each content once, however many snapshots hold it

    without_blob = (
        StoredMessage.objects.filter(repository=repository)
        .exclude(sha256__in=blobs.values("sha256"))
        .values_list("sha256", flat=True)
        .distinct()
    )
    result.report(_("message without a blob"), sorted(without_blob))

    packs = list(repository.packs.order_by("pk"))
    result.packs = len(packs)
    result.pack_bytes = sum(pack.size for pack in packs)
    missing, wrong_size, damaged = [], [], []
    for number, pack in enumerate(packs, 1):
        key = pack_key(name, pack.name)
        size = store.size(key)
        if size is None:
            missing.append(pack)
        elif size != pack.size:
            wrong_size.append((pack, size))
        elif read_data and _sha256(store, key, size) != pack.name:
            damaged.append(pack)
        if read_data:
            progress(_("pack %(number)d of %(total)d") % {"number": number, "total": len(packs)})
    # A pack that prune removed meanwhile is not a problem: its row went first.
    current = set(repository.packs.values_list("pk", flat=True))
    result.report(_("pack missing"), [p.name for p in missing if p.pk in current])
    result.report(
        _("pack of the wrong size"),
        [
            _("%(name)s (%(size)d bytes, %(expected)d expected)")
            % {"name": p.name, "size": size, "expected": p.size}
            for p, size in wrong_size
            if p.pk in current
        ],
    )
    result.report(
        _("pack damaged (its SHA-256 is not its name)"),
        [p.name for p in damaged if p.pk in current],
    )

    absent = [s.manifest_key for s in snapshots if store.size(s.manifest_key) is None]
    kept = set(repository.snapshots.values_list("manifest_key", flat=True))
    result.report(_("manifest missing"), [key for key in absent if key in kept])
    if keys is None:
        return result

    disagree = []
    for snapshot in snapshots:
        if snapshot.manifest_key in absent:
            continue
        try:
            manifest = read_manifest(store, snapshot.manifest_key, keys)
        except (DecryptFailed, ManifestError, StoreError, ValueError) as exc:
            disagree.append(
                (snapshot, _("snapshot %(seq)d: %(error)s") % {"seq": snapshot.seq, "error": exc})
            )
            continue
        listed = Counter(
            (folder.name, entry.uid, entry.sha256)
            for folder in manifest.folders
            for entry in folder.messages
        )
        recorded = Counter(snapshot_messages(snapshot).values_list("folder", "uid", "sha256"))
        if listed != recorded:
            text = _(
                "snapshot %(seq)d: the manifest lists %(listed)d messages, the database "
                "%(recorded)d, and they differ"
            ) % {"seq": snapshot.seq, "listed": listed.total(), "recorded": recorded.total()}
            disagree.append((snapshot, text))
    # A snapshot that prune dropped meanwhile took its rows along: not a problem either.
    existing = set(repository.snapshots.values_list("pk", flat=True))
    result.report(_("manifest"), [text for snapshot, text in disagree if snapshot.pk in existing])

    if read_data:
        unreadable = []
        locations = {
            sha256: Location(pack, offset, length, size)
            for sha256, pack, offset, length, size in blobs.values_list(
                "sha256", "pack__name", "offset", "length", "size"
            )
        }
        for number, sha256 in enumerate(sorted(locations), 1):
            error = _open_blob(store, repository, sha256, locations, keys)
            if error is None:
                result.blobs_opened += 1
            elif error:
                unreadable.append(f"{sha256}: {error}")
            if number % 1000 == 0:
                progress(
                    _("message %(number)d of %(total)d")
                    % {"number": number, "total": len(locations)}
                )
        result.report(_("message unreadable"), unreadable)
    return result


def record_check(repository_id: int) -> CheckResult | None:
    """The scheduled check of one repository: the index, and every stored pack read back
    and hashed. It runs on a backup worker, which holds no key, so nothing is opened; what
    it finds is kept on the repository for the staff overview."""
    repository = Repository.objects.filter(pk=repository_id).first()
    if repository is None:
        return None
    result = check_repository(repository, read_data=True)
    Repository.objects.filter(pk=repository_id).update(
        checked_at=timezone.now(), check_problems=result.problems
    )
    return result


def repositories_to_check() -> list[int]:
    return list(Repository.objects.filter(seq__gt=0).values_list("pk", flat=True))


def _open_blob(
    store: Store,
    repository: Repository,
    sha256: str,
    locations: dict[str, Location],
    keys: list[pyrage.x25519.Identity],
) -> str | None:
    """None when the message opens and matches its hash, else why not; "" when prune
    dropped it meanwhile. A blob prune moved to a new pack meanwhile is read from there."""
    try:
        unpack_blob(store, str(repository.key), sha256, locations, keys, _DISCARD)
        return None
    except (DecryptFailed, StoreError) as exc:
        now = locate(repository.pk, [sha256])
        if sha256 not in now:
            return ""
        if now[sha256] == locations[sha256]:
            return str(exc)
    try:
        unpack_blob(store, str(repository.key), sha256, now, keys, _DISCARD)
        return None
    except (DecryptFailed, StoreError) as exc:
        return str(exc)


class _Discard:
    """Where a checked message goes: only its hash is wanted, whatever its size."""

    def write(self, data: bytes) -> int:
        return len(data)


_DISCARD = _Discard()


def _sha256(store: Store, key: str, size: int) -> str:
    """One read of the whole pack, in pieces: one request on S3, little memory anywhere."""
    digest = hashlib.sha256()
    for piece in store.iter_range(key, 0, size, chunk_size=HASH_CHUNK):
        digest.update(piece)
    return digest.hexdigest()
