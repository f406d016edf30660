"""The local store: whole objects or none, durable, and nothing a crash leaves is listed."""

from __future__ import annotations

import pytest

from backups.store import LocalStore, StoreError


def test_objects_round_trip(tmp_path):
    store = LocalStore(tmp_path)
    store.put("repo/blobs/abc.eml.zst.age", b"data")
    store.put("repo/snapshots/00000001.json.zst.age", b"manifest")
    store.flush()

    assert store.get("repo/blobs/abc.eml.zst.age") == b"data"
    assert store.get_range("repo/blobs/abc.eml.zst.age", 1, 2) == b"at"
    assert sorted(store.list("repo")) == [
        "repo/blobs/abc.eml.zst.age",
        "repo/snapshots/00000001.json.zst.age",
    ]
    store.delete("repo/blobs/abc.eml.zst.age")
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


def test_what_an_interrupted_write_leaves_is_never_listed_and_is_discarded(tmp_path):
    store = LocalStore(tmp_path)
    store.put("repo/blobs/whole", b"complete")
    store.flush()
    (tmp_path / "repo" / "blobs" / "half.tmp-123456").write_bytes(b"trunc")

    assert list(store.list("repo")) == ["repo/blobs/whole"]
    assert store.discard_incomplete("repo") == 1
    assert [p.name for p in (tmp_path / "repo" / "blobs").iterdir()] == ["whole"]


def test_keys_cannot_escape_the_store(tmp_path):
    store = LocalStore(tmp_path / "store")
    for key in ("../outside", "repo/../../x", "/abs", "repo//x", "repo/x.tmp-1"):
        with pytest.raises(StoreError):
            store.put(key, b"no")


def test_a_write_error_is_a_store_error(tmp_path):
    (tmp_path / "repo").write_text("a file where a directory should be")
    with pytest.raises(StoreError, match="cannot write"):
        LocalStore(tmp_path).put("repo/blobs/x", b"data")


def test_large_objects_go_in_and_out_in_pieces(tmp_path):
    store = LocalStore(tmp_path / "store")
    source = tmp_path / "message.eml"
    source.write_bytes(bytes(range(256)) * 40)
    store.put_file("repo/blobs/big", source)
    assert list(store.list("repo")) == []  # like put: visible only after flush
    store.flush()

    pieces = list(store.iter_range("repo/blobs/big", 10, 5000, chunk_size=1024))
    assert [len(piece) for piece in pieces] == [1024] * 4 + [904]
    assert b"".join(pieces) == source.read_bytes()[10:5010]
    with pytest.raises(StoreError, match="shorter"):
        list(store.iter_range("repo/blobs/big", 10_000, 500))
