#!/usr/bin/env python
"""Backup store benchmark: a large object into S3 and back, with bounded memory.

Starts moto's S3 server (a process of its own, as the tests do), writes a file of ``--mib``
MiB (default 256) of random bytes, stores it with ``S3Store.put_file`` (a multipart upload of
8 MiB parts, read from disk one part at a time) and reads it back with ``iter_range``,
hashing it; the same with ``LocalStore`` for reference. Memory is this process's peak RSS
above what it had before the first store call: it must stay near one part, whatever the size.

Last line: ``store s3_put_mib_s=X s3_read_mib_s=Y peak_rss_mib=Z (target peak_rss_mib<=64)``.

    .venv/bin/python bench/store.py [--mib N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backups.s3store import S3Store, s3_client  # noqa: E402
from backups.store import LocalStore, Store  # noqa: E402
from tests.backups.moto import start_moto  # noqa: E402

PEAK_TARGET_MIB = 64


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def round_trip(store: Store, source: Path, size: int, digest: str) -> tuple[float, float]:
    """Seconds to store the file and to read it back whole, checked."""
    started = time.perf_counter()
    store.put_file("repo/packs/large.pack", source)
    store.flush()
    written = time.perf_counter()
    read = hashlib.sha256()
    for piece in store.iter_range("repo/packs/large.pack", 0, size):
        read.update(piece)
    assert read.hexdigest() == digest, "the object read back differs"
    return written - started, time.perf_counter() - written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="postamt-bench-store-") as work:
        source = Path(work, "large")
        digest = hashlib.sha256()
        with source.open("wb") as out:
            for _ in range(args.mib):
                block = os.urandom(1024 * 1024)
                digest.update(block)
                out.write(block)
        moto, endpoint = start_moto()
        try:
            client = s3_client(
                endpoint_url=endpoint,
                region="us-east-1",
                addressing_style="path",
                access_key_id="bench",
                secret_access_key="bench",
            )
            client.create_bucket(Bucket="postamt-bench")
            before = peak_rss_mib()
            s3_put, s3_read = round_trip(
                S3Store(client, "postamt-bench", "backups"), source, size, digest.hexdigest()
            )
            local_put, local_read = round_trip(
                LocalStore(Path(work, "store")), source, size, digest.hexdigest()
            )
            peak = peak_rss_mib() - before
        finally:
            moto.terminate()
            moto.wait(10)
    mib = args.mib
    print(f"S3 (moto on 127.0.0.1): put {s3_put:.2f} s, read back {s3_read:.2f} s for {mib} MiB")
    print(f"local directory:        put {local_put:.2f} s, read back {local_read:.2f} s")
    print(
        f"store s3_put_mib_s={mib / s3_put:.1f} s3_read_mib_s={mib / s3_read:.1f} "
        f"peak_rss_mib={peak:.0f} (target peak_rss_mib<={PEAK_TARGET_MIB})"
    )


if __name__ == "__main__":
    main()
