"""The share-link web paths of the emulator: what a browser or ``curl`` gets without a token.

* ``GET /uc?export=download&id=ID`` answers ``303 See Other`` to the usercontent
  form ``/download?id=ID&export=download`` (keeping ``confirm``/``uuid``), as
  ``drive.google.com`` now redirects to ``drive.usercontent.google.com``.
* ``GET /download?id=ID&export=download`` serves the bytes of a file shared
  with "anyone with the link" (``Range`` supported, ``Content-Disposition``
  carrying the file name). Above ``virus_scan_threshold_bytes`` it first serves
  Drive's HTML "can't scan this file for viruses" page, whose form (and link)
  carry ``confirm=t`` and a ``uuid``; repeating the request with any non-empty
  ``confirm`` gets the bytes.
* Files that do not exist or are trashed get an HTML 404 page; files that are
  not shared by link get an HTML 403 "access denied" page (never bytes).
* ``/file/d/ID/view`` (and ``edit``/``preview``), ``/open?id=ID`` and
  ``/drive/folders/ID`` give small HTML pages, so share links resolve.
"""

from __future__ import annotations

import html
import re
import uuid as _uuid
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from .server import Request, Response, html_response
from .shaping import Fault
from .store import FileRecord

if TYPE_CHECKING:
    from .api import DriveApp

__all__ = ["fault_page", "handle", "is_download_path"]

_DOWNLOAD_PATHS = ("/uc", "/download")
_FILE_PAGE = re.compile(r"^/file(?:/u/\d+)?/d/(?P<id>[^/]+)(?:/(?:view|edit|preview))?/?$")
_FOLDER_PAGE = re.compile(r"^/drive(?:/u/\d+)?/folders/(?P<id>[^/]+)/?$")


def is_download_path(path: str) -> bool:
    """True for the web download paths (faults apply to them)."""
    return path in _DOWNLOAD_PATHS


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )


def not_found_page() -> Response:
    """Drive's 404 page."""
    return html_response(
        404,
        _page(
            "Google Drive - Page Not Found",
            "<div id=\"af-error-container\"><p><b>404.</b> <ins>That's an error.</ins></p>"
            "<p>Sorry, the file you have requested does not exist.</p>"
            "<p>Make sure that you have the correct URL and the file exists.</p></div>",
        ),
    )


def access_denied_page(file_id: str) -> Response:
    """What a signed-out visitor of a private file gets."""
    return html_response(
        403,
        _page(
            "Google Drive - Access Denied",
            "<div id=\"af-error-container\"><p><b>403.</b> <ins>Access denied.</ins></p>"
            f"<p>You need access to the file {html.escape(file_id)}. Ask for access, or switch to an "
            "account with access.</p></div>",
        ),
    )


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{size:.0f}{unit}"
        size /= 1024
    return str(n)


def virus_scan_page(app: DriveApp, rec: FileRecord) -> Response:
    """The "can't scan this file for viruses" confirmation page."""
    token = str(_uuid.uuid4())
    name = html.escape(rec.title)
    fid = html.escape(rec.id)
    action = html.escape(app.base_url + "download")
    legacy = html.escape(
        app.base_url + "uc?" + urlencode({"export": "download", "confirm": "t", "id": rec.id, "uuid": token})
    )
    body = (
        "<div class=\"uc-main\"><div id=\"uc-text\">"
        "<p class=\"uc-warning-caption\">Google Drive can't scan this file for viruses.</p>"
        f"<p class=\"uc-warning-subcaption\"><span class=\"uc-name-size\"><a href=\"/open?id={fid}\">{name}</a>"
        f" ({_human_size(rec.size)})</span> is too large for Google to scan for viruses. "
        "Would you still like to download this file?</p>"
        f"<form id=\"download-form\" action=\"{action}\" method=\"get\">"
        "<input type=\"submit\" id=\"uc-download-link\" class=\"goog-inline-block jfk-button jfk-button-action\""
        " value=\"Download anyway\"/>"
        f"<input type=\"hidden\" name=\"id\" value=\"{fid}\">"
        "<input type=\"hidden\" name=\"export\" value=\"download\">"
        "<input type=\"hidden\" name=\"confirm\" value=\"t\">"
        f"<input type=\"hidden\" name=\"uuid\" value=\"{token}\"></form>"
        f"<p class=\"uc-legacy\"><a id=\"uc-download-url\" href=\"{legacy}\">Download anyway</a></p>"
        "</div></div>"
    )
    return html_response(200, _page("Google Drive - Virus scan warning", body))


def fault_page(app: DriveApp, fault: Fault) -> Response:
    """The HTML error a web download gets for an injected fault."""
    if fault.kind == "quota":
        return html_response(
            403,
            _page(
                "Google Drive - Quota exceeded",
                "<p class=\"uc-error-caption\">Sorry, you can't view or download this file at this time.</p>"
                "<p class=\"uc-error-subcaption\">Too many users have viewed or downloaded this file recently. "
                "Please try accessing the file again later. If the file you are trying to access is "
                "particularly large or is shared with many people, it may take up to 24 hours to be able "
                "to view or download the file.</p>",
            ),
        )
    if fault.kind in ("429", "403-rate"):
        status = 429 if fault.kind == "429" else 403
        headers = [("Retry-After", str(app.retry_after_s))] if status == 429 else []
        return html_response(
            status,
            _page(
                "Sorry...",
                "<p>We're sorry... but your computer or network may be sending automated queries. "
                "To protect our users, we can't process your request right now.</p>",
            ),
            headers,
        )
    if fault.kind == "401":
        return access_denied_page("")
    status = 500 if fault.kind == "500" else 503
    return html_response(
        status,
        _page(f"Error {status}", f"<p><b>{status}.</b> <ins>That's an error.</ins></p>"
              "<p>The server encountered a temporary error. Please try again in 30 seconds.</p>"),
    )


def _readable_public(app: DriveApp, file_id: str | None) -> FileRecord | Response:
    if not file_id:
        return not_found_page()
    rec = app.store.get(file_id)
    if rec is None or app.store.is_trashed(rec) or rec.is_root:
        return not_found_page()
    if not app.store.is_public(rec):
        return access_denied_page(file_id)
    return rec


def _content_disposition(title: str) -> str:
    ascii_name = title.encode("ascii", "replace").decode("ascii").replace('"', "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(title)}"


def handle(app: DriveApp, req: Request) -> Response:
    """Answer a request outside ``/drive`` and ``/upload`` (no token needed)."""
    path = req.path
    method = "GET" if req.method == "HEAD" else req.method
    if method != "GET":
        return html_response(405, _page("Error 405", "<p>Method not allowed.</p>"), [("Allow", "GET, HEAD")])
    if path == "/uc":
        params = {"id": req.query.get("id", ""), "export": "download"}
        for extra in ("confirm", "uuid", "resourcekey"):
            if req.query.get(extra):
                params[extra] = req.query[extra]
        return Response(303, [("Location", app.base_url + "download?" + urlencode(params)),
                              ("Content-Type", "text/html; charset=utf-8")], b"")
    if path == "/download":
        found = _readable_public(app, req.query.get("id"))
        if isinstance(found, Response):
            return found
        rec = found
        if rec.is_folder or not rec.is_binary:
            return not_found_page()
        if rec.size > app.virus_scan_threshold_bytes and not req.query.get("confirm"):
            return virus_scan_page(app, rec)
        return app.media(req, rec, extra_headers=[("Content-Disposition", _content_disposition(rec.title))])
    if path == "/open":
        file_id = req.query.get("id", "")
        return Response(302, [("Location", f"{app.base_url}file/d/{quote(file_id)}/view")], b"")
    m = _FILE_PAGE.match(path) or _FOLDER_PAGE.match(path)
    if m:
        found = _readable_public(app, m.group("id"))
        if isinstance(found, Response):
            return found
        title = html.escape(found.title)
        return html_response(
            200,
            _page(
                f"{found.title} - Google Drive",
                f"<meta property=\"og:title\" content=\"{title}\"><h1>{title}</h1>"
                f"<a href=\"{html.escape(app.base_url)}uc?id={html.escape(found.id)}&amp;export=download\">"
                "Download</a>",
            ),
        )
    if path in ("/", ""):
        return html_response(200, _page("fakedrive", "<p>Drive v2 emulator for colabmodels.</p>"))
    return html_response(404, _page("Error 404", "<p><b>404.</b> <ins>That's an error.</ins></p>"))
