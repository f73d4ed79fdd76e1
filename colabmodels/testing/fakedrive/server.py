"""HTTP plumbing of the Drive emulator: connections, bodies, shaping, faults, the request log.

``DriveHTTPServer`` is a ``http.server.ThreadingHTTPServer`` (one
daemon thread per connection, HTTP/1.1 keep-alive, a listen backlog big enough
for many concurrent clients). ``DriveRequestHandler`` turns each request
into a ``Request``, asks the application (``api.DriveApp``) for a
``Response``, and writes it:

* request and response bodies go through the per-connection and the shared
  ``TokenBucket`` when bandwidth caps are set;
* file bodies (``FileBody``) are streamed from the open blob file in
  chunks (256 KiB), never loaded whole;
* a ``drop`` fault sends the headers and part of the body, then resets the
  socket (``SO_LINGER`` 0, so the client sees ``ECONNRESET``);
* every request ends up as a ``RequestRecord`` in the server's log, with
  the number of body bytes actually sent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

from .errors import ApiError, backend_error, bad_request
from .shaping import Fault, TokenBucket

if TYPE_CHECKING:
    from .api import DriveApp

__all__ = [
    "DriveHTTPServer",
    "DriveRequestHandler",
    "FileBody",
    "Request",
    "RequestLog",
    "RequestRecord",
    "Response",
    "error_response",
    "html_response",
    "json_response",
]

logger = logging.getLogger("colabmodels.testing.fakedrive")

CHUNK_SIZE = 256 * 1024
"""Bytes per write/read of a body."""

_MAX_DRAIN = 1 << 30


@dataclass
class FileBody:
    """A response body streamed from an open file: ``length`` bytes from ``offset``."""

    file: BinaryIO
    offset: int
    length: int


@dataclass
class Response:
    """What a handler answers.

    ``json`` (when not None) is serialised into the body after the ``fields=``
    selector is applied; otherwise ``body`` is sent as is.
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | FileBody | None = None
    json: Any = None

    def close(self) -> None:
        """Release an open file body."""
        if isinstance(self.body, FileBody):
            with contextlib.suppress(OSError):
                self.body.file.close()


def json_response(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    """A JSON response (``fields=`` applies to it)."""
    return Response(status, list(headers or []), json=obj)


def error_response(err: ApiError) -> Response:
    """The JSON error envelope for ``err``."""
    headers = [("Content-Type", "application/json; charset=UTF-8")]
    headers += list(err.headers.items())
    return Response(err.code, headers, err.body_bytes())


def html_response(status: int, html: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """An HTML page."""
    return Response(status, [("Content-Type", "text/html; charset=utf-8"), *(headers or [])], html.encode("utf-8"))


@dataclass
class RequestRecord:
    """One handled request, as kept in ``FakeDrive.requests``.

    Readable as attributes or like a dict (``r.status`` or ``r["status"]``).

    Attributes:
        seq: arrival number (1-based).
        method: effective HTTP method (after ``X-HTTP-Method-Override``).
        wire_method: the method on the wire.
        path: URL path.
        query: query parameters (last value wins).
        status: response status (None if the connection died first).
        bytes: response body bytes actually sent (also for a response cut short).
        request_bytes: request body bytes read.
        headers: request headers, lower-case names.
        range: the ``Range`` header, if any.
        content_range: the ``Content-Range`` header, if any.
        user: the authenticated user, if any.
        fault: the injected fault kind, if any.
        response_json: the JSON body sent (only when the log's ``keep_json`` is on).
        connection: an id of the TCP connection (to see keep-alive reuse).
        started: ``time.time()`` at arrival.
        duration_s: time until the response was written.
    """

    seq: int
    method: str
    wire_method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    connection: int
    started: float
    status: int | None = None
    bytes: int = 0
    request_bytes: int = 0
    user: str | None = None
    fault: str | None = None
    duration_s: float = 0.0
    response_json: Any = None

    @property
    def range(self) -> str | None:
        """The request's ``Range`` header."""
        return self.headers.get("range")

    @property
    def content_range(self) -> str | None:
        """The request's ``Content-Range`` header."""
        return self.headers.get("content-range")

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access with a default."""
        return getattr(self, key, default)

    def as_dict(self) -> dict[str, Any]:
        """A plain-dict copy."""
        return {
            "seq": self.seq,
            "method": self.method,
            "wire_method": self.wire_method,
            "path": self.path,
            "query": dict(self.query),
            "headers": dict(self.headers),
            "status": self.status,
            "bytes": self.bytes,
            "request_bytes": self.request_bytes,
            "user": self.user,
            "fault": self.fault,
            "range": self.range,
            "connection": self.connection,
            "duration_s": self.duration_s,
        }


class ConnectionDropped(Exception):
    """Raised inside a handler to end the connection without a response."""


class Request:
    """A request as the application sees it: method, path, query, headers, body readers."""

    def __init__(
        self,
        handler: DriveRequestHandler,
        *,
        method: str,
        path: str,
        query: dict[str, str],
        base_url: str,
    ) -> None:
        self._handler = handler
        self.method = method
        self.path = path
        self.query = query
        self.headers = handler.headers
        self.base_url = base_url
        self.user: str | None = None
        self.bytes_read = 0
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        self._chunked = "chunked" in te
        self._chunk_left = 0
        self._chunked_done = False
        length = self.headers.get("Content-Length")
        if self._chunked:
            self.remaining: int | None = None
        else:
            try:
                self.remaining = max(0, int(length)) if length else 0
            except ValueError:
                raise bad_request("Invalid Content-Length")

    @property
    def target(self) -> str:
        """Path and query as sent."""
        return self._handler.path

    @property
    def content_length(self) -> int | None:
        """The declared body length (None for chunked bodies)."""
        return None if self._chunked else self.bytes_read + (self.remaining or 0)

    @property
    def body_pending(self) -> bool:
        """True while body bytes are still unread."""
        return (not self._chunked_done) if self._chunked else bool(self.remaining)

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header (case-insensitive)."""
        return self.headers.get(name, default)

    def _read_raw(self, n: int) -> bytes:
        rfile = self._handler.rfile
        if not self._chunked:
            assert self.remaining is not None
            n = min(n, self.remaining)
            if n <= 0:
                return b""
            data = rfile.read(n)
            if not data:
                raise ConnectionDropped("client closed the connection mid-body")
            self.remaining -= len(data)
            return data
        if self._chunked_done:
            return b""
        if self._chunk_left == 0:
            line = rfile.readline(65537)
            if not line:
                raise ConnectionDropped("client closed the connection mid-body")
            try:
                self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise bad_request("Malformed chunked body")
            if self._chunk_left == 0:
                # Trailers until an empty line.
                while True:
                    trailer = rfile.readline(65537)
                    if trailer in (b"\r\n", b"\n", b""):
                        break
                self._chunked_done = True
                return b""
        data = rfile.read(min(n, self._chunk_left))
        if not data:
            raise ConnectionDropped("client closed the connection mid-body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            rfile.readline(3)  # CRLF after the chunk data
        return data

    def iter_body(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the body in chunks, honouring the bandwidth caps."""
        while self.body_pending:
            size = self._handler.shaped_chunk_size(chunk_size)
            data = self._read_raw(size)
            if not data:
                return
            self._handler.shape(len(data))
            self.bytes_read += len(data)
            yield data

    def read_body(self, limit: int = 5 << 30) -> bytes:
        """The whole body (at most ``limit`` bytes, else 413-like 400)."""
        parts = []
        total = 0
        for chunk in self.iter_body():
            total += len(chunk)
            if total > limit:
                raise bad_request("Request body too large")
            parts.append(chunk)
        return b"".join(parts)

    def read_some(self, n: int) -> int:
        """Read and discard up to ``n`` body bytes; return how many were read."""
        got = 0
        while got < n and self.body_pending:
            data = self._read_raw(min(CHUNK_SIZE, n - got))
            if not data:
                break
            self._handler.shape(len(data))
            got += len(data)
        self.bytes_read += got
        return got

    def drain(self, limit: int = _MAX_DRAIN) -> bool:
        """Discard the rest of the body; False if more than ``limit`` bytes remain."""
        if not self.body_pending:
            return True
        if self.remaining is not None and self.remaining > limit:
            return False
        for _ in self.iter_body():
            pass
        return True

    def json_body(self) -> dict[str, Any]:
        """The body parsed as a JSON object (an empty body is ``{}``)."""
        raw = self.read_body(64 << 20)
        if not raw.strip():
            return {}
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ApiError(400, "parseError", f"Parse Error: {e}")
        if not isinstance(obj, dict):
            raise ApiError(400, "parseError", "Parse Error: expected a JSON object")
        return obj


class DriveRequestHandler(BaseHTTPRequestHandler):
    """Serves requests on one connection (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "fakedrive/1.0"
    sys_version = ""
    timeout = 120  # seconds a connection may sit idle or stall mid-body
    server: DriveHTTPServer

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn_id = self.server.register_connection(self.connection)
        rate = self.server.app.bandwidth_bytes_per_s
        self._bucket = TokenBucket(rate) if rate else None
        self._record: RequestRecord | None = None

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.unregister_connection(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fakedrive %s: " + format, self.address_string(), *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # requests are recorded in the RequestRecord log instead

    # ------------------------------------------------------------ shaping

    def shaped_chunk_size(self, default: int) -> int:
        """Chunk size fitting the tightest bandwidth cap."""
        size = default
        total = self.server.total_bucket
        for bucket in (self._bucket, total):
            if bucket is not None:
                size = min(size, bucket.chunk_size(default))
        return size

    def shape(self, n: int) -> None:
        """Account ``n`` body bytes against the caps, sleeping as needed."""
        waits = []
        if self._bucket is not None:
            waits.append(self._bucket.reserve(n))
        total = self.server.total_bucket
        if total is not None:
            waits.append(total.reserve(n))
        wait = max(waits, default=0.0)
        if wait > 0:
            time.sleep(wait)

    # ----------------------------------------------------------- requests

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _handle(self) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        wire = self.command.upper()
        method = wire
        override = self.headers.get("X-HTTP-Method-Override")
        if override and wire == "POST":
            method = override.strip().upper()
        record = self.server.new_record(
            method=method,
            wire_method=wire,
            path=url.path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            connection=self.conn_id,
        )
        self._record = record
        t0 = time.monotonic()
        response: Response | None = None
        req: Request | None = None
        drop: Fault | None = None
        try:
            req = Request(self, method=method, path=url.path, query=query, base_url=self.server.base_url)
            ctype = (self.headers.get("Content-Type") or "").lower()
            if override and wire == "POST" and "application/x-www-form-urlencoded" in ctype:
                # A long GET sent as POST: the query string travels in the body.
                form = req.read_body(8 << 20).decode("utf-8", "replace")
                query.update({k: v[-1] for k, v in parse_qs(form, keep_blank_values=True).items()})
            if app.latency_s > 0:
                time.sleep(app.latency_s)
            kind, is_download = app.classify(req)
            fault = app.faults.decide(method, self.path, is_download=is_download) if kind != "exempt" else None
            if fault is not None:
                record.fault = fault.kind
                logger.debug("fakedrive: injecting %s into %s %s", fault.kind, method, self.path)
            if fault is not None and fault.kind == "drop":
                if kind == "upload" and req.body_pending:
                    total = req.content_length or 0
                    req.read_some(fault.cut_at(total))
                    record.request_bytes = req.bytes_read
                    self._reset_connection()
                    return
                drop = fault
                response = app.dispatch(req)
            elif fault is not None:
                req.drain()
                response = app.fault_response(fault, kind, req)
            else:
                response = app.dispatch(req)
        except ApiError as e:
            response = error_response(e)
        except ConnectionDropped:
            self.close_connection = True
            return
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        except Exception:
            logger.exception("fakedrive: internal error handling %s %s", method, self.path)
            response = error_response(backend_error(500))
        finally:
            if req is not None:
                record.user = req.user
                record.request_bytes = req.bytes_read
            record.duration_s = time.monotonic() - t0
        try:
            if req is None or (req.body_pending and not req.drain()):
                self.close_connection = True
            self._send(response, record, head=method == "HEAD", drop=drop, fields=query.get("fields"))
        except (ConnectionError, TimeoutError, ConnectionDropped):
            self.close_connection = True
        finally:
            response.close()
            record.duration_s = time.monotonic() - t0

    def _send(
        self,
        resp: Response,
        record: RequestRecord,
        *,
        head: bool,
        drop: Fault | None,
        fields: str | None,
    ) -> None:
        if resp.json is not None and fields and 200 <= resp.status < 300:
            from .fields import select_fields

            try:
                resp.json = select_fields(resp.json, fields)
            except ApiError as e:
                resp = error_response(e)
        body = resp.body
        if resp.json is not None:
            obj = resp.json
            body = json.dumps(obj).encode("utf-8")
            if self.server.log.keep_json:
                record.response_json = obj
            resp.headers.append(("Content-Type", "application/json; charset=UTF-8"))
        elif self.server.log.keep_json and isinstance(body, bytes) and body[:1] == b"{":
            with contextlib.suppress(ValueError):
                record.response_json = json.loads(body)
        length = body.length if isinstance(body, FileBody) else len(body or b"")
        record.status = resp.status
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        if resp.status != 204 and resp.status >= 200:
            self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if head or resp.status == 204 or length == 0:
            if drop is not None:
                self._reset_connection()
            return
        cut = drop.cut_at(length) if drop is not None else length
        record.bytes = self._write_body(body, cut, record)
        if drop is not None:
            self._reset_connection()

    def _write_body(self, body: bytes | FileBody | None, limit: int, record: RequestRecord) -> int:
        """Send up to ``limit`` body bytes; returns how many went out.

        ``record.bytes`` is raised *before* each chunk is written (and lowered
        again if the write fails), so a client that has read the whole body
        never sees a smaller count in the log.
        """
        sent = 0
        wfile = self.wfile
        view = memoryview(body) if isinstance(body, bytes) else None
        if isinstance(body, FileBody):
            body.file.seek(body.offset)
        while sent < limit:
            size = min(self.shaped_chunk_size(CHUNK_SIZE), limit - sent)
            if isinstance(body, FileBody):
                chunk: bytes | memoryview = body.file.read(size)
            elif view is not None:
                chunk = view[sent : sent + size]
            else:
                break
            if not chunk:
                break
            self.shape(len(chunk))
            record.bytes = sent + len(chunk)
            try:
                wfile.write(chunk)
            except BaseException:
                record.bytes = sent
                raise
            sent += len(chunk)
        return sent

    def _reset_connection(self) -> None:
        """Close the socket with a TCP reset (the client sees ECONNRESET)."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for f in (self.rfile, self.wfile):
            with contextlib.suppress(OSError):
                f.close()
        with contextlib.suppress(OSError):
            sock.close()
        raise ConnectionDropped("fault: dropped")


class RequestLog:
    """The thread-safe list of ``RequestRecord`` (survives server restarts)."""

    def __init__(self, *, keep_json: bool = False) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._seq = 0
        self.keep_json = keep_json

    def new(self, **kwargs: Any) -> RequestRecord:
        """Create and append a record."""
        with self._lock:
            self._seq += 1
            record = RequestRecord(seq=self._seq, started=time.time(), **kwargs)
            self._records.append(record)
            return record

    def snapshot(self) -> list[RequestRecord]:
        """A copy of the list (records of requests in flight may still change)."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget all records (sequence numbers keep counting)."""
        with self._lock:
            self._records.clear()


class DriveHTTPServer(ThreadingHTTPServer):
    """The listening server: one daemon thread per connection, shared state for handlers."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self,
        address: tuple[str, int],
        app: DriveApp,
        *,
        log: RequestLog | None = None,
        total_bucket: TokenBucket | None = None,
    ) -> None:
        self.app = app
        self.log = log if log is not None else RequestLog()
        self.total_bucket = total_bucket
        self._conn_lock = threading.Lock()
        self._connections: dict[int, socket.socket] = {}
        self._conn_counter = 0
        super().__init__(address, DriveRequestHandler)
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        self.base_url = f"http://{host}:{port}/"

    def register_connection(self, sock: socket.socket) -> int:
        """Track an open connection; returns its id."""
        with self._conn_lock:
            self._conn_counter += 1
            self._connections[self._conn_counter] = sock
            return self._conn_counter

    def unregister_connection(self, sock: socket.socket) -> None:
        """Forget a closed connection."""
        with self._conn_lock:
            for k, v in list(self._connections.items()):
                if v is sock:
                    del self._connections[k]

    def close_all_connections(self) -> None:
        """Shut down every open connection (used when stopping)."""
        with self._conn_lock:
            socks = list(self._connections.values())
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def new_record(self, **kwargs: Any) -> RequestRecord:
        """Append a new ``RequestRecord`` to the log."""
        return self.log.new(**kwargs)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("fakedrive: connection error from %s", client_address, exc_info=True)
