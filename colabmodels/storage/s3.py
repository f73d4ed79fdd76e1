"""Amazon S3 (and S3-compatible stores: MinIO, R2, moto) through s3fs.

``Ref.path`` is ``"bucket/key"``. Options are s3fs storage options (``key``, ``secret``,
``anon``, ``endpoint_url``, ``client_kwargs``, ...); without an explicit endpoint the standard
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` variables are used, as botocore itself does.

- identity: ``s3:<bucket>/<key>:<ETag>`` (``:<VersionId>`` added on versioned buckets)
- checksum: ``md5:<ETag>`` only when the ETag is a plain MD5 (single-part upload, no SSE-KMS)
- description/properties: user metadata (``x-amz-meta-*``), the description under the key
  ``description``. S3 lowercases metadata keys and limits all metadata to 2 KB; values that are
  not printable ASCII are stored RFC 2047-encoded and decoded on read.
- ``list()`` shows prefixes as folders; listed files carry no description/properties (that
  would cost one HEAD per object: ``stat()`` them).
"""

from __future__ import annotations

import base64
import email.header
import os
from typing import Any

from ..errors import NotFoundError, RefError, TransferError
from ..refs import Ref
from ._fsspec import (
    FsspecBackend,
    ListingPage,
    check_import,
    classify_exception,
    join_metadata,
    split_metadata,
)
from .base import RemoteStat
from .local import iso_utc

__all__ = ["INSTALL_HINT", "S3Backend"]

INSTALL_HINT = 'Reading s3:// needs s3fs: pip install "colabmodels[s3]"'
_KEEP_ON_COPY = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding",
                 "ContentLanguage")


def _encode_value(value: str) -> str:
    if value.isascii() and value.isprintable() and value == value.strip():
        return value
    return "=?utf-8?b?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


def _decode_value(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return value


def _is_plain_md5(etag: str) -> bool:
    return len(etag) == 32 and all(c in "0123456789abcdefABCDEF" for c in etag)


class S3Backend(FsspecBackend):
    """S3 objects. ``Ref.path`` is ``"bucket/key"``; a key ending in ``/`` names a folder."""

    source = "s3"
    url_prefix = "s3://"
    install_hint = INSTALL_HINT
    credentials_hint = ("Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or "
                        "pass anon=True for a public bucket.")
    copy_limit = 5 * 1024**3
    """Largest object whose metadata is replaced with one CopyObject (S3's limit)."""
    copy_part_bytes = 512 * 1024**2
    """Part size when larger objects are copied onto themselves part by part."""

    def _default_options(self, options: dict[str, Any]) -> dict[str, Any]:
        options = super()._default_options(options)
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and not options.get("endpoint_url") and not (
                options.get("client_kwargs") or {}).get("endpoint_url"):
            options["endpoint_url"] = endpoint
        return options

    def _make_fs(self) -> Any:
        s3fs = check_import("s3fs", INSTALL_HINT)
        return s3fs.S3FileSystem(**self.storage_options)

    def _s3(self, where: str, method: str, **kwargs: Any) -> dict[str, Any]:
        return self._call(where, self.fs.call_s3, method, **kwargs)

    # -- stat --------------------------------------------------------------------------------

    def _file_stat(self, bucket: str, key: str, head: dict[str, Any]) -> RemoteStat:
        etag = str(head.get("ETag") or "").strip('"')
        version = head.get("VersionId")
        version = None if version in (None, "null") else str(version)
        encrypted = str(head.get("ServerSideEncryption") or "").startswith("aws:kms") or bool(
            head.get("SSECustomerAlgorithm"))
        meta = {str(k): _decode_value(str(v)) for k, v in (head.get("Metadata") or {}).items()}
        description, properties = split_metadata(meta)
        identity = f"s3:{bucket}/{key}:{etag}" if etag else None
        if identity and version:
            identity += f":{version}"
        return RemoteStat(
            ref=self._ref(bucket, key),
            name=key.rsplit("/", 1)[-1],
            size=int(head.get("ContentLength", head.get("Size", 0)) or 0),
            is_dir=False,
            checksum=f"md5:{etag.lower()}" if _is_plain_md5(etag) and not encrypted else None,
            identity=identity,
            version=version,
            mime=head.get("ContentType"),
            modified=iso_utc(head.get("LastModified")),
            description=description,
            properties=properties,
        )

    def _head(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            return self._s3(self._where(bucket, key), "head_object", Bucket=bucket, Key=key)
        except NotFoundError:
            return None

    def _check_bucket(self, bucket: str) -> None:
        self._s3(self._where(bucket), "head_bucket", Bucket=bucket)

    def _object(self, bucket: str, key: str) -> RemoteStat | None:
        head = self._head(bucket, key)
        return None if head is None else self._file_stat(bucket, key, head)

    def _page(self, bucket: str, prefix: str, page_size: int,
              token: str | None) -> ListingPage:
        """One ListObjectsV2 page."""
        page = self._s3(self._where(bucket, prefix.rstrip("/")), "list_objects_v2", Bucket=bucket,
                        Prefix=prefix, Delimiter="/", MaxKeys=page_size,
                        **({"ContinuationToken": token} if token else {}))
        subdirs = [str(cp["Prefix"]).rstrip("/") for cp in page.get("CommonPrefixes") or []]
        objects = [self._file_stat(bucket, str(obj["Key"]),
                                   {"ContentLength": obj.get("Size", 0), "ETag": obj.get("ETag"),
                                    "LastModified": obj.get("LastModified")})
                   for obj in page.get("Contents") or []]
        more = page.get("IsTruncated") and page.get("NextContinuationToken")
        return subdirs, objects, str(more) if more else None

    # -- writes ------------------------------------------------------------------------------

    def _upload_kwargs(self, metadata: dict[str, Any] | None) -> dict[str, Any]:
        meta = metadata or {}
        joined = join_metadata(meta.get("description"), meta.get("properties"))
        return {"Metadata": {k: _encode_value(v) for k, v in joined.items()}} if joined else {}

    def set_metadata(self, ref: Ref, *, description: str | None = None,
                     properties: dict[str, str] | None = None) -> RemoteStat:
        """Merge into the object's user metadata by copying the object onto itself.

        The copy is conditional on the ETag read first, so a concurrent overwrite is noticed
        (and the merge redone) instead of being lost.
        """
        bucket, key = self._split(ref)
        where = self._where(bucket, key)
        if not key:
            raise RefError(f"{where} is a bucket; metadata is kept on objects")
        last: Exception | None = None
        for _attempt in range(3):
            head = self._head(bucket, key)
            if head is None:
                raise NotFoundError(f"not found: {where}")
            current = {str(k): _decode_value(str(v)) for k, v in (head.get("Metadata") or {}).items()}
            old_desc, props = split_metadata(current)
            props.update({str(k): str(v) for k, v in (properties or {}).items()})
            joined = join_metadata(description if description is not None else old_desc, props)
            new_meta = {k: _encode_value(v) for k, v in joined.items()}
            keep = {k: head[k] for k in _KEEP_ON_COPY if head.get(k)}
            source = {"Bucket": bucket, "Key": key}
            if head.get("VersionId") and head["VersionId"] != "null":
                source["VersionId"] = head["VersionId"]
            try:
                self._replace_metadata(bucket, key, int(head.get("ContentLength") or 0),
                                       str(head.get("ETag") or ""), source, new_meta, keep)
            except TransferError as e:
                if classify_exception(e)[1] == 412:  # changed since the HEAD: merge again
                    last = e
                    continue
                raise
            return self.stat(ref)
        raise TransferError(f"{where} kept changing while its metadata was updated") from last

    def _replace_metadata(self, bucket: str, key: str, size: int, etag: str,
                          source: dict[str, str], metadata: dict[str, str],
                          keep: dict[str, Any]) -> None:
        where = self._where(bucket, key)
        if size <= self.copy_limit:
            self._s3(where, "copy_object", Bucket=bucket, Key=key, CopySource=source,
                     CopySourceIfMatch=etag, Metadata=metadata, MetadataDirective="REPLACE",
                     **keep)
            return
        # Over 5 GiB CopyObject is refused: copy onto itself part by part.
        part = max(self.copy_part_bytes, -(-size // 10_000))
        mpu = self._s3(where, "create_multipart_upload", Bucket=bucket, Key=key,
                       Metadata=metadata, **keep)
        upload_id = mpu["UploadId"]
        try:
            parts = []
            for number, offset in enumerate(range(0, size, part), start=1):
                last_byte = min(size, offset + part) - 1
                out = self._s3(where, "upload_part_copy", Bucket=bucket, Key=key,
                               UploadId=upload_id, PartNumber=number, CopySource=source,
                               CopySourceIfMatch=etag,
                               CopySourceRange=f"bytes={offset}-{last_byte}")
                parts.append({"PartNumber": number, "ETag": out["CopyPartResult"]["ETag"]})
            self._s3(where, "complete_multipart_upload", Bucket=bucket, Key=key,
                     UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self._s3(where, "abort_multipart_upload", Bucket=bucket, Key=key,
                         UploadId=upload_id)
            except Exception:  # the original error matters more
                pass
            raise
