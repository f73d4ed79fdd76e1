"""Shared fixtures. Loopback servers live in tests/servers.py; they are registered here."""

from __future__ import annotations

import os
import sys

import pytest

# tests/servers.py is imported as ``tests.servers`` whichever way pytest is started.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.servers import GCSEmulator, MotoServer, StaticHTTPServer, fake_cloud_env  # noqa: E402


@pytest.fixture(scope="session")
def cloud_env(tmp_path_factory):
    """Fake AWS credentials and no metadata-server probing, for the whole session."""
    with fake_cloud_env(tmp_path_factory.mktemp("cloud-env")) as env:
        yield env


@pytest.fixture(scope="session")
def moto_server(cloud_env):
    """moto's S3 on 127.0.0.1 (``.endpoint``, ``.create_bucket(name)``)."""
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def gcs_emulator(cloud_env):
    """gcp-storage-emulator on 127.0.0.1 (``.endpoint``, ``.create_bucket(name)``)."""
    with GCSEmulator() as server:
        yield server


@pytest.fixture(scope="session")
def http_server(tmp_path_factory):
    """A static HTTP server on 127.0.0.1 serving a temporary folder (``.root``, ``.write``)."""
    with StaticHTTPServer(tmp_path_factory.mktemp("http-root")) as server:
        yield server
