"""fsspec's own abstract test suites (copy, get, put, pipe, open) run against gdrive:// on the
Drive emulator, as fsspec runs them against memory:// and file://."""

from __future__ import annotations

import posixpath
import uuid

import pytest
from fsspec.tests.abstract import (
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

from colabmodels.gdrivefs import GDriveFileSystem
from colabmodels.testing import FakeDrive

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def gdrive_fs(tmp_path_factory):
    """One emulator for the module, and a filesystem signed in to it with a key file."""
    with FakeDrive() as fd:
        key = tmp_path_factory.mktemp("gdrive-key") / "key.json"
        fd.write_service_account(key)
        yield GDriveFileSystem(service_account=str(key), endpoint=fd.url, skip_instance_cache=True)


class GDriveFixtures(AbstractFixtures):
    @pytest.fixture
    def fs(self, gdrive_fs):
        gdrive_fs.invalidate_cache()
        return gdrive_fs

    @pytest.fixture
    def fs_join(self):
        return posixpath.join

    @pytest.fixture
    def fs_path(self):
        return f"MyDrive/abstract/{uuid.uuid4().hex[:10]}"


class TestGDriveCopy(AbstractCopyTests, GDriveFixtures):
    pass


class TestGDriveGet(AbstractGetTests, GDriveFixtures):
    pass


class TestGDrivePut(AbstractPutTests, GDriveFixtures):
    pass


class TestGDrivePipe(AbstractPipeTests, GDriveFixtures):
    pass


class TestGDriveOpen(AbstractOpenTests, GDriveFixtures):
    pass
