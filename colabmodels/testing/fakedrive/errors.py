"""Google API error envelopes, as Drive v2 returns them.

Every 4xx/5xx from the emulator's API paths is JSON of this shape (the clients
json-parse error bodies: PyDrive2's ``ApiRequestError`` reads
``error.errors[0].reason``)::

    {"error": {"code": 404, "message": "File not found: 1Ab...",
               "errors": [{"domain": "global", "reason": "notFound",
                           "message": "File not found: 1Ab...",
                           "locationType": "parameter", "location": "fileId"}]}}

Handlers raise ``ApiError``; the server turns it into the response.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = [
    "ApiError",
    "auth_error",
    "backend_error",
    "bad_request",
    "download_quota_exceeded",
    "file_not_downloadable",
    "insufficient_permissions",
    "not_found",
    "rate_limit_exceeded",
]


@dataclass
class ApiError(Exception):
    """An error response of the Drive API.

    Attributes:
        code: HTTP status.
        reason: the machine-readable reason (``notFound``, ``authError``...).
        message: human-readable message, used for both ``error.message`` and
            ``errors[0].message``.
        domain: ``global`` or ``usageLimits``.
        location / location_type: what the error is about (``fileId`` /
            ``parameter``, ``Authorization`` / ``header``).
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    code: int
    reason: str
    message: str
    domain: str = "global"
    location: str | None = None
    location_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.code} {self.reason}: {self.message}")

    def body(self) -> dict:
        """The JSON error envelope."""
        detail: dict[str, str] = {
            "domain": self.domain,
            "reason": self.reason,
            "message": self.message,
        }
        if self.location_type:
            detail["locationType"] = self.location_type
        if self.location:
            detail["location"] = self.location
        return {"error": {"code": self.code, "message": self.message, "errors": [detail]}}

    def body_bytes(self) -> bytes:
        """The JSON error envelope, encoded."""
        return json.dumps(self.body(), indent=1).encode("utf-8")


def not_found(file_id: str, *, location: str = "fileId") -> ApiError:
    """404 for a file that does not exist or that the caller cannot see."""
    return ApiError(
        404,
        "notFound",
        f"File not found: {file_id}",
        location=location,
        location_type="parameter",
    )


def auth_error(message: str = "Invalid Credentials") -> ApiError:
    """401 for a missing, malformed, unknown or expired bearer token."""
    return ApiError(
        401,
        "authError",
        message,
        location="Authorization",
        location_type="header",
        headers={
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
        },
    )


def insufficient_permissions(
    message: str = "The user does not have sufficient permissions for this file.",
) -> ApiError:
    """403 for a file the caller can see but not change."""
    return ApiError(
        403,
        "insufficientFilePermissions",
        message,
        location="file.permissions",
        location_type="other",
    )


def bad_request(message: str, *, location: str | None = None, reason: str = "invalid") -> ApiError:
    """400 ``invalid`` (``Invalid Value``-style) for a bad parameter or body."""
    return ApiError(
        400,
        reason,
        message,
        location=location,
        location_type="parameter" if location else None,
    )


def rate_limit_exceeded(*, user: bool = False, code: int = 403, retry_after: int | None = None) -> ApiError:
    """403 (or 429) ``rateLimitExceeded`` / ``userRateLimitExceeded``."""
    reason = "userRateLimitExceeded" if user else "rateLimitExceeded"
    message = "User Rate Limit Exceeded" if user else "Rate Limit Exceeded"
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return ApiError(code, reason, message, domain="usageLimits", headers=headers)


def download_quota_exceeded() -> ApiError:
    """403 ``downloadQuotaExceeded`` (a file downloaded too often)."""
    return ApiError(
        403,
        "downloadQuotaExceeded",
        "The download quota for this file has been exceeded.",
        domain="usageLimits",
    )


def backend_error(code: int = 503) -> ApiError:
    """500/503 ``backendError``."""
    message = "Backend Error" if code == 500 else "The service is currently unavailable."
    return ApiError(code, "backendError", message)


def file_not_downloadable(file_id: str) -> ApiError:
    """403 ``fileNotDownloadable`` for folders and Google Docs."""
    return ApiError(
        403,
        "fileNotDownloadable",
        "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
        location="alt",
        location_type="parameter",
    )
