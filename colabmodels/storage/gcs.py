"""Google Cloud Storage through gcsfs.

``Ref.path`` is ``"bucket/key"``. Options are gcsfs storage options (``token``, ``project``,
``endpoint_url``, ...). When ``STORAGE_EMULATOR_HOST`` is set and no endpoint is given, the
emulator is used, anonymously unless a ``token`` is passed.

- identity: ``gcs:<bucket>/<key>:<generation>`` (a new generation on every write)
- checksum: ``md5:<hex>`` from ``md5Hash``; ``crc32c:<b64>`` for composite objects, which
  have no MD5
- description/properties: custom metadata, the description under the key ``description``.
  ``list()`` entries carry them too (the listing returns full object resources).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from datetime import datetime
from typing import Any

from ..errors import NotFoundError, RefError, TransferError
from ..refs import Ref
from ._fsspec import FsspecBackend, ListingPage, check_import, join_metadata, split_metadata
from .base import RemoteStat
from .local import iso_utc

__all__ = ["INSTALL_HINT", "GCSBackend", "emulator_endpoint"]

INSTALL_HINT = 'Reading gs:// needs gcsfs: pip install "colabmodels[gcs]"'


def _rfc3339(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    text = re.sub(r"\.(\d{6})\d+", r".\1", text)  # Python 3.10 takes at most 6 digits
    text = re.sub(r"\.(\d{1,5})(?=[+-]|$)", lambda m: "." + m.group(1).ljust(6, "0"), text)
    try:
        return iso_utc(datetime.fromisoformat(text))
    except ValueError:
        return value


def _md5_hex(b64: str | None) -> str | None:
    if not b64:
        return None
    try:
        return base64.b64decode(b64).hex()
    except (binascii.Error, ValueError):
        return None


def emulator_endpoint() -> str | None:
    """``STORAGE_EMULATOR_HOST`` as a URL (``http://`` added when it has no scheme), or None."""
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").strip()
    if host in ("", "default"):
        return None
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


class GCSBackend(FsspecBackend):
    """GCS objects. ``Ref.path`` is ``"bucket/key"``; a key ending in ``/`` names a folder."""

    source = "gcs"
    url_prefix = "gs://"
    install_hint = INSTALL_HINT
    credentials_hint = ("In Colab run google.colab.auth.authenticate_user(); elsewhere set "
                        "GOOGLE_APPLICATION_CREDENTIALS to a service-account key or run "
                        "`gcloud auth application-default login`; pass token='anon' for a "
                        "public bucket.")

    def _default_options(self, options: dict[str, Any]) -> dict[str, Any]:
        options = super()._default_options(options)
        emulator = emulator_endpoint()
        if emulator and not options.get("endpoint_url"):
            options["endpoint_url"] = emulator
            options.setdefault("token", "anon")
        return options

    def _make_fs(self) -> Any:
        check_import("gcsfs", INSTALL_HINT)
        # The plain JSON-API filesystem. Recent gcsfs exports an "extended" class by default
        # that first asks the gRPC Storage Control API whether a bucket is zonal; where that
        # answer is unavailable (public buckets read anonymously, emulators, restricted
        # service accounts) it asks again, with retries, before every read.
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(**self.storage_options)

    def _api(self, where: str, method: str, path: str, *args: str, **kwargs: Any) -> Any:
        return self._call(where, self.fs.call, method, path, *args, json_out=True, **kwargs)

    # -- stat --------------------------------------------------------------------------------

    def _file_stat(self, bucket: str, obj: dict[str, Any]) -> RemoteStat:
        key = str(obj["name"])
        md5 = _md5_hex(obj.get("md5Hash"))
        crc = obj.get("crc32c")
        generation = str(obj["generation"]) if obj.get("generation") else None
        description, properties = split_metadata(obj.get("metadata"))
        return RemoteStat(
            ref=self._ref(bucket, key),
            name=key.rsplit("/", 1)[-1],
            size=int(obj.get("size") or 0),
            is_dir=False,
            checksum=f"md5:{md5}" if md5 else (f"crc32c:{crc}" if crc else None),
            identity=f"gcs:{bucket}/{key}:{generation}" if generation else None,
            version=generation,
            mime=obj.get("contentType"),
            modified=_rfc3339(obj.get("updated")),
            description=description,
            properties=properties,
        )

    def _get(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            return self._api(self._where(bucket, key), "GET", "b/{}/o/{}", bucket, key)
        except NotFoundError:
            return None

    def _check_bucket(self, bucket: str) -> None:
        self._api(self._where(bucket), "GET", "b/{}", bucket)

    def _object(self, bucket: str, key: str) -> RemoteStat | None:
        obj = self._get(bucket, key)
        return None if obj is None else self._file_stat(bucket, obj)

    def _page(self, bucket: str, prefix: str, page_size: int,
              token: str | None) -> ListingPage:
        """One objects.list page."""
        page = self._api(self._where(bucket, prefix.rstrip("/")), "GET", "b/{}/o", bucket,
                         prefix=prefix or None, delimiter="/", maxResults=page_size,
                         **({"pageToken": token} if token else {}))
        subdirs = [str(sub).rstrip("/") for sub in page.get("prefixes") or []]
        objects = [self._file_stat(bucket, obj) for obj in page.get("items") or []]
        return subdirs, objects, page.get("nextPageToken") or None

    # -- writes ------------------------------------------------------------------------------

    def _upload_kwargs(self, metadata: dict[str, Any] | None) -> dict[str, Any]:
        meta = metadata or {}
        joined = join_metadata(meta.get("description"), meta.get("properties"))
        return {"metadata": joined} if joined else {}

    def set_metadata(self, ref: Ref, *, description: str | None = None,
                     properties: dict[str, str] | None = None) -> RemoteStat:
        """Merge into the object's custom metadata (a PATCH conditional on the metageneration,
        so two concurrent updates do not lose each other's keys)."""
        bucket, key = self._split(ref)
        where = self._where(bucket, key)
        if not key:
            raise RefError(f"{where} is a bucket; metadata is kept on objects")
        last: Exception | None = None
        for _attempt in range(5):
            obj = self._get(bucket, key)
            if obj is None:
                raise NotFoundError(f"not found: {where}")
            old_desc, props = split_metadata(obj.get("metadata"))
            props.update({str(k): str(v) for k, v in (properties or {}).items()})
            merged = join_metadata(description if description is not None else old_desc, props)
            try:
                out = self._api(where, "PATCH", "b/{}/o/{}", bucket, key,
                                json={"metadata": merged},
                                ifMetagenerationMatch=obj.get("metageneration"))
            except TransferError as e:
                if isinstance(e.__cause__, FileExistsError):  # 412: changed meanwhile
                    last = e
                    continue
                raise
            if isinstance(out, dict) and out.get("name") == key and out.get("generation"):
                return self._file_stat(bucket, out)
            return self.stat(ref)
        raise TransferError(f"{where} kept changing while its metadata was updated") from last
