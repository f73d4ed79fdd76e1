"""What an HTTP error response means, for every wire colabmodels speaks over HTTP.

``classify_response`` turns an HTTP status (+ headers + a Google-style JSON body) into the
colabmodels error to raise. The HTTP backend (``colabmodels.storage.http``, which re-exports
these names) classifies every response with it, and the Drive room
(``colabmodels.drive.wire.translate_drive_error``) classifies the HTTP errors of
googleapiclient with it, so one status means one thing everywhere. It sits in the base layer,
below ``drive/`` and ``storage/``, because both use it.

403 answers are told apart by their reason: ``rateLimitExceeded``/``userRateLimitExceeded``
are retried; ``downloadQuotaExceeded`` and the storage/daily quotas are
``QuotaError``; ``fileNotDownloadable`` and
``cannotDownloadAbusiveFile`` are ``NotDownloadableError``; the rest
(``insufficientFilePermissions``, ``forbidden``...) are ``AuthError``.
Only a 401 means the access token was refused.

Also here: ``redact_url`` (a URL fit for messages) and ``parse_retry_after``.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from datetime import timezone
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import (
    AuthError,
    NotDownloadableError,
    NotFoundError,
    QuotaError,
    RetryableError,
    TransferError,
)

__all__ = [
    "DOWNLOAD_QUOTA_MESSAGE",
    "RATE_LIMIT_REASONS",
    "classify_response",
    "google_error",
    "header",
    "parse_retry_after",
    "redact_url",
]

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
DOWNLOAD_QUOTA_MESSAGE = (
    "Drive's download quota for this file is exceeded (too many users have viewed or "
    "downloaded it). Sign in (cm.mount() or %drive_mount) and load it again: colabmodels then "
    "downloads a temporary copy made in your own Drive. Or wait up to 24 hours, or copy the "
    "file to your Drive yourself (in Drive: Make a copy) and load the copy."
)
_STORAGE_QUOTA_REASONS = frozenset({"storageQuotaExceeded", "quotaExceeded",
                                    "teamDriveFileLimitExceeded"})
_DAILY_QUOTA_REASONS = frozenset({"dailyLimitExceeded", "dailyLimitExceededUnreg"})
_NOT_DOWNLOADABLE = "fileNotDownloadable"
_ABUSIVE = "cannotDownloadAbusiveFile"
_SECRET_QUERY = re.compile(r"sig|signature|token|key|credential|auth|policy|secret|session",
                           re.IGNORECASE)

_SECRET_QUERY = re.compile(r"sig|signature|token|key|credential|auth|policy|secret|session",
                           re.IGNORECASE)


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

    - 404/410 -> ``NotFoundError``; 401 -> ``AuthError``
    - 403 with reason ``rateLimitExceeded``/``userRateLimitExceeded`` -> ``RetryableError``;
      ``downloadQuotaExceeded`` (or Drive's "too many users" page) -> ``QuotaError``;
      storage/daily quota reasons -> ``QuotaError``; ``fileNotDownloadable``,
      ``cannotDownloadAbusiveFile`` -> ``NotDownloadableError``; any other 403
      (``insufficientFilePermissions``, ``forbidden``...) -> ``AuthError``
    - 408, 429, 5xx -> ``RetryableError`` (with ``retry_after`` from ``Retry-After``)
    - anything else >= 400 -> ``TransferError``

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
