"""Plain ``http(s)://`` URLs as a read-only storage backend, and the ranged-GET client it uses.

``RangeClient`` is reusable (the Drive backend downloads ``?alt=media`` URLs the same
way): it sends one ranged GET and streams the body in modest chunks (256 KiB, so a cancelled
transfer stops soon), with memory use independent of the file size. It copes with servers that
ignore ``Range`` (answering 200 with the whole body) by skipping up to the start, and reports a
connection dropped mid-body as ``RetryableError`` and a host that
cannot be reached at all as ``NetworkDownError``. Error responses are
classified by ``colabmodels.httpstatus.classify_response`` (re-exported here).

``HTTPBackend`` content identity is ``http:<url without its signing query>:<ETag or
Last-Modified>`` (``colabmodels.refs.strip_signing``): a presigned S3/GCS URL names the
same object whatever its signature, and the signature must not be stored. A server that sends
neither validator gives ``identity=None``: callers cannot tell whether the file changed, so they treat
such a URL as uncacheable by content (download again, or trust the size only).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import logging
import os
import re
import threading
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .._version import __version__
from ..errors import RefError, RetryableError, TransferError
from ..httpstatus import (
    DOWNLOAD_QUOTA_MESSAGE,
    classify_response,
    header,
    parse_retry_after,
    redact_url,
)
from ..progress import ProgressCallback
from ..refs import Ref, strip_signing
from ..retry import call_with_retries, network_down_error
from .base import RemoteStat, StorageBackend
from .local import iso_utc

logger = logging.getLogger(__name__)

CHUNK = 256 * 1024
"""Bytes per yielded block: small enough that a cancelled download notices within a block."""
DEFAULT_TIMEOUT = (10.0, 60.0)
"""(connect, read) seconds; read is the longest silence tolerated between two packets."""
_ERROR_BODY_LIMIT = 64 * 1024



# -- small parsers ---------------------------------------------------------------------------

def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None] | None:
    """``bytes 10-19/100`` -> (10, 19, 100); ``bytes */100`` -> (None, None, 100); ``*`` total -> None."""
    if not value:
        return None
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)\s*/\s*(\d+|\*)\s*", value, re.IGNORECASE)
    if not m:
        return None
    first = int(m.group(1)) if m.group(1) is not None else None
    last = int(m.group(2)) if m.group(2) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return first, last, total


# -- the client ------------------------------------------------------------------------------

def _default_ca_certs() -> str | None:
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


class RangeClient:
    """Ranged GETs over one thread-safe ``urllib3.PoolManager``.

    One request per ``open_range`` call; retries are the transfer engine's job, so every
    failure worth another try comes out as ``RetryableError``.

    Args:
        headers: sent with every request (e.g. a User-Agent); per-call headers override them.
        timeout: ``(connect, read)`` seconds, or one number for both.
        maxsize: connections kept per host (match the number of parallel downloads).
        chunk_size: bytes per yielded chunk.
        pool: an existing ``urllib3.PoolManager`` to share.
    """

    def __init__(self, *, headers: Mapping[str, str] | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, maxsize: int = 16,
                 chunk_size: int = CHUNK, pool: Any = None) -> None:
        import urllib3

        self._urllib3 = urllib3
        connect, read = (timeout, timeout) if isinstance(timeout, (int, float)) else timeout
        self.timeout = urllib3.Timeout(connect=connect, read=read)
        self.headers = {"User-Agent": f"colabmodels/{__version__}", **(headers or {})}
        self.chunk_size = chunk_size
        # Connection and read errors are not retried here (the transfer engine does that,
        # with backoff); redirects are followed.
        self.retries = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0,
                                     redirect=10, raise_on_status=False,
                                     respect_retry_after_header=False)
        if pool is None:
            kwargs: dict[str, Any] = {}
            ca = _default_ca_certs()
            if ca:
                kwargs["ca_certs"] = ca
            pool = urllib3.PoolManager(num_pools=16, maxsize=maxsize, block=False,
                                       timeout=self.timeout, retries=self.retries, **kwargs)
        self.pool = pool

    def close(self) -> None:
        self.pool.clear()

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                body: bytes | None = None, preload_content: bool = True) -> Any:
        """Send one request; the status is not checked.

        Raises:
            NetworkDownError: connection refused, DNS failure, no route (not worth retrying).
            RetryableError: other connection failures.
        """
        urllib3 = self._urllib3
        all_headers = {**self.headers, **(headers or {})}
        try:
            return self.pool.request(method, url, headers=all_headers, body=body,
                                     preload_content=preload_content, decode_content=False,
                                     timeout=self.timeout, retries=self.retries)
        except urllib3.exceptions.MaxRetryError as e:
            reason = e.reason
            if isinstance(reason, urllib3.exceptions.ResponseError):  # too many redirects
                raise TransferError(f"{reason} for {redact_url(url)}") from e
            down = network_down_error(e, f"{method} {redact_url(url)}")
            if down is not None:
                raise down from e
            raise RetryableError(f"cannot reach {redact_url(url)}: {reason}") from e
        except urllib3.exceptions.LocationValueError as e:
            raise RefError(f"not a usable URL: {redact_url(url)} ({e})") from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise RetryableError(f"request to {redact_url(url)} failed: {e}") from e

    def read_error_body(self, resp: Any) -> bytes:
        """Up to 64 KiB of an error response's body (then the connection is released)."""
        try:
            return resp.read(_ERROR_BODY_LIMIT) or b""
        except (self._urllib3.exceptions.HTTPError, OSError):
            return b""
        finally:
            self._discard(resp)

    @staticmethod
    def _discard(resp: Any) -> None:
        """Close the connection (its body was not read to the end) and free the pool slot."""
        try:
            resp.close()
        finally:
            resp.release_conn()

    def raise_for_status(self, resp: Any, url: str) -> None:
        """Raise the classified error of a non-2xx response (reading its body first)."""
        if 200 <= resp.status < 300:
            return
        body = self.read_error_body(resp) if resp.status >= 400 else b""
        error = classify_response(resp.status, resp.headers, body, url=url)
        raise error or TransferError(f"unexpected HTTP {resp.status} from {redact_url(url)}")

    def open_range(self, url: str, start: int, end: int | None,
                   headers: Mapping[str, str] | None = None) -> Iterator[bytes]:
        """Stream bytes ``[start, end)`` of ``url`` (``end=None``: to the end) with one GET.

        The request is sent (and errors raised) when this is called; the returned iterator
        streams the body and closes the connection if it is abandoned.

        Raises:
            RetryableError: 408/429/5xx, rate-limit 403, connection refused/reset/dropped.
            NotFoundError, AuthError, QuotaError, TransferError: as ``classify_response``.
        """
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range [{start}, {end})")
        if end is not None and end == start:
            return iter(())
        req_headers = {**(headers or {}), "Accept-Encoding": "identity"}
        if start > 0 or end is not None:
            req_headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        resp = self.request("GET", url, headers=req_headers, preload_content=False)
        try:
            return self._start_stream(resp, url, start, end)
        except BaseException:
            self._discard(resp)
            raise

    def _start_stream(self, resp: Any, url: str, start: int, end: int | None) -> Iterator[bytes]:
        status = resp.status
        if status == 416:
            cr = parse_content_range(resp.headers.get("Content-Range"))
            if cr is not None and cr[2] is not None and cr[2] == start:
                self._discard(resp)  # asked from exactly the end (an empty file): nothing to read
                return iter(())
            self.raise_for_status(resp, url)
        if status not in (200, 206):
            self.raise_for_status(resp, url)
            raise TransferError(f"unexpected HTTP {status} from {redact_url(url)}")
        skip = 0
        expected: int | None = None
        length = resp.headers.get("Content-Length")
        length_n = int(length) if length and length.isdigit() else None
        if status == 206:
            cr = parse_content_range(resp.headers.get("Content-Range"))
            if cr is None or cr[0] is None or cr[1] is None:
                raise TransferError(f"bad Content-Range {resp.headers.get('Content-Range')!r} "
                                    f"from {redact_url(url)}")
            if cr[0] != start:
                raise RetryableError(f"asked for bytes from {start}, got from {cr[0]} "
                                     f"({redact_url(url)})")
            expected = cr[1] - cr[0] + 1
        else:  # 200: whole body (the server ignored Range, or none was sent)
            skip = start
            if start > 0:
                logger.debug("%s ignores Range; skipping %d bytes", redact_url(url), start)
            if length_n is not None:
                expected = max(0, length_n - start)
        limit = None if end is None else end - start
        if expected is not None and limit is not None:
            expected = min(expected, limit)
        return _BodyStream(self, resp, url=url, skip=skip, limit=limit, expected=expected)


class _BodyStream(Iterator[bytes]):
    """Iterates one response body; releases the connection when the body was read to the end,
    closes it when the stream breaks off or is abandoned (``close()``, or garbage collection)."""

    def __init__(self, client: RangeClient, resp: Any, *, url: str, skip: int,
                 limit: int | None, expected: int | None) -> None:
        self._resp = resp
        self._state = {"finished": False}
        # The generator holds no reference to self, so dropping the stream frees it at once.
        self._gen = _stream_body(client._urllib3, resp, self._state, url=url,
                                 chunk_size=client.chunk_size, skip=skip, limit=limit,
                                 expected=expected)

    def __next__(self) -> bytes:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()  # runs the generator's cleanup if it had started
        if not self._state["finished"]:
            self._state["finished"] = True
            RangeClient._discard(self._resp)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _stream_body(urllib3: Any, resp: Any, state: dict[str, bool], *, url: str, chunk_size: int,
                 skip: int, limit: int | None, expected: int | None
                 ) -> Generator[bytes, None, None]:
    got = 0
    clean = False
    try:
        try:
            for chunk in resp.stream(chunk_size, decode_content=False):
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk = chunk[skip:]
                    skip = 0
                if limit is not None and got + len(chunk) > limit:
                    chunk = chunk[: limit - got]
                got += len(chunk)
                if chunk:
                    yield chunk
                if limit is not None and got >= limit:
                    break  # all we asked for; the rest of a 200 body stays unread
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise RetryableError(f"connection dropped after {got} bytes from "
                                 f"{redact_url(url)}: {e}") from e
        if expected is not None and got < expected:
            raise RetryableError(f"connection closed after {got} of {expected} bytes "
                                 f"from {redact_url(url)}")
        # Reuse the connection only when its body was read to the end.
        clean = limit is None or got < limit or getattr(resp, "length_remaining", None) == 0
    finally:
        if not state["finished"]:
            state["finished"] = True
            if clean:
                resp.release_conn()
            else:
                RangeClient._discard(resp)


# -- the backend -----------------------------------------------------------------------------

def disposition_filename(value: str | None) -> str | None:
    """The file name a ``Content-Disposition`` header gives (RFC 6266 ``filename*`` first)."""
    if not value:
        return None
    m = re.search(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", value, re.IGNORECASE)
    if m:
        try:
            return unquote(m.group(2).strip().strip('"'), encoding=m.group(1) or "utf-8")
        except LookupError:
            return unquote(m.group(2).strip().strip('"'))
    m = re.search(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"', value, re.IGNORECASE)
    if m:
        return re.sub(r"\\(.)", r"\1", m.group(1))
    m = re.search(r"filename\s*=\s*([^;\s]+)", value, re.IGNORECASE)
    return m.group(1) if m else None


def _checksum(headers: Mapping[str, str], *, full_body: bool) -> str | None:
    """``md5:<hex>`` from ``x-goog-hash``/``Content-MD5``, else ``crc32c:<b64>``, else None."""
    crc = None
    for part in (header(headers, "x-goog-hash") or "").split(","):
        algo, _, value = part.strip().partition("=")
        if algo == "md5" and value:
            try:
                return "md5:" + base64.b64decode(value).hex()
            except (binascii.Error, ValueError):
                pass
        elif algo == "crc32c" and value:
            crc = value
    md5 = header(headers, "Content-MD5")
    if md5 and full_body:  # on a 206 it would be the hash of the part only
        try:
            return "md5:" + base64.b64decode(md5).hex()
        except (binascii.Error, ValueError):
            pass
    return f"crc32c:{crc}" if crc else None


def _http_date_to_iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return iso_utc(email.utils.parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None


class HTTPBackend(StorageBackend):
    """Read-only access to ``http(s)://`` URLs. ``Ref.path`` is the full URL.

    ``stat`` sends HEAD (or, where HEAD is refused, a ``Range: bytes=0-0`` GET); ``open_range``
    sends ranged GETs. There are no folders, uploads or metadata.

    Args:
        headers: sent with every request (e.g. ``{"Authorization": "Bearer ..."}``).
        timeout: ``(connect, read)`` seconds.
        maxsize: connections kept per host.
        stat_attempts: tries for ``stat`` on transient errors (downloads are retried by the
            transfer engine instead).
        client: a ``RangeClient`` to share.
    """

    source = "http"

    def __init__(self, *, headers: Mapping[str, str] | None = None,
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, maxsize: int = 16,
                 stat_attempts: int = 3, client: RangeClient | None = None) -> None:
        self._client_options = {"headers": headers, "timeout": timeout, "maxsize": maxsize}
        self._client = client
        self._client_pid = os.getpid()
        self._lock = threading.Lock()
        self.stat_attempts = max(1, stat_attempts)

    @property
    def client(self) -> RangeClient:
        """The connection pool, made on first use (and anew in a forked child: pooled sockets
        must not be shared between processes)."""
        if self._client is None or self._client_pid != os.getpid():
            with self._lock:
                if self._client is None or self._client_pid != os.getpid():
                    self._client = RangeClient(**self._client_options)  # type: ignore[arg-type]
                    self._client_pid = os.getpid()
        return self._client

    @staticmethod
    def _url(ref: Ref) -> str:
        url = ref.path or ref.raw
        if not url or urlsplit(url).scheme.lower() not in ("http", "https"):
            raise RefError(f"{ref.raw or url!r} is not an http(s):// URL")
        return url

    def stat(self, ref: Ref) -> RemoteStat:
        """HEAD the URL (retrying transient errors a few times).

        Raises:
            NotFoundError, AuthError, QuotaError: as the server says.
            NetworkDownError: the server cannot be reached at all.
            TransferError: still failing after ``stat_attempts`` tries.
        """
        url = self._url(ref)
        return call_with_retries(lambda: self._stat_once(ref, url),
                                 what=f"reading {redact_url(url)}", attempts=self.stat_attempts)

    def _stat_once(self, ref: Ref, url: str) -> RemoteStat:
        client = self.client
        resp = client.request("HEAD", url, headers={"Accept-Encoding": "identity"})
        status = resp.status
        headers = resp.headers
        size: int | None = None
        full_body = True
        ranges = (headers.get("Accept-Ranges") or "").strip().lower() == "bytes"
        if 200 <= status < 300:
            length = headers.get("Content-Length")
            size = int(length) if length and length.isdigit() else None
        elif status in (401, 404, 410, 408, 429) or status >= 500:
            raise classify_response(status, headers, None, url=url)  # type: ignore[misc]
        else:
            # HEAD refused (405/501), or a signed URL valid for GET only (403): ask for one byte.
            resp = client.request("GET", url, headers={"Accept-Encoding": "identity",
                                                       "Range": "bytes=0-0"},
                                  preload_content=False)
            headers = resp.headers
            try:
                client.raise_for_status(resp, url)
                if resp.status == 206:
                    cr = parse_content_range(headers.get("Content-Range"))
                    size = cr[2] if cr else None
                    ranges, full_body = True, False
                else:
                    length = headers.get("Content-Length")
                    size = int(length) if length and length.isdigit() else None
            finally:
                client._discard(resp)
        etag = headers.get("ETag")
        last_modified = headers.get("Last-Modified")
        version = etag or last_modified
        disposition = disposition_filename(headers.get("Content-Disposition"))
        path = urlsplit(url).path
        name = disposition or unquote(path.rstrip("/").rsplit("/", 1)[-1]) or urlsplit(url).netloc
        mime = (headers.get("Content-Type") or "").split(";")[0].strip() or None
        return RemoteStat(
            ref=ref,
            name=name,
            size=size,
            is_dir=False,
            checksum=_checksum(headers, full_body=full_body),
            identity=f"http:{strip_signing(url)}:{version}" if version else None,
            version=None,
            mime=mime,
            modified=_http_date_to_iso(last_modified),
            properties={"accept-ranges": "bytes"} if ranges else {},
        )

    def list(self, ref: Ref, *, page_size: int = 1000) -> Iterator[RemoteStat]:
        raise RefError(f"HTTP URLs are files, not folders: cannot list {redact_url(self._url(ref))}")

    def open_range(self, ref: Ref, start: int, end: int | None) -> Iterator[bytes]:
        return self.client.open_range(self._url(ref), start, end)

    def upload(self, src: Path, dest: Ref, *, metadata: dict[str, Any] | None = None,
               progress: ProgressCallback | None = None) -> RemoteStat:
        raise NotImplementedError(
            "cannot upload to a plain URL; save to Drive, GCS, S3 or a local folder")

    def set_metadata(self, ref: Ref, *, description: str | None = None,
                     properties: dict[str, str] | None = None) -> RemoteStat:
        raise NotImplementedError(
            "a plain URL has no metadata to set; save to Drive, GCS, S3 or a local folder")

    def delete(self, ref: Ref) -> None:
        raise NotImplementedError("cannot delete a plain URL")


__all__ = [
    "DOWNLOAD_QUOTA_MESSAGE",
    "HTTPBackend",
    "RangeClient",
    "classify_response",
    "disposition_filename",
    "parse_content_range",
    "parse_retry_after",
    "redact_url",
]
