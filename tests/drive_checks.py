"""What every test's Drive emulator is checked against: each JSON body it sent must match the
Drive v2 discovery schemas (errors the Google error envelope). The ``fake_drive`` fixture
(conftest.py) runs this at teardown, so every test that uses the emulator also checks its wire
format."""

from __future__ import annotations

from typing import Any

from colabmodels.testing import FakeDrive
from tests.emulator.discovery_schema import (
    schema_for_request,
    validate_body,
    validate_error_body,
    validate_resource,
)

__all__ = ["validate_logged_responses"]

# Schema of a successful JSON answer without ``kind`` (a ``fields=`` selection), by path shape.
_SCHEMA_BY_PATH = (
    (("GET", "/drive/v2/about"), "About"),
    (("GET", "/drive/v2/files"), "FileList"),
)


def validate_logged_responses(fd: FakeDrive) -> int:
    """Validate every JSON body ``fd`` sent on /drive and /upload; returns how many were checked.

    Long lists are sampled (first and last 10 items): every item comes from the
    same rendering code, and validating thousands would dominate the run time.
    """
    checked = 0
    for r in fd.requests:
        body: Any = r.response_json
        if body is None or not (r.path.startswith("/drive/") or r.path.startswith("/upload/")):
            continue
        items = body.get("items") if isinstance(body, dict) else None
        if isinstance(items, list) and len(items) > 20:
            body = {**body, "items": items[:10] + items[-10:]}
        if r.status is not None and r.status >= 400:
            validate_error_body(body)
        elif "kind" in body:
            validate_body(body)
        else:
            try:
                name = schema_for_request(r.method, r.path)
            except KeyError:  # /upload/... answers a File
                name = dict(_SCHEMA_BY_PATH).get((r.method, r.path), "File")
            validate_resource(body, name)
        checked += 1
    return checked
