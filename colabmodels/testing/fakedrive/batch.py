"""Batch requests: ``POST /batch/drive/v2`` with a ``multipart/mixed`` body.

What googleapiclient's ``BatchHttpRequest`` (``service.new_batch_http_request()``)
sends: one part per call, each ``Content-Type: application/http`` with a
``Content-ID`` and a whole HTTP request inside (request line, headers, blank
line, body). The answer is ``multipart/mixed`` too: one part per call in the
same order, ``Content-ID: <response-ID>``, holding an HTTP response. Each call
is authorised by its own ``Authorization`` header, or else the outer one;
``fields=`` works per call. At most 100 calls per batch (400 otherwise, as on
Drive); media uploads and downloads are not allowed inside a batch (the call
gets 400). Each call is logged in ``FakeDrive.requests`` as its own record
(after the batch record), so tests see them and validate their JSON.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import secrets
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .errors import ApiError, backend_error, bad_request
from .server import FileBody, Request, Response, error_response

if TYPE_CHECKING:
    from .api import DriveApp

__all__ = ["MAX_CALLS", "handle_batch"]

MAX_CALLS = 100


class _PartRequest(Request):
    """One call of a batch, with its body already in memory."""

    def __init__(self, outer: Request, method: str, target: str, headers: Any, body: bytes) -> None:
        url = urlsplit(target)
        self._handler = outer._handler
        self._target = target
        self.method = method
        self.path = url.path
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.headers = headers
        self.base_url = outer.base_url
        self.user = None
        self.bytes_read = 0
        self._body = body
        self.remaining = len(body)
        self._chunked = False
        self._chunk_left = 0
        self._chunked_done = False

    @property
    def target(self) -> str:
        return self._target

    def _read_raw(self, n: int) -> bytes:
        start = len(self._body) - (self.remaining or 0)
        data = self._body[start : start + n]
        self.remaining = (self.remaining or 0) - len(data)
        return data

    def iter_body(self, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        while self.remaining:
            data = self._read_raw(chunk_size)
            self.bytes_read += len(data)
            yield data


def _boundary(content_type: str) -> str:
    m = re.search(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', content_type, re.IGNORECASE)
    if not m:
        raise bad_request("Missing boundary in multipart/mixed Content-Type")
    return m.group(1) or m.group(2)


def _split_parts(body: bytes, boundary: str) -> list[bytes]:
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = (b"\r\n" + body).split(b"\n" + delimiter)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        piece = piece.removeprefix(b"\r\n").removeprefix(b"\n")
        parts.append(piece.removesuffix(b"\r"))
    return parts


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = data.find(sep)
        if idx >= 0:
            return data[:idx], data[idx + len(sep) :]
    return data, b""


def _parse_call(part: bytes) -> tuple[str | None, str, str, Any, bytes]:
    """``(content id, method, target, headers, body)`` of one part."""
    outer_head, inner = _split_head(part)
    outer = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(outer_head + b"\r\n\r\n")
    content_id = outer.get("Content-ID")
    inner = inner.lstrip(b"\r\n")
    head, body = _split_head(inner)
    lines = head.decode("latin-1").splitlines()
    if not lines:
        raise bad_request("A batch part holds no HTTP request")
    fields = lines[0].split()
    if len(fields) < 2:
        raise bad_request(f"Malformed request line in a batch part: {lines[0]!r}")
    method, target = fields[0].upper(), fields[1]
    headers = email.parser.Parser(policy=email.policy.HTTP).parsestr("\r\n".join(lines[1:]) + "\r\n\r\n")
    if target.startswith(("http://", "https://")):
        url = urlsplit(target)
        target = url.path + (f"?{url.query}" if url.query else "")
    return (str(content_id) if content_id else None), method, target, headers, body


def _response_id(content_id: str | None, n: int) -> str:
    if not content_id:
        return f"<response-{n}>"
    inner = content_id.strip().strip("<>")
    return f"<response-{inner}>"


def _serialize(resp: Response, fields: str | None) -> tuple[bytes, Any]:
    if resp.json is not None and fields and 200 <= resp.status < 300:
        from .fields import select_fields

        try:
            resp.json = select_fields(resp.json, fields)
        except ApiError as e:
            resp = error_response(e)
    body = resp.body
    obj = None
    headers = list(resp.headers)
    if resp.json is not None:
        obj = resp.json
        body = json.dumps(obj).encode("utf-8")
        headers.append(("Content-Type", "application/json; charset=UTF-8"))
    elif isinstance(body, FileBody):
        body.file.seek(body.offset)
        body = body.file.read(body.length)
    elif isinstance(body, bytes) and body[:1] == b"{":
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
    data = body or b""
    try:
        reason = HTTPStatus(resp.status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {resp.status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(data)}")  # also for 204: clients expect a header block
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data, obj


def handle_batch(app: DriveApp, req: Request) -> Response:
    """Answer ``POST /batch/drive/v2``."""
    if req.method != "POST":
        raise ApiError(405, "methodNotAllowed", "Batch requests must be POSTed")
    ctype = req.header("Content-Type") or ""
    if "multipart/mixed" not in ctype.lower():
        raise bad_request("A batch request needs a multipart/mixed body", location="Content-Type")
    parts = _split_parts(req.read_body(64 << 20), _boundary(ctype))
    if not parts:
        raise bad_request("The batch request has no parts")
    if len(parts) > MAX_CALLS:
        raise bad_request(f"A batch request can contain at most {MAX_CALLS} calls, not {len(parts)}.",
                          reason="batchSizeTooLarge")
    outer_auth = req.header("Authorization")
    # The batch itself needs a valid token, like any API call.
    app._authenticate(req)
    boundary = "batch_" + secrets.token_urlsafe(18)
    out: list[bytes] = []
    server = req._handler.server
    for n, part in enumerate(parts, 1):
        content_id, method, target, headers, body = _parse_call(part)
        if outer_auth and not headers.get("Authorization"):
            headers["Authorization"] = outer_auth
        sub = _PartRequest(req, method, target, headers, body)
        record = server.new_record(
            method=method, wire_method=method, path=sub.path, query=dict(sub.query),
            headers={k.lower(): str(v) for k, v in headers.items()}, connection=req._handler.conn_id,
        )
        t0 = time.monotonic()
        try:
            if sub.path.startswith(("/upload/", "/batch/")) or sub.query.get("alt") == "media":
                raise bad_request("Media uploads and downloads are not supported in batch requests.")
            resp = app.dispatch(sub)
        except ApiError as e:
            resp = error_response(e)
        except Exception:  # one failing call must not break the others
            resp = error_response(backend_error(500))
        try:
            payload, obj = _serialize(resp, sub.query.get("fields"))
        finally:
            resp.close()
        record.status = resp.status
        record.user = sub.user
        record.bytes = len(payload)
        record.duration_s = time.monotonic() - t0
        if server.log.keep_json:
            record.response_json = obj
        head = f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {_response_id(content_id, n)}\r\n\r\n"
        out.append(head.encode("latin-1") + payload + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode("latin-1"))
    return Response(200, [("Content-Type", f"multipart/mixed; boundary={boundary}")], b"".join(out))
