"""Upload protocols of Drive v2: resumable sessions and ``multipart/related`` bodies.

Resumable uploads (what PyDrive2 always uses):

1. ``POST /upload/drive/v2/files?uploadType=resumable`` (or ``PUT .../files/ID``
   to replace content) with the JSON metadata and ``X-Upload-Content-Type`` /
   ``X-Upload-Content-Length``; the answer is 200 with an absolute ``Location``
   carrying ``upload_id``.
2. ``PUT <Location>`` with ``Content-Range: bytes a-b/TOTAL`` (or ``/*``) per
   chunk; every chunk but the last gets ``308`` with ``Range: bytes=0-N``; the
   last one gets 200 and the file resource.
3. After a failure the client asks ``Content-Range: bytes */TOTAL`` and
   continues from the ``Range`` in the 308 (no ``Range`` means nothing stored).

``UploadSession`` keeps the bytes received so far in a staging blob, so a
session uses disk, not memory.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from .errors import bad_request
from .store import BlobWriter

__all__ = ["ContentRange", "UploadManager", "UploadSession", "parse_content_range", "parse_multipart_related"]

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)


@dataclass
class ContentRange:
    """A parsed ``Content-Range`` of a resumable-upload PUT.

    ``start``/``end`` are None for a status query (``bytes */TOTAL``); ``total``
    is None for ``*``.
    """

    start: int | None
    end: int | None
    total: int | None


def parse_content_range(value: str) -> ContentRange:
    """Parse ``bytes a-b/T``, ``bytes a-b/*`` or ``bytes */T``.

    Raises:
        ApiError: 400 for anything else.
    """
    m = _CONTENT_RANGE.match(value)
    if not m:
        raise bad_request(f"Invalid Content-Range: {value}", location="Content-Range")
    start = int(m.group(1)) if m.group(1) is not None else None
    end = int(m.group(2)) if m.group(2) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    if start is not None and end is not None and end < start:
        raise bad_request(f"Invalid Content-Range: {value}", location="Content-Range")
    return ContentRange(start, end, total)


@dataclass
class UploadSession:
    """One resumable upload in progress.

    Attributes:
        id: the ``upload_id``.
        user: who started it.
        target_id: the file whose content is replaced (``files.update``), or
            None for a new file (``files.insert``).
        metadata: the JSON metadata sent when the session started.
        params: query parameters of the starting request.
        content_type: ``X-Upload-Content-Type``.
        total: ``X-Upload-Content-Length`` or the total from a ``Content-Range``.
        writer: the staging blob holding the bytes received so far.
        result_id: the file's id once complete (its resource answers later status queries).
    """

    id: str
    user: str
    target_id: str | None
    metadata: dict[str, Any]
    params: dict[str, str]
    content_type: str | None
    total: int | None
    writer: BlobWriter
    result_id: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def received(self) -> int:
        """Bytes stored so far."""
        return self.writer.size


class UploadManager:
    """The resumable sessions of one emulator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, UploadSession] = {}

    def start(self, **kwargs: Any) -> UploadSession:
        """Create a session (keyword arguments as ``UploadSession``, without ``id``)."""
        upload_id = "AFake" + secrets.token_urlsafe(48)
        session = UploadSession(id=upload_id, **kwargs)
        with self._lock:
            self._sessions[upload_id] = session
        return session

    def get(self, upload_id: str) -> UploadSession | None:
        """The session with this id, or None."""
        with self._lock:
            return self._sessions.get(upload_id)

    def discard_all(self) -> None:
        """Abort every session (on shutdown)."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            if s.result_id is None:
                s.writer.abort()


def _boundary(content_type: str) -> bytes:
    m = re.search(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', content_type, re.IGNORECASE)
    if not m:
        raise bad_request("Missing boundary in multipart Content-Type")
    return (m.group(1) or m.group(2)).encode("latin-1")


def _split_headers(part: bytes) -> tuple[dict[str, str], bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = part.find(sep)
        if idx >= 0:
            # Use whichever separator comes first.
            other = part.find(b"\n\n" if sep == b"\r\n\r\n" else b"\r\n\r\n")
            if other >= 0 and other < idx:
                continue
            head, body = part[:idx], part[idx + len(sep) :]
            headers: dict[str, str] = {}
            for line in head.decode("latin-1").splitlines():
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            return headers, body
    raise bad_request("Malformed multipart body: a part has no header/body separator")


def parse_multipart_related(body: bytes, content_type: str) -> tuple[dict[str, Any], str | None, bytes]:
    """Split a ``multipart/related`` upload into (metadata, media type, media bytes).

    Accepts CRLF and bare-LF line breaks (googleapiclient's generator uses
    ``\\n``) and ``Content-Transfer-Encoding: base64`` media.

    Raises:
        ApiError: 400 for a body that is not two parts: JSON metadata, then media.
    """
    import json

    boundary = _boundary(content_type)
    pieces = (b"\n" + body).split(b"\n--" + boundary)
    parts: list[bytes] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        # The line break before a delimiter belongs to the delimiter.
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        if piece.startswith(b"\r\n"):
            piece = piece[2:]
        elif piece.startswith(b"\n"):
            piece = piece[1:]
        parts.append(piece)
    if len(parts) != 2:
        raise bad_request(f"Multipart upload must have 2 parts (metadata and media), got {len(parts)}")
    meta_headers, meta_body = _split_headers(parts[0])
    media_headers, media = _split_headers(parts[1])
    try:
        metadata = json.loads(meta_body.decode("utf-8")) if meta_body.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad_request(f"Invalid JSON metadata part: {e}")
    if not isinstance(metadata, dict):
        raise bad_request("Metadata part must be a JSON object")
    if media_headers.get("content-transfer-encoding", "").lower() == "base64":
        media = base64.b64decode(media)
    media_type = media_headers.get("content-type")
    _ = meta_headers
    return metadata, media_type, media
