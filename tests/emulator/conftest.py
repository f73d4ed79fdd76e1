"""Fixtures for tests that drive real clients against the Drive emulator.

``fake_drive`` keeps every JSON body it sends and, at teardown, validates each
one against the Drive v2 discovery schemas (errors against the Google error
envelope), so every test that uses it also checks the emulator's wire format.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from discovery_schema import (
    schema_for_request,
    validate_body,
    validate_error_body,
    validate_resource,
)

from colabmodels.testing import FakeDrive

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


@pytest.fixture
def validate_responses() -> Any:
    """The function that validates every JSON body an emulator sent (returns the count)."""
    return validate_logged_responses


@pytest.fixture
def fake_drive() -> Iterator[FakeDrive]:
    """A running emulator; all its JSON responses are schema-checked at teardown."""
    with FakeDrive(keep_json=True) as fd:
        yield fd
        validate_logged_responses(fd)


@pytest.fixture
def sa_key(fake_drive: FakeDrive, tmp_path: Path) -> Path:
    """A service-account key file registered with ``fake_drive`` (signs in as the default user)."""
    path = tmp_path / "service-account.json"
    fake_drive.write_service_account(path)
    return path


@pytest.fixture
def gauth(fake_drive: FakeDrive, sa_key: Path) -> Any:
    """A PyDrive2 GoogleAuth logged in with ``sa_key`` and pointed at ``fake_drive``."""
    from colabmodels.testing.fakedrive.client import pydrive2_auth

    return pydrive2_auth(fake_drive, sa_key)


@pytest.fixture
def drive(gauth: Any) -> Any:
    """A PyDrive2 GoogleDrive on ``fake_drive``."""
    from pydrive2.drive import GoogleDrive

    return GoogleDrive(gauth)
