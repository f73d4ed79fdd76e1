"""The Drive v2 API as the session and the Drive backend both speak it, in one place.

- building the v2 service from the bundled discovery document, aimed at an endpoint;
- the ``q`` query language's string quoting (:func:`quote_q`) and the file fields we ask for;
- what Google's error responses mean: :func:`classify_response` turns an HTTP status (+
  headers + a Google-style JSON body) into the colabmodels error to raise, and
  :func:`translate_drive_error` does the same for whatever googleapiclient, PyDrive2,
  httplib2 or google-auth raised; the HTTP backend uses :func:`classify_response` too;
- which files have no bytes to download (Google Docs, Sheets, Slides...).

403 answers are told apart by their reason: ``rateLimitExceeded``/``userRateLimitExceeded``
are retried; ``downloadQuotaExceeded`` and the storage/daily quotas are
:class:`~colabmodels.errors.QuotaError`; ``fileNotDownloadable`` and
``cannotDownloadAbusiveFile`` are :class:`~colabmodels.errors.NotDownloadableError`; the rest
(``insufficientFilePermissions``, ``forbidden``...) are :class:`~colabmodels.errors.AuthError`.
Only a 401 means the access token was refused.

This module sits below the session and the storage backends: it imports ``config``,
``errors``, ``retry`` and ``auth`` only.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import Mapping
from datetime import timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import config
from ..errors import (
    AuthError,
    ColabModelsError,
    NotDownloadableError,
    NotFoundError,
    QuotaError,
    RetryableError,
    TransferError,
)
from ..retry import network_down_error

__all__ = [
    "DOWNLOAD_QUOTA_MESSAGE",
    "FILE_FIELDS",
    "FOLDER_MIME",
    "GOOGLE_APPS_PREFIX",
    "RATE_LIMIT_REASONS",
    "SHORTCUT_MIME",
    "build_drive_service",
    "check_downloadable",
    "classify_response",
    "google_error",
    "header",
    "parse_retry_after",
    "quote_q",
    "redact_url",
    "translate_drive_error",
]

logger = logging.getLogger("colabmodels.drive")

FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
GOOGLE_APPS_PREFIX = "application/vnd.google-apps."
FILE_FIELDS = ("id,title,mimeType,fileSize,md5Checksum,createdDate,modifiedDate,description,"
               "properties,labels,version,parents,shortcutDetails")
"""The fields of a file resource that stat, list and uploads ask for."""

_GOOGLE_APPS_KINDS = {
    "document": ("a Google Doc", ".docx, .pdf or .txt"),
    "spreadsheet": ("a Google Sheet", ".xlsx or .csv"),
    "presentation": ("a Google Slides presentation", ".pptx or .pdf"),
    "drawing": ("a Google Drawing", ".png, .svg or .pdf"),
    "form": ("a Google Form", None),
    "script": ("an Apps Script project", None),
    "site": ("a Google Site", None),
    "jam": ("a Jamboard", ".pdf"),
    "map": ("a My Maps map", ".kml"),
    "fusiontable": ("a Fusion Table", ".csv"),
}

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
DOWNLOAD_QUOTA_MESSAGE = (
    "Drive's download quota for this file is exceeded (too many users have viewed or "
    "downloaded it). Sign in and use the API (cm.mount()), wait up to 24 hours, or copy the "
    "file to your own Drive and load the copy."
)
_STORAGE_QUOTA_REASONS = frozenset({"storageQuotaExceeded", "quotaExceeded",
                                    "teamDriveFileLimitExceeded"})
_DAILY_QUOTA_REASONS = frozenset({"dailyLimitExceeded", "dailyLimitExceededUnreg"})
_NOT_DOWNLOADABLE = "fileNotDownloadable"
_ABUSIVE = "cannotDownloadAbusiveFile"
_SECRET_QUERY = re.compile(r"sig|signature|token|key|credential|auth|policy|secret|session",
                           re.IGNORECASE)


# -- the service and queries -----------------------------------------------------------------

def build_drive_service(http: Any, endpoint: str | None = None) -> Any:
    """A Drive v2 service object from the bundled discovery document, aimed at ``endpoint``."""
    from googleapiclient.discovery import build_from_document
    from googleapiclient.discovery_cache import get_static_doc

    endpoint = endpoint or config.drive_endpoint()
    doc = json.loads(get_static_doc("drive", "v2"))
    if endpoint != config.GOOGLE_DRIVE_ENDPOINT:
        doc["rootUrl"] = endpoint
        doc["mtlsRootUrl"] = endpoint
        doc["baseUrl"] = endpoint + doc["servicePath"]
    return build_from_document(doc, http=http)


def quote_q(value: str) -> str:
    """A string literal for a Drive ``q`` query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_downloadable(name: str, mime: str | None) -> None:
    """Raise when ``mime`` says the file has no bytes of its own (a Google Doc, Sheet...).

    Folders and shortcuts are not checked here (a folder is fetched as a tree, a shortcut
    stands for its target).

    Raises:
        NotDownloadableError: the message says what the file is and how to export it.
    """
    if not mime or not mime.startswith(GOOGLE_APPS_PREFIX) or mime in (FOLDER_MIME, SHORTCUT_MIME):
        return
    kind, formats = _GOOGLE_APPS_KINDS.get(mime[len(GOOGLE_APPS_PREFIX):],
                                           (f"a Google Workspace file ({mime})", None))
    how = (f"Export it first (in Drive: File > Download, e.g. as {formats}), put the exported "
           "file in Drive and load that." if formats else
           "It cannot be exported as a file colabmodels could load.")
    raise NotDownloadableError(
        f"{name} is {kind}, not a file with bytes to download: Drive keeps it in Google's own "
        f"format. {how}")


# -- error responses -------------------------------------------------------------------------

def redact_url(url: str) -> str:
    """``url`` fit for messages and logs: no user:password, no signature/token query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode([(k, "REDACTED" if _SECRET_QUERY.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def google_error(body: bytes | str | None) -> tuple[list[str], str]:
    """(reasons, message) from a Google JSON error body; ([], "") when it is not one."""
    if not body:
        return [], ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return [], ""
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, str):  # OAuth-style {"error": "invalid_grant", "error_description": ...}
        return [err], str(data.get("error_description") or err)
    if not isinstance(err, dict):
        return [], ""
    reasons = [str(e.get("reason")) for e in err.get("errors") or []
               if isinstance(e, dict) and e.get("reason")]
    if not reasons and isinstance(err.get("status"), str):  # newer APIs: "RESOURCE_EXHAUSTED"
        reasons = [err["status"]]
    return reasons, str(err.get("message") or "")


def _body_text(body: bytes | str | None, limit: int = 300) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = re.sub(r"<[^>]+>", " ", text)  # HTML error pages
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header from any mapping, case-insensitively."""
    if not headers:
        return None
    get = getattr(headers, "get", None)
    value = get(name) if get else None
    if value is None:  # a plain dict with other capitalisation
        lname = name.lower()
        for k, v in headers.items():
            if k.lower() == lname:
                return v
    return value


def classify_response(status: int, headers: Mapping[str, str] | None = None,
                      body: bytes | str | None = None, *, url: str | None = None) -> Exception | None:
    """The exception an HTTP error response stands for, or None for a success.

    - 404/410 -> :class:`NotFoundError`; 401 -> :class:`AuthError`
    - 403 with reason ``rateLimitExceeded``/``userRateLimitExceeded`` -> :class:`RetryableError`;
      ``downloadQuotaExceeded`` (or Drive's "too many users" page) -> :class:`QuotaError`;
      storage/daily quota reasons -> :class:`QuotaError`; ``fileNotDownloadable``,
      ``cannotDownloadAbusiveFile`` -> :class:`NotDownloadableError`; any other 403
      (``insufficientFilePermissions``, ``forbidden``...) -> :class:`AuthError`
    - 408, 429, 5xx -> :class:`RetryableError` (with ``retry_after`` from ``Retry-After``)
    - anything else >= 400 -> :class:`TransferError`

    The returned error carries the status as ``error.status``.

    Args:
        status: HTTP status code.
        headers: response headers (any case-insensitive or plain mapping).
        body: the start of the response body (JSON error bodies are parsed).
        url: for the message (signatures and tokens are redacted).
    """
    if status < 400:
        return None
    error = _classify(status, headers, body, url)
    error.status = status  # type: ignore[attr-defined]
    return error


def _classify(status: int, headers: Mapping[str, str] | None, body: bytes | str | None,
              url: str | None) -> Exception:
    where = f" from {redact_url(url)}" if url else ""
    reasons, message = google_error(body)
    detail = message or _body_text(body)
    suffix = f": {detail}" if detail else ""
    retry_after = parse_retry_after(header(headers, "Retry-After"))
    reason_set = set(reasons)

    if status in (404, 410):
        return NotFoundError(f"not found (HTTP {status}){where}{suffix}")
    if status == 401:
        return AuthError(f"not signed in or credentials rejected (HTTP 401){where}{suffix}")
    if status == 403 or (status == 429 and "downloadQuotaExceeded" in reason_set):
        if reason_set & RATE_LIMIT_REASONS:
            return RetryableError(f"rate limited (HTTP {status} {reasons[0]}){where}{suffix}",
                                  retry_after=retry_after, status=status)
        text = _body_text(body, 2000).lower()
        if "downloadQuotaExceeded" in reason_set or "too many users have viewed or downloaded" in text:
            return QuotaError(f"{DOWNLOAD_QUOTA_MESSAGE} (HTTP {status}{where})")
        if reason_set & _STORAGE_QUOTA_REASONS:
            return QuotaError(f"storage quota exceeded (HTTP {status}){where}{suffix}. Free some "
                              "space or save somewhere else.")
        if reason_set & _DAILY_QUOTA_REASONS:
            return QuotaError(f"daily API quota exceeded (HTTP {status}){where}{suffix}. Try again "
                              "tomorrow or use credentials of another project.")
        if _NOT_DOWNLOADABLE in reason_set:
            return NotDownloadableError(
                f"Drive does not serve this file's bytes (HTTP 403 {_NOT_DOWNLOADABLE}){where}"
                f"{suffix}. Google Docs, Sheets and Slides must be exported (in Drive: File > "
                "Download) and the exported file loaded instead.")
        if _ABUSIVE in reason_set:
            return NotDownloadableError(
                f"Drive flagged this file as malware or spam and will not serve it (HTTP 403 "
                f"{_ABUSIVE}){where}{suffix}. Only its owner can download it; ask them to check "
                "it or to share a clean copy.")
        why = f" ({reasons[0]})" if reasons else ""
        return AuthError(f"access denied (HTTP 403{why}){where}{suffix}. The signed-in account "
                         "has no permission on this file: ask its owner to share it with you.")
    if status in (408, 429) or status >= 500:
        return RetryableError(f"HTTP {status}{where}{suffix}", retry_after=retry_after,
                              status=status)
    if status == 416:
        return TransferError(f"requested range not satisfiable (HTTP 416){where}")
    return TransferError(f"HTTP {status}{where}{suffix}")


_CONNECTION_TROUBLE = frozenset({"RedirectMissingLocation", "IncompleteRead",
                                 "RemoteDisconnected"})


def translate_drive_error(exc: BaseException, what: str) -> BaseException:
    """A googleapiclient / PyDrive2 / httplib2 / google-auth error as a colabmodels error.

    Transient trouble comes back as :class:`RetryableError`; a network that is down as
    :class:`~colabmodels.errors.NetworkDownError`.
    """
    if isinstance(exc, (ColabModelsError, RetryableError)):
        down = network_down_error(exc, what) if isinstance(exc, (AuthError, RetryableError)) else None
        return down or exc
    down = network_down_error(exc, what)
    if down is not None:
        return down
    if type(exc).__name__ == "RefreshError":  # google.auth.exceptions.RefreshError
        from ..auth import redact

        return AuthError(f"{what}: the sign-in was refused: {redact(str(exc))}")
    inner = getattr(exc, "error", None)  # pydrive2.files.ApiRequestError wraps HttpError
    http_error = inner if inner is not None and hasattr(inner, "resp") else exc
    resp = getattr(http_error, "resp", None)
    if resp is not None and hasattr(resp, "status"):
        content = getattr(http_error, "content", b"")
        error = classify_response(int(resp.status), dict(resp), content)
        if error is not None:
            if isinstance(error, RetryableError):
                return error
            error.args = (f"{what}: {error.args[0]}",)
            return error
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)) or type(exc).__name__ in _CONNECTION_TROUBLE:
        return RetryableError(f"{what}: connection problem: {exc}")
    return TransferError(f"{what}: {type(exc).__name__}: {exc}")
