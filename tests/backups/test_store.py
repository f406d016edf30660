"""The stores, local and S3 (against moto's real S3 server, tests/backups/helpers.py): whole
objects or none, durable, checked, and nothing an interrupted write leaves is listed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backups.s3store import PART_SIZE, S3Store, s3_client
from backups.store import LocalStore, Store, StoreError, get_store
from tests.backups.helpers import S3Server
from tests.test_settings import child_env, run_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Store:  # type: ignore[no-untyped-def]
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    server: S3Server = request.getfixturevalue("s3_server")
    return S3Store(server.client(), server.new_bucket(), "backups")


def leave_an_unfinished_write(store: Store, key: str) -> None:
    """What a writer killed mid-object leaves: a temporary file, or a multipart upload
    with a part but never completed."""
    if isinstance(store, LocalStore):
        path = store.root / f"{key}.tmp-123456"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"trunc")
        return
    assert isinstance(store, S3Store)
    name = f"{store.prefix}/{key}"
    upload = store.client.create_multipart_upload(Bucket=store.bucket, Key=name)
    store.client.upload_part(
        Bucket=store.bucket, Key=name, UploadId=upload["UploadId"], PartNumber=1, Body=b"trunc"
    )


def unfinished_uploads(store: S3Store) -> list[str]:
    return [
        u["Key"]
        for u in store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    ]


def test_objects_round_trip(store):
    store.put("repo/blobs/abc.eml.zst.age", b"data")
    store.put("repo/snapshots/00000001.json.zst.age", b"manifest")
    store.put("repo2/blobs/other", b"another repository")
    store.flush()

    assert store.get("repo/blobs/abc.eml.zst.age") == b"data"
    assert store.get_range("repo/blobs/abc.eml.zst.age", 1, 2) == b"at"
    assert store.size("repo/blobs/abc.eml.zst.age") == 4
    assert store.size("repo/blobs/nothing") is None
    assert sorted(store.list("repo")) == [
        "repo/blobs/abc.eml.zst.age",
        "repo/snapshots/00000001.json.zst.age",
    ]
    store.delete("repo/blobs/abc.eml.zst.age")
    store.delete("repo/blobs/abc.eml.zst.age")  # deleting what is gone is no error
    with pytest.raises(StoreError, match="missing"):
        store.get("repo/blobs/abc.eml.zst.age")
    with pytest.raises(StoreError, match="missing"):
        store.get_range("repo/blobs/abc.eml.zst.age", 0, 1)


def test_nothing_is_visible_before_flush(tmp_path):
    store = LocalStore(tmp_path)
    store.put("repo/packs/a.pack", b"data")
    assert list(store.list("repo")) == []
    store.flush()
    assert list(store.list("repo")) == ["repo/packs/a.pack"]


def test_files_are_private(tmp_path):
    store = LocalStore(tmp_path)
    store.put("repo/blobs/x", b"data")
    store.flush()
    assert (tmp_path / "repo" / "blobs" / "x").stat().st_mode & 0o077 == 0


def test_what_an_interrupted_write_leaves_is_never_listed_and_is_discarded(store):
    store.put("repo/blobs/whole", b"complete")
    store.flush()
    leave_an_unfinished_write(store, "repo/blobs/half")
    leave_an_unfinished_write(store, "other/blobs/half")

    assert list(store.list("repo")) == ["repo/blobs/whole"]
    assert store.size("repo/blobs/half") is None
    assert store.discard_incomplete("repo") == 1
    assert store.discard_incomplete("repo") == 0
    assert list(store.list("repo")) == ["repo/blobs/whole"]
    assert store.get("repo/blobs/whole") == b"complete"
    assert store.discard_incomplete("other") == 1  # only under the prefix it was given


def test_keys_cannot_escape_the_store(store):
    for key in ("../outside", "repo/../../x", "/abs", "repo//x", "repo/x.tmp-1", ""):
        with pytest.raises(StoreError):
            store.put(key, b"no")


def test_a_write_error_is_a_store_error(tmp_path):
    (tmp_path / "repo").write_text("a file where a directory should be")
    with pytest.raises(StoreError, match="cannot write"):
        LocalStore(tmp_path).put("repo/blobs/x", b"data")


def test_an_s3_error_says_what_failed_and_what_to_check_without_the_secret(s3_server):
    store = S3Store(s3_server.client(), "postamt-no-such-bucket", "backups")
    with pytest.raises(StoreError) as error:
        store.put("repo/blobs/x", b"data")
    text = str(error.value)
    assert "cannot write s3://postamt-no-such-bucket/backups/repo/blobs/x" in text
    assert "NoSuchBucket" in text and "BACKUP_STORE_URL" in text
    assert s3_server.secret_access_key not in text

    unreachable = s3_client(
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
        access_key_id="id",
        secret_access_key=s3_server.secret_access_key,
    )
    with pytest.raises(StoreError) as error:
        S3Store(unreachable, "bucket", "").size("repo/x")
    assert "cannot read s3://bucket/repo/x" in str(error.value)
    assert "127.0.0.1:9" in str(error.value)
    assert s3_server.secret_access_key not in str(error.value)


def test_large_objects_go_in_and_out_in_pieces(store, tmp_path):
    """On S3 a file of more than one part is a multipart upload, checked part by part."""
    source = tmp_path / "message.eml"
    source.write_bytes(os.urandom(PART_SIZE + 5000))
    store.put_file("repo/blobs/big", source)
    store.put_file("repo/blobs/big", source)  # the same object again changes nothing
    store.flush()

    assert store.size("repo/blobs/big") == PART_SIZE + 5000
    pieces = list(store.iter_range("repo/blobs/big", PART_SIZE - 10, 5000, chunk_size=1024))
    assert max(len(piece) for piece in pieces) <= 1024
    assert b"".join(pieces) == source.read_bytes()[PART_SIZE - 10 : PART_SIZE + 4990]
    assert store.get("repo/blobs/big") == source.read_bytes()
    with pytest.raises(StoreError, match="shorter"):
        list(store.iter_range("repo/blobs/big", PART_SIZE + 4000, 5000))
    with pytest.raises(StoreError, match="shorter"):
        list(store.iter_range("repo/blobs/big", PART_SIZE + 10_000, 5))
    if isinstance(store, S3Store):
        assert unfinished_uploads(store) == []


def test_puts_from_many_threads_and_more_keys_than_one_listing_page(store):
    """The engine puts from a thread pool; S3 lists and deletes 1,000 keys a request."""
    keys = [f"repo/packs/{n:05}.pack" for n in range(1050)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.put(key, key.encode()), keys))
    store.put("repository-next-door/packs/kept", b"kept")
    store.flush()

    assert sorted(store.list("repo")) == keys
    assert store.get("repo/packs/01049.pack") == b"repo/packs/01049.pack"
    store.delete_prefix("repo")
    assert list(store.list("repo")) == []
    assert store.get("repository-next-door/packs/kept") == b"kept"


def test_the_settings_choose_the_store(s3_settings, settings):
    store = get_store()
    assert isinstance(store, S3Store)
    assert f"s3://{store.bucket}/backups" == settings.BACKUP_STORE_URL
    store.put("repo/x", b"data")
    assert get_store().get("repo/x") == b"data"

    settings.BACKUP_STORE_URL = ""
    assert isinstance(get_store(), LocalStore)


UPLOAD = """
import sys
from pathlib import Path
from backups.s3store import S3Store, s3_client

endpoint, bucket, source = sys.argv[1:]
client = s3_client(endpoint_url=endpoint, region="us-east-1", addressing_style="path",
                   access_key_id="id", secret_access_key="secret")
S3Store(client, bucket, "backups").put_file("repo/packs/big.pack", Path(source))
"""


def test_an_upload_killed_midway_leaves_no_object_and_prune_aborts_it(s3_server, tmp_path):
    """A writer killed with SIGKILL after its first part: no object under the key, nothing
    listed, and ``discard_incomplete`` aborts the upload. The file is a pipe, so the writer
    is stopped after its first part for sure, however fast the server is."""
    bucket = s3_server.new_bucket()
    store = S3Store(s3_server.client(), bucket, "backups")
    pipe = tmp_path / "message"
    os.mkfifo(pipe)
    writer = subprocess.Popen(
        [sys.executable, "-c", UPLOAD, s3_server.endpoint_url, bucket, str(pipe)], cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the writer has the pipe open once this succeeds
            try:
                fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                assert writer.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        os.set_blocking(fd, True)
        os.write(fd, os.urandom(PART_SIZE + 1000))  # a whole part, and some of the next
        while not _parts_stored(store):
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        os.close(fd)
    finally:
        writer.kill()

    assert store.size("repo/packs/big.pack") is None
    assert list(store.list("repo")) == []
    assert unfinished_uploads(store) == ["backups/repo/packs/big.pack"]
    assert store.discard_incomplete("repo") == 1
    assert unfinished_uploads(store) == []
    # The next run writes the same object whole.
    source = tmp_path / "again"
    source.write_bytes(b"x" * (PART_SIZE + 1))
    store.put_file("repo/packs/big.pack", source)
    assert store.size("repo/packs/big.pack") == PART_SIZE + 1


def _parts_stored(store: S3Store) -> int:
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    return sum(
        len(
            store.client.list_parts(
                Bucket=store.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            ).get("Parts", [])
        )
        for upload in uploads
    )


def test_s3_is_chosen_from_the_environment_with_the_secret_from_a_file(tmp_path):
    secret = tmp_path / "s3-secret"
    secret.write_text("from-a-file\n")
    result = run_settings(
        """
        from django.conf import settings
        from backups.store import get_store
        store = get_store()
        secret = settings.BACKUP_S3_SECRET_ACCESS_KEY
        print(type(store).__name__, store.bucket, store.prefix, secret)
        """,
        BACKUP_STORE_URL="s3://acme-mail-backups/postamt/eu",
        BACKUP_S3_ACCESS_KEY_ID="id",
        BACKUP_S3_SECRET_ACCESS_KEY_FILE=str(secret),
    )
    assert result.stdout.split() == ["S3Store", "acme-mail-backups", "postamt/eu", "from-a-file"]


@pytest.mark.parametrize(
    "variable, value",
    [
        ("BACKUP_STORE_URL", "https://acme-mail-backups.example.net/postamt"),
        ("BACKUP_STORE_URL", "s3://"),
        ("BACKUP_S3_ADDRESSING_STYLE", "subdomain"),
    ],
)
def test_a_wrong_store_setting_stops_the_start_and_says_which(variable, value):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=child_env(**{variable: value}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"{variable} must be" in result.stderr
