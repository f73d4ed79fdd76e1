"""What the S3 and GCS backends share: a lazily built fsspec filesystem, ``bucket/key`` paths,
ranged reads through ``cat_file``, uploads through ``put_file`` and one translation of
botocore/gcsfs/aiohttp errors into colabmodels errors.

Nothing here imports s3fs or gcsfs at module import; the subclasses do, on first use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import (
    AuthError,
    ColabModelsError,
    NotFoundError,
    RefError,
    RetryableError,
    TransferError,
)
from ..progress import ProgressCallback
from ..refs import Ref
from ..retry import network_down_error
from .base import RemoteStat, StorageBackend

logger = logging.getLogger(__name__)

READ_REQUEST_BYTES = 8 * 1024 * 1024
"""Largest single ranged GET that ``open_range`` sends (and holds in memory)."""
YIELD_BYTES = 1024 * 1024

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchVersion", "404"}
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
               "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem",
               "InvalidClientTokenId", "UnrecognizedClientException", "403", "401"}
_RETRY_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                "TooManyRequestsException", "RequestThrottled", "RequestTimeout",
                "RequestTimeoutException", "InternalError", "ServiceUnavailable",
                "BandwidthLimitExceeded", "EC2ThrottledException", "PriorRequestNotComplete"}


def _chain(e: BaseException) -> Iterator[BaseException]:
    """``e``, then its causes/contexts (libraries wrap the interesting error)."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def classify_exception(e: BaseException) -> tuple[str, int | None, float | None]:
    """``(kind, status, retry_after)`` for an error from s3fs/gcsfs/botocore/aiohttp.

    kind is ``"notfound"``, ``"auth"``, ``"credentials"`` (none configured), ``"retry"`` or
    ``"other"``.
    """
    for err in _chain(e):
        name = type(err).__name__
        module = type(err).__module__ or ""
        # botocore.exceptions.ClientError: the server's error code and HTTP status.
        response = getattr(err, "response", None)
        if isinstance(response, dict) and "Error" in response:
            code = str(response.get("Error", {}).get("Code") or "")
            meta = response.get("ResponseMetadata") or {}
            status = meta.get("HTTPStatusCode")
            headers = meta.get("HTTPHeaders") or {}
            retry_after = _seconds(headers.get("retry-after"))
            if code in _NOT_FOUND_CODES or status == 404:
                return "notfound", status, None
            if code in _AUTH_CODES or status in (401, 403):
                return "auth", status, None
            if code in _RETRY_CODES or status in (408, 429) or (status or 0) >= 500:
                return "retry", status, retry_after
            return "other", status, None
        # gcsfs.retry.HttpError carries .code
        if name == "HttpError" and module.startswith("gcsfs"):
            http_status = getattr(err, "code", None)
            if not isinstance(http_status, int):
                http_status = None
            if http_status in (401, 403):
                return "auth", http_status, None
            if http_status == 404:
                return "notfound", http_status, None
            if http_status in (408, 429) or (http_status or 0) >= 500:
                return "retry", http_status, None
            return "other", http_status, None
        if name in ("NoCredentialsError", "PartialCredentialsError",
                    "DefaultCredentialsError", "CredentialRetrievalError"):
            return "credentials", None, None
        if module.startswith("google.auth") and name in ("RefreshError", "TransportError"):
            return "auth", None, None
        if module.startswith("botocore") and name in (
                "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
                "ConnectTimeoutError", "ConnectionError", "HTTPClientError",
                "ResponseStreamingError", "IncompleteReadError", "ProxyConnectionError"):
            return "retry", None, None
        if module.startswith(("aiohttp", "requests")) or name in ("FSTimeoutError",):
            return "retry", None, None
        if isinstance(err, (asyncio.TimeoutError, concurrent.futures.TimeoutError,
                            TimeoutError, ConnectionError)):
            return "retry", None, None
        if isinstance(err, FileNotFoundError):
            return "notfound", 404, None
        if isinstance(err, PermissionError) or str(err).startswith("Forbidden"):
            return "auth", 403, None
    return "other", None, None


def _seconds(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class _ProgressAdapter:
    """An fsspec ``Callback`` that reports byte deltas to a colabmodels progress callback."""

    def __new__(cls, progress: ProgressCallback | None) -> Any:
        from fsspec.callbacks import Callback, NoOpCallback

        if progress is None:
            return NoOpCallback()
        report = progress

        class _Adapter(Callback):
            def __init__(self) -> None:
                super().__init__()
                self._sent = 0

            def call(self, *args: Any, **kwargs: Any) -> None:
                delta = int(self.value or 0) - self._sent
                if delta > 0:
                    self._sent += delta
                    report(delta)

        return _Adapter()


#: one listing page: the sub-prefixes (no trailing ``/``), the objects and the next page's token
ListingPage = tuple[list[str], list[RemoteStat], "str | None"]


class FsspecBackend(StorageBackend):
    """Shared machinery of the bucket/key backends. ``Ref.path`` is ``"bucket/key"``.

    Subclasses set ``source``, ``url_prefix`` and ``install_hint`` and implement ``_make_fs``,
    ``_check_bucket``, ``_object``, ``_page`` (from which ``stat`` and ``list`` are built once,
    here), ``set_metadata`` and ``_upload_kwargs``.

    Args:
        **storage_options: passed to the fsspec filesystem (endpoint, credentials, ...).
    """

    url_prefix = ""
    install_hint = ""
    credentials_hint = ""

    def __init__(self, **storage_options: Any) -> None:
        self.storage_options = self._default_options(dict(storage_options))
        self._fs: Any = None
        self._fs_pid = 0
        self._fs_lock = threading.Lock()

    # -- hooks -------------------------------------------------------------------------------

    def _default_options(self, options: dict[str, Any]) -> dict[str, Any]:
        # Never serve stale listings: other writers change buckets behind our back.
        options.setdefault("use_listings_cache", False)
        return options

    def _make_fs(self) -> Any:
        raise NotImplementedError

    def _upload_kwargs(self, metadata: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    def _check_bucket(self, bucket: str) -> None:
        """Raise (NotFoundError, AuthError...) unless ``bucket`` exists and can be read."""
        raise NotImplementedError

    def _object(self, bucket: str, key: str) -> RemoteStat | None:
        """The object ``key``'s stat, or None when there is no such object."""
        raise NotImplementedError

    def _page(self, bucket: str, prefix: str, page_size: int,
              token: str | None) -> ListingPage:
        """One listing page below ``prefix`` (delimited by ``/``): the sub-prefixes (without
        their trailing ``/``), the objects (folder placeholders ``key/`` included: they make a
        folder exist) and the next token."""
        raise NotImplementedError

    # -- stat and list: the same rules on every bucket store ---------------------------------

    def _dir_stat(self, bucket: str, key: str) -> RemoteStat:
        return RemoteStat(ref=self._ref(bucket, key), name=key.rsplit("/", 1)[-1] or bucket,
                          size=None, is_dir=True)

    def stat(self, ref: Ref) -> RemoteStat:
        """An object's stat, or a folder's when objects lie below ``key/`` (a key ending in
        ``/`` names a folder only).

        Raises:
            NotFoundError: no such bucket, object or folder.
        """
        bucket, key = self._split(ref)
        if not key:
            self._check_bucket(bucket)
            return self._dir_stat(bucket, "")
        if not (ref.path or "").endswith("/"):
            found = self._object(bucket, key)
            if found is not None:
                return found
        subdirs, objects, _ = self._page(bucket, key + "/", 1, None)
        if subdirs or objects:
            return self._dir_stat(bucket, key)
        raise NotFoundError(f"not found: {self._where(bucket, key)}")

    def list(self, ref: Ref, *, page_size: int = 1000) -> Iterator[RemoteStat]:
        """The direct children of a prefix, one listing page at a time.

        Raises:
            NotFoundError: no such bucket, or nothing under the prefix.
            RefError: the path is an object, not a folder.
        """
        bucket, key = self._split(ref)
        prefix = f"{key}/" if key else ""
        size = max(1, min(page_size, 1000))
        first = self._page(bucket, prefix, size, None)
        if key and not first[0] and not first[1]:
            if self._object(bucket, key) is not None:
                raise RefError(f"{self._where(bucket, key)} is a file, not a folder")
            raise NotFoundError(f"no such folder: {self._where(bucket, key)}")
        return self._pages(bucket, prefix, size, first)

    def _pages(self, bucket: str, prefix: str, size: int,
               page: ListingPage) -> Iterator[RemoteStat]:
        while True:
            subdirs, objects, token = page
            for sub in subdirs:
                yield self._dir_stat(bucket, sub)
            for obj in objects:
                if not (obj.ref.path or "").endswith("/"):  # folder placeholder objects
                    yield obj
            if not token:
                return
            page = self._page(bucket, prefix, size, token)

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def fs(self) -> Any:
        """The fsspec filesystem, built on first use (and again in a forked child, whose copy
        of the parent's event loop thread does not run)."""
        if self._fs is None or self._fs_pid != os.getpid():
            with self._fs_lock:
                if self._fs is None or self._fs_pid != os.getpid():
                    self._fs = self._make_fs()
                    self._fs_pid = os.getpid()
        return self._fs

    def _split(self, ref: Ref) -> tuple[str, str]:
        """``(bucket, key)``; key is ``""`` for a bucket and has no leading/trailing ``/``."""
        path = ref.path
        if path is None:
            raise RefError(f"{ref.raw or ref!s} names no {self.source} bucket/key")
        for prefix in ("s3://", "gs://", "gcs://"):
            if path.startswith(prefix):
                path = path[len(prefix):]
        bucket, _, key = path.strip("/").partition("/")
        if not bucket:
            raise RefError(f"{ref.raw or path!r} names no bucket")
        return bucket, key.strip("/")

    def _ref(self, bucket: str, key: str) -> Ref:
        path = f"{bucket}/{key}" if key else bucket
        return Ref(self.source, path=path, raw=f"{self.url_prefix}{path}")  # type: ignore[arg-type]

    def _where(self, bucket: str, key: str = "") -> str:
        return f"{self.url_prefix}{bucket}/{key}" if key else f"{self.url_prefix}{bucket}"

    def translate(self, e: BaseException, where: str, *, retryable: bool = False) -> Exception:
        """The colabmodels error for a library error (``RetryableError`` when ``retryable``)."""
        if isinstance(e, (ColabModelsError, RetryableError)):
            return e
        down = network_down_error(e, f"reaching {where}")
        if down is not None:
            return down
        kind, status, retry_after = classify_exception(e)
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if kind == "notfound":
            return NotFoundError(f"not found: {where}")
        if kind == "credentials":
            return AuthError(f"no credentials to access {where}: {self.credentials_hint}")
        if kind == "auth":
            return AuthError(f"access denied to {where} ({detail}). {self.credentials_hint}")
        if kind == "retry":
            if retryable:
                return RetryableError(f"transient error on {where}: {detail}",
                                      retry_after=retry_after, status=status)
            return TransferError(f"{where}: {detail} (still failing after retries)")
        return TransferError(f"{where}: {detail}")

    def _call(self, where: str, fn: Any, *args: Any, retryable: bool = False, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ImportError:
            raise
        except Exception as e:
            raise self.translate(e, where, retryable=retryable) from e

    # -- contract: shared parts ----------------------------------------------------------------

    def open_range(self, ref: Ref, start: int, end: int | None) -> Iterator[bytes]:
        """Ranged GETs of at most 8 MiB each (the first one is sent right away)."""
        bucket, key = self._split(ref)
        if not key:
            raise RefError(f"{self._where(bucket)} is a bucket, not a file")
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range [{start}, {end})")
        where = self._where(bucket, key)
        if end is None:
            try:
                size = self.stat(ref).size
            except TransferError as e:
                raise RetryableError(str(e)) from e
            if size is None:
                raise RefError(f"{where} is a folder, not a file")
            end = size
        if end <= start:
            return iter(())
        first_end = min(end, start + READ_REQUEST_BYTES)
        first = self._cat(bucket, key, start, first_end)
        return self._chunks(bucket, key, first, first_end - start, first_end, end)

    def _cat(self, bucket: str, key: str, start: int, end: int) -> bytes:
        return self._call(self._where(bucket, key), self.fs.cat_file, f"{bucket}/{key}",
                          start=start, end=end, retryable=True)

    def _chunks(self, bucket: str, key: str, data: bytes, asked: int, pos: int,
                end: int) -> Iterator[bytes]:
        """Yield ``data`` in 1 MiB slices, then fetch the next request's worth, up to ``end``."""
        while True:
            view = memoryview(data)
            for i in range(0, len(view), YIELD_BYTES):
                yield bytes(view[i:i + YIELD_BYTES])
            if pos >= end or len(data) < asked:  # done, or the object ended early
                return
            nxt = min(end, pos + READ_REQUEST_BYTES)
            asked = nxt - pos
            data = self._cat(bucket, key, pos, nxt)
            pos = nxt

    def upload(self, src: Path, dest: Ref, *, metadata: dict[str, Any] | None = None,
               progress: ProgressCallback | None = None) -> RemoteStat:
        """Upload with ``put_file`` (multipart/resumable for large files, as fsspec does)."""
        bucket, key = self._split(dest)
        if not key:
            raise RefError(f"{self._where(bucket)} is a bucket; name the object to write")
        src = Path(src)
        if not src.is_file():
            raise NotFoundError(f"no such local file: {src}")
        where = self._where(bucket, key)
        self._call(where, self.fs.put_file, str(src), f"{bucket}/{key}",
                   callback=_ProgressAdapter(progress), **self._upload_kwargs(metadata))
        return self.stat(dest)

    def delete(self, ref: Ref) -> None:
        bucket, key = self._split(ref)
        if not key:
            raise RefError(f"will not delete the bucket {self._where(bucket)}")
        self._call(self._where(bucket, key), self.fs.rm_file, f"{bucket}/{key}")

    def makedirs(self, ref: Ref) -> RemoteStat | None:
        """Buckets have no folders: a prefix exists once an object is written under it."""
        return None


def split_metadata(meta: dict[str, Any] | None) -> tuple[str | None, dict[str, str]]:
    """(description, properties) from object metadata stored as ``{"description": ..., ...}``."""
    props = {str(k): str(v) for k, v in (meta or {}).items() if v is not None}
    return props.pop("description", None), props


def join_metadata(description: str | None, properties: dict[str, Any] | None) -> dict[str, str]:
    """Object metadata holding ``description`` next to the properties."""
    out = {str(k): str(v) for k, v in (properties or {}).items() if v is not None}
    if description is not None:
        out["description"] = description
    return out


def check_import(module: str, hint: str) -> Any:
    """Import an optional library, or raise MissingDependencyError naming the pip extra."""
    import importlib

    from ..errors import MissingDependencyError

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(hint) from e
