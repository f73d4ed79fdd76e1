"""Issue 12: with Drive unreachable (the emulator stopped), what is cached is served with a
warning that it may be stale; what is not cached says so; versions honour offline mode."""

from __future__ import annotations

import json
import logging
import warnings

import pytest

import colabmodels as cm
from colabmodels.drive import session
from colabmodels.errors import NotFoundError, OfflineError, RefError, VersionError


def _version(fd, dest, n, payload):
    fd.put(f"{dest}/v{n}/model.bin", payload)
    fd.put(f"{dest}/v{n}/manifest.json", json.dumps({
        "manifest_schema": 1, "version": n, "framework": "torch", "format": "safetensors",
        "model_path": "model.bin", "files": [{"path": "model.bin", "size": len(payload)}],
        "created": f"2026-01-0{n}T00:00:00+00:00", "metadata": {"n": n}}).encode())


@pytest.fixture
def seeded(drive_env):
    """A cached file, a cached version and a listed version folder; then Drive goes away."""
    fid = drive_env.put("MyDrive/dead/a.bin", b"cached bytes")
    drive_env.put("MyDrive/dead/never.bin", b"never fetched")
    _version(drive_env, "MyDrive/models/net", 1, b"one")
    _version(drive_env, "MyDrive/models/net", 2, b"two")
    assert cm.fetch(fid, progress=False).read_bytes() == b"cached bytes"
    assert cm.fetch("MyDrive/dead/a.bin", progress=False).read_bytes() == b"cached bytes"
    assert [v.version for v in cm.versions("MyDrive/models/net")] == [1, 2]
    latest = cm.fetch("MyDrive/models/net@latest", progress=False)
    assert (latest / "model.bin").read_bytes() == b"two"
    drive_env.stop()
    session.reset()  # as a new process would start
    return fid


def _no_retries(caplog):
    return [r for r in caplog.records if "retrying" in r.getMessage()]


def test_cached_file_is_served_with_a_stale_warning(seeded, caplog):
    caplog.set_level(logging.INFO)
    with pytest.warns(UserWarning, match="may be stale"):
        assert cm.fetch(seeded, progress=False).read_bytes() == b"cached bytes"
    with pytest.warns(UserWarning, match="may be stale"):
        path = cm.fetch("MyDrive/dead/a.bin", progress=False)
    assert path.read_bytes() == b"cached bytes"
    assert any(r.levelno == logging.WARNING and "may be stale" in r.getMessage()
               for r in caplog.records)
    assert _no_retries(caplog) == [], "a dead network must not be retried"


def test_cached_version_is_served_by_latest_and_number(seeded):
    with pytest.warns(UserWarning, match="may be stale"):
        assert (cm.fetch("MyDrive/models/net@latest", progress=False) / "model.bin").read_bytes() == b"two"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        infos = cm.versions("MyDrive/models/net")
    assert [i.version for i in infos] == [1, 2]
    assert infos[1].metadata == {"n": 2}
    assert any("may be stale" in str(w.message) for w in caught)


def test_nothing_cached_says_so(seeded):
    with pytest.raises(OfflineError, match="not in the cache") as info:
        cm.fetch("MyDrive/dead/never.bin", progress=False)
    assert "MyDrive/dead/never.bin" in str(info.value)
    with pytest.raises(OfflineError, match="never listed"):
        cm.versions("MyDrive/models/other")
    with pytest.raises(OfflineError, match="not in the cache"), \
            pytest.warns(UserWarning, match="versions listed there last time"):
        cm.fetch("MyDrive/models/net@v1", progress=False)  # v1 was listed, never fetched


def test_offline_mode_serves_versions_without_the_network(seeded, monkeypatch, recwarn):
    monkeypatch.setenv("COLABMODELS_OFFLINE", "1")
    assert [i.version for i in cm.versions("MyDrive/models/net")] == [1, 2]
    assert cm.versions("MyDrive/models/net", offline=True)[0].metadata == {"n": 1}
    assert (cm.fetch("MyDrive/models/net@v2", progress=False) / "model.bin").read_bytes() == b"two"
    with pytest.raises(VersionError, match="no v7"):
        cm.fetch("MyDrive/models/net@v7", progress=False)
    assert not [w for w in recwarn if "stale" in str(w.message)]  # offline is no surprise


def test_versions_of_missing_path_or_file_is_not_an_empty_list(drive_env):
    drive_env.put("MyDrive/models/a-file.bin", b"x")
    drive_env.mkdir("MyDrive/models/empty")
    with pytest.raises(NotFoundError, match="does not exist"):
        cm.versions("MyDrive/models/nothing-here")
    with pytest.raises(RefError, match="not a model folder"):
        cm.versions("MyDrive/models/a-file.bin")
    assert cm.versions("MyDrive/models/empty") == []


def test_local_versions_of_missing_path_or_file(isolated, tmp_path):
    (tmp_path / "f.bin").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError):
        cm.versions(tmp_path / "missing")
    with pytest.raises(RefError, match="not a model folder"):
        cm.versions(tmp_path / "f.bin")
    assert cm.versions(tmp_path / "empty") == []
