"""The expiry sweep: what no live download names goes, what a run is still writing stays."""

from __future__ import annotations

import pytest

from backups import downloads
from backups.models import DownloadJob, JobStatus
from backups.store import get_store
from tests.backups.helpers import make_snapshot, message
from tests.factories import make_mailbox

pytestmark = pytest.mark.django_db


def test_the_sweep_removes_objects_no_live_download_names(restore_side):
    snapshot = make_snapshot(make_mailbox("anna"), {"INBOX": [(message("one"), [])]})
    store = get_store()
    building = DownloadJob.objects.create(
        repository=snapshot.repository,
        snapshot=snapshot,
        requested_by="test",
        status=JobStatus.RUNNING,
        object_key=f"{downloads.PREFIX}/building.zip.age",
    )
    failed = DownloadJob.objects.create(
        repository=snapshot.repository,
        snapshot=snapshot,
        requested_by="test",
        status=JobStatus.FAILED,
        object_key=f"{downloads.PREFIX}/failed.zip.age",
        secret="AGE-SECRET-KEY-1X",
    )
    for key in (building.object_key, failed.object_key, f"{downloads.PREFIX}/lost.zip.age"):
        store.put(key, b"sealed")
    store.flush()

    assert downloads.expire() == 2

    assert list(store.list(downloads.PREFIX)) == [building.object_key]
    failed.refresh_from_db()
    assert (failed.object_key, failed.secret) == ("", "")
