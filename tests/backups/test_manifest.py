"""The manifest format: what older manifests lack reads as "not recorded"."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from backups.manifest import Entry, Folder, Manifest

TAKEN = datetime(2025, 3, 1, 2, 15, tzinfo=UTC)


def _manifest(*folders: Folder) -> Manifest:
    return Manifest("3f6c", "anna@example.com", 42, TAKEN, list(folders))


def test_subscriptions_are_recorded_per_folder():
    entry = Entry(37, "9f2c", 20480, ["$Label1", "\\Seen"], TAKEN, "<a@example.org>")
    manifest = _manifest(
        Folder("INBOX", "/", 1, 38, 112, [entry], subscribed=True),
        Folder("Archiv", "/", 2, 1, None, subscribed=False),
    )

    again = Manifest.from_json(manifest.to_json())

    assert again == manifest
    assert [f.subscribed for f in again.folders] == [True, False]


def test_a_manifest_from_before_subscriptions_were_recorded_reads_as_unknown():
    data = json.loads(_manifest(Folder("INBOX", "/", 1, 1, None)).to_json())
    for folder in data["folders"]:
        del folder["subscribed"]  # as version 1 manifests were first written

    (folder,) = Manifest.from_json(json.dumps(data).encode()).folders

    assert folder.subscribed is None
