"""Google Docs Editors files: conversion on upload, ``exportLinks`` and export.

The emulator keeps a Google Doc as its plain text and a Google Sheet as CSV
(UTF-8, in the file's blob). What it does, following Drive:

* uploads with ``convert=true`` of ``text/plain``, ``text/html`` (tags
  stripped) and ``text/markdown`` become ``application/vnd.google-apps.document``;
  ``text/csv`` and ``text/tab-separated-values`` become
  ``application/vnd.google-apps.spreadsheet``;
* Docs files have ``exportLinks`` (no ``downloadUrl``, ``fileSize``,
  ``md5Checksum`` or ``headRevisionId``); ``alt=media`` on them is 403
  ``fileNotDownloadable``;
* ``files.export`` (``GET files/{id}/export?mimeType=``) and the export links
  give the content in these formats: a document as ``text/plain`` (with a UTF-8
  byte-order mark and CRLF line ends, as Drive sends it), ``text/html``,
  ``text/markdown`` and ``application/rtf``; a spreadsheet as ``text/csv`` and
  ``text/tab-separated-values``. Other formats (PDF, Office, OpenDocument) are
  not produced: asking for them is 400 ``badRequest``, and they are not in
  ``exportLinks``. An export above 10 MB is 403 ``exportSizeLimitExceeded``.
"""

from __future__ import annotations

import csv
import html
import io
import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .errors import ApiError
from .handlers import ApiMixin, RouteTable
from .server import Request, Response

if TYPE_CHECKING:
    from .store import FileRecord, User

__all__ = ["DOCUMENT_MIME", "SPREADSHEET_MIME", "DocsApi", "convert_upload", "export_links", "is_doc"]

DOCUMENT_MIME = "application/vnd.google-apps.document"
SPREADSHEET_MIME = "application/vnd.google-apps.spreadsheet"
EXPORT_LIMIT_BYTES = 10 * 1024 * 1024
BOM = "\ufeff"

_CONVERT = {
    "text/plain": DOCUMENT_MIME,
    "text/html": DOCUMENT_MIME,
    "text/markdown": DOCUMENT_MIME,
    "text/csv": SPREADSHEET_MIME,
    "text/tab-separated-values": SPREADSHEET_MIME,
}
# Google type -> {export mime: exportFormat}
_EXPORTS = {
    DOCUMENT_MIME: {"text/plain": "txt", "text/html": "html", "text/markdown": "md", "application/rtf": "rtf"},
    SPREADSHEET_MIME: {"text/csv": "csv", "text/tab-separated-values": "tsv"},
}
_LINK_PATHS = {DOCUMENT_MIME: "feeds/download/documents/export/Export", SPREADSHEET_MIME: "spreadsheets/export"}
EXPORT_PATHS = tuple("/" + p for p in _LINK_PATHS.values())


def is_doc(rec: FileRecord) -> bool:
    """True for the Docs types the emulator can export."""
    return rec.mime_type in _EXPORTS


def export_links(base_url: str, rec: FileRecord) -> dict[str, str]:
    """The ``exportLinks`` of a Docs file (empty for other files)."""
    formats = _EXPORTS.get(rec.mime_type)
    if not formats:
        return {}
    path = _LINK_PATHS[rec.mime_type]
    return {mime: f"{base_url}{path}?{urlencode({'id': rec.id, 'exportFormat': fmt})}" for mime, fmt in formats.items()}


class _TextOfHtml(HTMLParser):
    _BREAKS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip += 1
        elif tag in self._BREAKS and self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BREAKS and self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data) if data.strip() else "")


def convert_upload(data: bytes, source_mime: str) -> tuple[str, bytes] | None:
    """``(google mime, stored bytes)`` for a ``convert=true`` upload, or None if not convertible."""
    base = (source_mime or "").split(";", 1)[0].strip().lower()
    target = _CONVERT.get(base)
    if target is None:
        return None
    text = data.decode("utf-8", "replace").lstrip(BOM)
    if base == "text/html":
        parser = _TextOfHtml()
        parser.feed(text)
        parser.close()
        text = "".join(parser.parts).strip("\n") + "\n"
    elif base == "text/tab-separated-values":
        rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        text = out.getvalue()
    text = text.replace("\r\n", "\n")
    return target, text.encode("utf-8")


def export_bytes(rec: FileRecord, stored: bytes, mime: str) -> bytes:
    """The content of Docs file ``rec`` (stored as ``stored``) in format ``mime``.

    Raises:
        ApiError: 400 for a format the emulator does not produce.
    """
    formats = _EXPORTS.get(rec.mime_type, {})
    if mime not in formats:
        raise ApiError(400, "badRequest", "The requested conversion is not supported.", location="mimeType",
                       location_type="parameter")
    text = stored.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if mime == "text/plain":
        return (BOM + "\r\n".join(lines)).encode("utf-8")
    if mime == "text/markdown":
        return "\n".join(lines).encode("utf-8") + b"\n"
    if mime == "text/html":
        body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
        return f'<html><head><meta content="text/html; charset=UTF-8" http-equiv="content-type"></head><body>{body}</body></html>'.encode()
    if mime == "application/rtf":
        escaped = [ln.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}") for ln in lines]
        return ("{\\rtf1\\ansi " + "\\par\n".join(escaped) + "}").encode("utf-8")
    if mime == "text/tab-separated-values":
        rows = list(csv.reader(io.StringIO(text)))
        return "\n".join("\t".join(r) for r in rows).encode("utf-8")
    return text.encode("utf-8")  # text/csv


class DocsApi(ApiMixin):
    """``files.export`` and the export links."""

    def routes(self) -> RouteTable:
        return [("GET", r"files/(?P<file_id>[^/]+)/export", self.files_export)]

    def _export(self, rec: FileRecord, mime: str) -> Response:
        if not is_doc(rec):
            raise ApiError(403, "fileNotExportable", "Export only supports Docs Editors files.")
        stored = self.store.blob_path(rec).read_bytes() if rec.has_blob else b""
        data = export_bytes(rec, stored, mime)
        if len(data) > EXPORT_LIMIT_BYTES:
            raise ApiError(403, "exportSizeLimitExceeded", "This file is too large to be exported.")
        return Response(200, [("Content-Type", mime + ("; charset=utf-8" if mime.startswith("text/") else ""))], data)

    def files_export(self, req: Request, user: User, file_id: str) -> Response:
        """``GET files/{id}/export?mimeType=``."""
        rec = self._file(file_id, user)
        mime = req.query.get("mimeType")
        if not mime:
            raise ApiError(400, "required", "Required parameter: mimeType", location="mimeType",
                           location_type="parameter")
        return self._export(rec, mime)

    def export_link(self, req: Request) -> Response:
        """``GET /feeds/download/documents/export/Export?id=&exportFormat=`` (and the sheets form)."""
        email = self._optional_user(req)
        rec = self._visible_record(req.query.get("id", ""), email)
        fmt = req.query.get("exportFormat", "")
        formats = _EXPORTS.get(rec.mime_type, {})
        mime = next((m for m, f in formats.items() if f == fmt), None)
        if mime is None:
            raise ApiError(400, "badRequest", "The requested conversion is not supported.",
                           location="exportFormat", location_type="parameter")
        return self._export(rec, mime)
