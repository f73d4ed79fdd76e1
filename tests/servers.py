"""Loopback servers for tests and benchmarks: S3 (moto), GCS (gcp-storage-emulator) and a static
HTTP server with Range support and fault injection.

Every server listens on 127.0.0.1 on a port the OS picks, starts in ``__enter__`` and stops in
``__exit__``. Nothing here talks to the internet.

    with MotoServer() as s3, GCSEmulator() as gcs, StaticHTTPServer(root) as http:
        s3.create_bucket("models")
        opts = s3_storage_options(s3.endpoint)        # for S3Backend / s3fs
        gcs.create_bucket("models")
        opts = gcs_storage_options(gcs.endpoint)      # for GCSBackend / gcsfs
        http.fail_next(503, retry_after=1)            # the next request gets a 503
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import json
import logging
import mimetypes
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

LOOPBACK = "127.0.0.1"
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # botocore: never ask 169.254.169.254
    "NO_GCE_CHECK": "true",  # google-auth: never probe the GCE metadata server
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (prefer binding port 0 where a server allows)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fake_cloud_env(tmp_dir: str | os.PathLike[str] | None = None) -> Iterator[dict[str, str]]:
    """Fake AWS credentials, no metadata-server probing, no user AWS config; restored after.

    ``AWS_PROFILE``, endpoint overrides and ``STORAGE_EMULATOR_HOST`` from the outer
    environment are removed so a developer's setup cannot leak into tests.
    """
    nowhere = os.path.join(tmp_dir or tempfile.gettempdir(), "colabmodels-no-aws-config")
    env = {**FAKE_AWS_ENV, "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere}
    removed = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "STORAGE_EMULATOR_HOST",
               "GOOGLE_APPLICATION_CREDENTIALS")
    saved = {name: os.environ.get(name) for name in (*env, *removed)}
    for name in removed:
        os.environ.pop(name, None)
    os.environ.update(env)
    try:
        yield env
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- S3 ---------------------------------------------------------------------------------------

def s3_storage_options(endpoint: str) -> dict[str, Any]:
    """s3fs storage options for a moto endpoint (explicit fake keys, fixed region)."""
    return {"key": "testing", "secret": "testing", "endpoint_url": endpoint,
            "client_kwargs": {"region_name": "us-east-1"}}


class MotoServer:
    """moto's S3 (and every other AWS service) in a thread on 127.0.0.1.

    Attributes:
        endpoint: ``http://127.0.0.1:PORT``.
    """

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._server: Any = None
        self._client: Any = None
        self.endpoint = ""

    def __enter__(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self._server = ThreadedMotoServer(ip_address=LOOPBACK, port=self._port, verbose=False)
        self._server.start()
        _host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{LOOPBACK}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        """A plain botocore S3 client for this server (for seeding and inspection; shared,
        botocore clients are thread-safe)."""
        if self._client is None:
            import botocore.session

            self._client = botocore.session.Session().create_client(
                "s3", endpoint_url=self.endpoint, region_name="us-east-1",
                aws_access_key_id="testing", aws_secret_access_key="testing")
        return self._client

    def create_bucket(self, name: str, *, versioned: bool = False) -> str:
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        if versioned:
            client.put_bucket_versioning(Bucket=name,
                                         VersioningConfiguration={"Status": "Enabled"})
        return name

    def put_object(self, bucket: str, key: str, data: bytes, **kwargs: Any) -> dict[str, Any]:
        """Write an object directly (independent of the code under test)."""
        return self.client().put_object(Bucket=bucket, Key=key, Body=data, **kwargs)

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(
            f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10).close()


# -- GCS --------------------------------------------------------------------------------------

def gcs_storage_options(endpoint: str) -> dict[str, Any]:
    """gcsfs storage options for an emulator: anonymous, so no credential lookup at all."""
    return {"endpoint_url": endpoint, "token": "anon", "project": "test"}


class GCSEmulator:
    """gcp-storage-emulator (JSON API, in memory) in a thread on 127.0.0.1.

    Attributes:
        endpoint: ``http://127.0.0.1:PORT`` (what ``STORAGE_EMULATOR_HOST`` would hold).
    """

    def __init__(self, *, port: int = 0, default_bucket: str | None = None) -> None:
        self._port = port
        self._default_bucket = default_bucket
        self._server: Any = None
        self.endpoint = ""

    def __enter__(self) -> GCSEmulator:
        from gcp_storage_emulator.server import create_server

        self._server = create_server(LOOPBACK, self._port, in_memory=True,
                                     default_bucket=self._default_bucket)
        self._server.start()
        httpd = getattr(getattr(self._server, "_api", None), "_httpd", None)
        port = httpd.server_address[1] if httpd is not None else self._port
        self.endpoint = f"http://{LOOPBACK}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def create_bucket(self, name: str) -> str:
        from gcp_storage_emulator.handlers import buckets

        buckets.create_bucket(name, self._server._storage)
        return name

    def put_object(self, bucket: str, name: str, data: bytes, *,
                   content_type: str = "application/octet-stream") -> dict[str, Any]:
        """Write an object with a plain multipart upload (independent of gcsfs)."""
        import urllib.request

        boundary = uuid.uuid4().hex
        meta = json.dumps({"name": name, "contentType": content_type}).encode()
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode()
                + meta + f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
                + data + f"\r\n--{boundary}--\r\n".encode())
        url = f"{self.endpoint}/upload/storage/v1/b/{quote(bucket, safe='')}/o?uploadType=multipart"
        req = urllib.request.Request(
            url, data=body, method="POST",
            headers={"Content-Type": f"multipart/related; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def wipe(self, *, keep_buckets: bool = False) -> None:
        self._server.wipe(keep_buckets=keep_buckets)


# -- static HTTP with Range and faults ---------------------------------------------------------

@dataclass
class RequestRecord:
    """One request the static server handled."""

    method: str
    path: str
    range: str | None
    status: int = 0
    bytes_sent: int = 0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    kind: str  # "status" or "drop"
    status: int = 0
    retry_after: str | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    after_bytes: int = 0
    path_contains: str | None = None
    method: str | None = None
    count: int = 1


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive clients must not block shutdown
    owner: StaticHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end eventually
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _finish(self, rec: RequestRecord, status: int, headers: dict[str, str],
                body: bytes = b"", *, head: bool = False) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)
            rec.bytes_sent += len(body)
        rec.status = status

    def _serve(self, *, head: bool) -> None:
        owner = self.server.owner
        method = "HEAD" if head else "GET"
        url_path = unquote(urlsplit(self.path).path)
        rng = self.headers.get("Range")
        rec = RequestRecord(method, url_path, rng, headers=dict(self.headers.items()))
        owner._record(rec)
        if owner.latency_s:
            time.sleep(owner.latency_s)

        fault = owner._take_fault(method, url_path)
        if fault is not None and fault.kind == "status":
            headers = {"Content-Type": "application/json" if fault.body[:1] in (b"{", b"[")
                       else "text/plain", **fault.headers}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            self._finish(rec, fault.status, headers, fault.body, head=head)
            return
        if head and not owner.allow_head:
            self._finish(rec, 405, {"Allow": "GET"}, b"HEAD not allowed", head=True)
            return

        file = owner._resolve(url_path)
        if file is None:
            self._finish(rec, 404, {"Content-Type": "text/plain"}, b"not found", head=head)
            return
        st = file.stat()
        size = st.st_size
        headers = {"Content-Type": mimetypes.guess_type(file.name)[0] or "application/octet-stream"}
        if owner.send_validators:
            headers["ETag"] = f'"{size:x}-{st.st_mtime_ns:x}"'
            headers["Last-Modified"] = email.utils.formatdate(st.st_mtime, usegmt=True)
        if owner.send_checksums:
            headers["x-goog-hash"] = f"md5={owner._md5_b64(file, st)}"
        if not owner.ignore_range:
            headers["Accept-Ranges"] = "bytes"

        start, end, status = 0, size, 200  # [start, end)
        if rng and not owner.ignore_range:
            parsed = _parse_range(rng, size)
            if parsed == "unsatisfiable":
                self._finish(rec, 416, {"Content-Range": f"bytes */{size}"}, head=head)
                return
            if parsed is not None:
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        length = end - start
        headers["Content-Length"] = str(length)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        rec.status = status
        if head:
            return
        limit = length
        if fault is not None and fault.kind == "drop":
            limit = min(length, fault.after_bytes)
            self.close_connection = True
        with open(file, "rb") as f:
            f.seek(start)
            remaining = limit
            while remaining > 0:
                chunk = f.read(min(256 * 1024, remaining))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                rec.bytes_sent += len(chunk)
                remaining -= len(chunk)
                if owner.bytes_per_s:
                    time.sleep(len(chunk) / owner.bytes_per_s)
        if limit < length:  # cut the body short: the client sees a dropped connection
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """``[start, end)`` of a single ``bytes=`` range, ``"unsatisfiable"``, or None (ignore)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # malformed or multiple ranges: serve the whole file
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        if n == 0:
            return "unsatisfiable"
        return max(0, size - n), size
    start = int(m.group(1))
    end = int(m.group(2)) + 1 if m.group(2) else size
    if start >= size or end <= start:
        return "unsatisfiable"
    return start, min(end, size)


class StaticHTTPServer:
    """Serves a directory over HTTP/1.1 with single byte ranges, ETag/Last-Modified, HEAD,
    ``x-goog-hash: md5=`` and scripted faults.

    Args:
        root: the directory to serve (a temporary one, removed on exit, when None).

    Attributes (switch per test; :meth:`reset` restores the defaults):
        ignore_range: answer every GET with 200 and the whole file, no ``Accept-Ranges``.
        allow_head: False answers HEAD with 405.
        send_validators: False omits ETag and Last-Modified.
        send_checksums: False omits ``x-goog-hash``.
        latency_s / bytes_per_s: a delay per request / a per-connection bandwidth cap.
        requests: every :class:`RequestRecord` handled, in order.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="colabmodels-http-") if root is None else root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self._md5_cache: dict[tuple[str, int, int], str] = {}
        self.requests: list[RequestRecord] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""
        self.reset()

    # lifecycle
    def __enter__(self) -> StaticHTTPServer:
        self._httpd = _HTTPServer((LOOPBACK, 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="static-http", daemon=True)
        self._thread.start()
        self.endpoint = f"http://{LOOPBACK}:{self._httpd.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # content
    def url(self, rel_path: str) -> str:
        return f"{self.endpoint}/{quote(rel_path.lstrip('/'))}"

    def write(self, rel_path: str, data: bytes) -> str:
        """Put ``data`` at ``rel_path`` under the root; returns its URL."""
        path = self.root / rel_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return self.url(rel_path)

    # behaviour
    def reset(self) -> None:
        """Clear faults and the request log; restore the default behaviour."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()
        self.ignore_range = False
        self.allow_head = True
        self.send_validators = True
        self.send_checksums = True
        self.latency_s = 0.0
        self.bytes_per_s = 0.0

    def fail_next(self, status: int, *, retry_after: float | str | None = None,
                  body: bytes | str | dict[str, Any] = b"", headers: dict[str, str] | None = None,
                  path_contains: str | None = None, method: str | None = None,
                  count: int = 1) -> None:
        """Answer the next ``count`` matching requests with ``status`` (and ``body``; a dict is
        sent as JSON, e.g. a Drive error ``{"error": {"errors": [{"reason": ...}]}}``)."""
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        ra = None if retry_after is None else (
            retry_after if isinstance(retry_after, str) else f"{retry_after:g}")
        with self._lock:
            self._faults.append(_Fault("status", status=status, retry_after=ra, body=body,
                                       headers=dict(headers or {}), path_contains=path_contains,
                                       method=method, count=count))

    def drop_next(self, after_bytes: int = 0, *, path_contains: str | None = None,
                  count: int = 1) -> None:
        """Cut the body of the next ``count`` matching GETs after ``after_bytes`` bytes (the
        headers promise the full length, so the client sees a dropped connection)."""
        with self._lock:
            self._faults.append(_Fault("drop", after_bytes=after_bytes,
                                       path_contains=path_contains, method="GET", count=count))

    # used by the handler
    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method and fault.method != method:
                    continue
                if fault.path_contains and fault.path_contains not in path:
                    continue
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _resolve(self, url_path: str) -> Path | None:
        root = self.root.resolve()
        candidate = (root / url_path.lstrip("/")).resolve()
        if candidate != root and root not in candidate.parents:
            return None
        return candidate if candidate.is_file() else None

    def _md5_b64(self, file: Path, st: os.stat_result) -> str:
        key = (str(file), st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._md5_cache.get(key)
        if cached is None:
            h = hashlib.md5()
            with open(file, "rb") as f:
                for chunk in iter(lambda: f.read(1024 * 1024), b""):
                    h.update(chunk)
            cached = base64.b64encode(h.digest()).decode("ascii")
            with self._lock:
                self._md5_cache[key] = cached
        return cached
