"""Fixtures for tests that drive real clients against the Drive emulator.

``fake_drive`` itself is the one in the root conftest.py (every tier's): it keeps every JSON
body it sends and, at teardown, validates each one against the Drive v2 discovery schemas
(:mod:`tests.drive_checks`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from colabmodels.testing import FakeDrive
from tests.drive_checks import validate_logged_responses


@pytest.fixture
def validate_responses() -> Any:
    """The function that validates every JSON body an emulator sent (returns the count)."""
    return validate_logged_responses


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
