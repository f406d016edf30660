"""Backups in S3-compatible object storage (AWS S3, MinIO, Ceph RGW, Wasabi, …), with the
guarantees of the local store: a key holds its whole object or nothing, what is written is
checked on arrival, and nothing an interrupted upload leaves is listed.

boto3 rather than obstore: prune must find and abort the multipart uploads that a killed
worker left (``ListMultipartUploads``), which obstore does not offer; and boto3 is the
reference client that S3-compatible servers document and test against.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .store_base import CHUNK_SIZE, StoreError, check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

# Parts of a multipart upload: one is held in memory at a time (S3's minimum is 5 MiB, its
# maximum 10,000 parts, so 8 MiB parts allow objects of up to 78 GiB).
PART_SIZE = 8 * 1024 * 1024
MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    """A bucket, or a prefix in one. ``put`` is a single PUT and ``put_file`` of more than
    one part a multipart upload: S3 shows an object only once it is complete, so a key holds
    its whole object or nothing, and an object is durable once its request returned. Every
    request carries the MD5 of its body (``Content-MD5``), which the server checks before it
    stores anything; a multipart object's size is read back once it is complete."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self, key: str) -> str:
        """How an operator finds the object: ``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self._key(key)}"

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentMD5=_md5(data)
            )
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(f"cannot write {self._where(key)}", exc) from exc

    def put_file(self, key: str, source: Path) -> None:
        """The first part decides: a file that ends within it goes up as one PUT, a larger
        one as a multipart upload, part by part, so memory holds one part whatever the size
        (the file's size is not asked for: a pipe works too)."""
        try:
            with source.open("rb") as handle:
                first = handle.read(PART_SIZE)
                if len(first) < PART_SIZE:
                    self.put(key, first)
                    return
                self._put_parts(key, first, handle)
        except OSError as exc:
            raise StoreError(f"cannot read {source} to store it: {exc}") from exc

    def _put_parts(self, key: str, first: bytes, handle: BinaryIO) -> None:
        name = self._key(key)
        try:
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=name)
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(f"cannot write {self._where(key)}", exc) from exc
        upload_id = upload["UploadId"]
        parts: list[CompletedPartTypeDef] = []
        size = 0
        try:
            data = first
            while data:
                number = len(parts) + 1
                answer = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ContentMD5=_md5(data),
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                size += len(data)
                data = handle.read(PART_SIZE)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except (BotoCoreError, ClientError, OSError) as exc:
            self._abort(name, upload_id)
            if isinstance(exc, OSError):
                raise
            raise _store_error(f"cannot write {self._where(key)}", exc) from exc
        stored = self.size(key)
        if stored != size:  # not what was sent: gone, so that the next run writes it again
            self.delete(key)
            raise StoreError(f"{self._where(key)} held {stored} bytes after writing {size}")

    def _abort(self, name: str, upload_id: str) -> None:
        """Best effort: what is left is aborted by the next prune (``discard_incomplete``)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
        except (BotoCoreError, ClientError):
            pass

    def flush(self) -> None:
        """Nothing to do: S3 acknowledges a request only once the object is stored."""

    def get(self, key: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return answer["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._read_error(key, exc) from exc

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return b"".join(self.iter_range(key, offset, length, chunk_size=max(length, 1)))

    def iter_range(
        self, key: str, offset: int, length: int, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        if length <= 0:
            if self.size(key) is None:
                raise StoreError(f"{key} is missing from the backup store")
            return
        wanted = f"bytes={offset}-{offset + length - 1}"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), Range=wanted)
        except ClientError as exc:
            if _code(exc) == "InvalidRange":  # the object ends before ``offset``
                raise StoreError(f"{key} is shorter than the index says") from exc
            raise self._read_error(key, exc) from exc
        except BotoCoreError as exc:
            raise self._read_error(key, exc) from exc
        left = length
        try:
            for data in body["Body"].iter_chunks(chunk_size):
                data = data[:left]
                left -= len(data)
                yield data
        except BotoCoreError as exc:
            raise self._read_error(key, exc) from exc
        finally:
            body["Body"].close()
        if left:
            raise StoreError(f"{key} is shorter than the index says")

    def size(self, key: str) -> int | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
        except ClientError as exc:
            if _code(exc) in MISSING:
                return None
            raise self._read_error(key, exc) from exc
        except BotoCoreError as exc:
            raise self._read_error(key, exc) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(f"cannot delete {self._where(key)}", exc) from exc

    def list(self, prefix: str) -> Iterator[str]:
        """Only complete objects: S3 lists an upload once it is complete, never before."""
        for name in self._names(prefix):
            yield name[len(self.prefix) + 1 :] if self.prefix else name

    def _names(self, prefix: str) -> Iterator[str]:
        """The full names under ``prefix``, a page (1,000) at a time."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix) + "/"
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"]
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(f"cannot list s3://{self.bucket}/{self._key(prefix)}/", exc) from exc

    def discard_incomplete(self, prefix: str) -> int:
        """Abort the multipart uploads under ``prefix`` that were never completed (a worker
        killed mid-upload): their parts are invisible but stored, and billed."""
        under = self._key(prefix) + "/"
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=under
        )
        aborted = 0
        try:
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Key"].startswith(under):
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted += 1
        except (BotoCoreError, ClientError) as exc:
            raise _store_error(
                f"cannot abort the unfinished uploads under s3://{self.bucket}/{under}", exc
            ) from exc
        return aborted

    def delete_prefix(self, prefix: str) -> None:
        names = self._names(prefix)
        while batch := list(islice(names, 1000)):  # DeleteObjects takes 1,000 at most
            try:
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
                )
            except (BotoCoreError, ClientError) as exc:
                raise _store_error(
                    f"cannot delete s3://{self.bucket}/{self._key(prefix)}/", exc
                ) from exc
            if errors := answer.get("Errors"):
                first = errors[0]
                raise StoreError(
                    f"cannot delete s3://{self.bucket}/{first.get('Key')}: {first.get('Code')} "
                    f"({first.get('Message')}), and {len(errors) - 1} more"
                )

    def _read_error(self, key: str, exc: BotoCoreError | ClientError) -> StoreError:
        if isinstance(exc, ClientError) and _code(exc) in MISSING:
            return StoreError(f"{key} is missing from the backup store")
        return _store_error(f"cannot read {self._where(key)}", exc)


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# What an operator should look at, by S3's error code (a HEAD request's error has no body,
# only its HTTP status).
ACCESS = "the credentials lack a permission this process needs (docs/operations.md)"
HINTS = {
    "NoSuchBucket": "check BACKUP_STORE_URL",
    "AccessDenied": ACCESS,
    "403": ACCESS + "; a missing object shows as 403 without s3:ListBucket",
    "InvalidAccessKeyId": "check BACKUP_S3_ACCESS_KEY_ID (or AWS_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": "check BACKUP_S3_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY)",
    "BadDigest": "the data arrived damaged and was not stored",
    "InvalidDigest": "the data arrived damaged and was not stored",
    "RequestTimeTooSkewed": "this machine's clock is wrong",
    "PermanentRedirect": "the bucket is in another region: check BACKUP_S3_REGION",
    "AuthorizationHeaderMalformed": "check BACKUP_S3_REGION",
}


def _store_error(what: str, exc: BotoCoreError | ClientError) -> StoreError:
    """S3's message and error code, and what to check where that is clear; botocore's
    messages name endpoints and keys, never credentials."""
    if not isinstance(exc, ClientError):
        return StoreError(f"{what}: {exc}")
    code = _code(exc)
    message = exc.response.get("Error", {}).get("Message") or ""
    detail = f"{message} ({code})" if message else code
    hint = HINTS.get(code)
    return StoreError(f"{what}: {detail}" + (f" — {hint}" if hint else ""))


def s3_client(
    *,
    endpoint_url: str = "",
    region: str = "",
    addressing_style: str = "auto",
    access_key_id: str = "",
    secret_access_key: str = "",
) -> S3Client:
    """A client for one process (boto3's clients are thread-safe, not fork-safe), made once:
    making one costs tens of milliseconds. Without keys, boto3's own chain applies
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance role)."""
    return _client(
        endpoint_url, region, addressing_style, access_key_id, secret_access_key, os.getpid()
    )


@lru_cache(maxsize=8)
def _client(
    endpoint_url: str,
    region: str,
    addressing_style: str,
    access_key_id: str,
    secret_access_key: str,
    _pid: int,
) -> S3Client:
    config = Config(
        # The settings allow only these three.
        s3={"addressing_style": cast(Literal["auto", "virtual", "path"], addressing_style)},
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=16,
        # We send Content-MD5 ourselves, which every S3-compatible server checks; the
        # SDK's own default (a CRC32 trailer, since botocore 1.36) is refused by several.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region or None,
        aws_access_key_id=access_key_id or None,
        aws_secret_access_key=secret_access_key or None,
        config=config,
    )
