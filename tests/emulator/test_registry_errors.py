"""Issue 11/12: bad version tags, damaged manifests and cache metadata, metadata JSON cannot
hold, and public folder links read only colabmodels errors (never a raw ValueError/KeyError/
IndexError/TypeError/AttributeError)."""

from __future__ import annotations

import json

import pytest

import colabmodels as cm
from colabmodels.errors import (
    AuthError,
    ColabModelsError,
    IntegrityError,
    MetadataError,
    RefError,
    UnknownFormatError,
    VersionError,
)
from colabmodels.refs import Ref

RAW = (KeyError, IndexError, AttributeError)


def _manifest(**over):
    data = {"manifest_schema": 1, "version": 1, "framework": "torch", "format": "safetensors",
            "model_path": "model.bin", "files": [{"path": "model.bin", "size": 1}],
            "created": "2026-01-01T00:00:00+00:00", "metadata": {}}
    data.update(over)
    return json.dumps(data).encode()


@pytest.mark.parametrize("tag", ["vQ", "v", "v-1", "v0", "latest!", "vv2"])
def test_bad_version_tag_on_a_ref_is_a_ref_error(drive_env, tag):
    drive_env.put("MyDrive/models/m/v1/model.bin", b"x")
    drive_env.put("MyDrive/models/m/v1/manifest.json", _manifest())
    with pytest.raises(RefError):
        cm.fetch(Ref("drive", path="MyDrive/models/m", version=tag), progress=False)


def test_version_that_does_not_exist(drive_env, monkeypatch):
    drive_env.put("MyDrive/models/m/v1/model.bin", b"x")
    drive_env.put("MyDrive/models/m/v1/manifest.json", _manifest())
    with pytest.raises(VersionError, match="no v999"):
        cm.fetch("MyDrive/models/m@v999", progress=False)
    monkeypatch.setenv("COLABMODELS_OFFLINE", "1")
    with pytest.raises(VersionError, match="no v999"):
        cm.load_model("MyDrive/models/m@v999", progress=False)


def test_save_model_with_a_bad_version_number(drive_env):
    with pytest.raises(ColabModelsError) as info:
        cm.save_model({"w": 1}, "MyDrive/models/bad", version="vQ", progress=False)
    assert not isinstance(info.value, RAW)


@pytest.mark.parametrize(("body", "error"), [
    (b"[1, 2, 3]", VersionError),  # not an object: the version is skipped, so none exists
    (b"{not json", VersionError),
    (_manifest(model_path=None, files=[]), IntegrityError),
    (_manifest(model_path=None, files="model.bin"), IntegrityError),
    (_manifest(model_path=None, files=[["model.bin"]]), IntegrityError),
    (_manifest(model_path=7, files=[{"size": 1}]), IntegrityError),
    (_manifest(model_path="../../../etc/passwd"), RefError),
    (_manifest(manifest_schema=99), UnknownFormatError),
    (_manifest(metadata=[1], framework=3, files={"a": 1}, model_path="model.bin", arch=["x"]), None),
])
def test_damaged_manifest_gives_a_clear_error(drive_env, body, error):
    drive_env.put("MyDrive/models/dmg/v1/model.bin", b"\x00" * 16)
    drive_env.put("MyDrive/models/dmg/v1/manifest.json", body)
    infos = cm.versions("MyDrive/models/dmg")  # never raises for a damaged manifest
    assert all(isinstance(i.metadata, dict) and isinstance(i.files, list) for i in infos)
    with pytest.raises(ColabModelsError) as info:
        cm.load_model("MyDrive/models/dmg@v1", progress=False)
    assert not isinstance(info.value, RAW), repr(info.value)
    if error is not None:
        assert isinstance(info.value, error), repr(info.value)


def test_damaged_cache_metadata_is_refetched_and_reported(drive_env):
    fid = drive_env.put("MyDrive/c/a.bin", b"cached")
    path = cm.fetch(fid, progress=False)
    meta = path.parent.parent / "meta.json"
    for damage in ("{broken", "[]", json.dumps({"key": 1}), json.dumps(
            {**json.loads(meta.read_text()), "files": [{"path": "../../x", "size": "big"}]})):
        meta.write_text(damage)
        assert isinstance(cm.cache.entries(), list)  # skipped, no raw error
        assert cm.fetch(fid, progress=False).read_bytes() == b"cached"  # fetched again
        meta = cm.fetch(fid, progress=False).parent.parent / "meta.json"
    meta.write_text("{broken")
    bad = cm.cache.verify()
    assert len(bad) == 1 and "metadata" in bad[0].extra["problem"]
    assert cm.cache.verify() == []
    alias_dir = drive_env.key_path.parent / "cache" / "aliases"
    for alias in alias_dir.iterdir():
        alias.write_text("[1, 2]")
    assert cm.fetch(fid, progress=False).read_bytes() == b"cached"


def test_metadata_json_cannot_hold_is_a_clear_error_before_any_upload(drive_env):
    drive_env.reset_requests()
    with pytest.raises(MetadataError, match="metadata") as info:
        cm.save_model({"w": 1}, "MyDrive/models/meta", metadata={"ok": 1, "bad": object()},
                      progress=False)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert "['bad']" in str(info.value)
    assert not [r for r in drive_env.requests if r.method != "GET"]
    with pytest.raises(MetadataError, match="keys must be strings"):
        cm.save_model({"w": 1}, "MyDrive/models/meta", metadata={("a", "b"): 1}, progress=False)
    with pytest.raises(MetadataError):
        cm.save_model({"w": 1}, "MyDrive/models/meta", metadata=["not", "a", "dict"],
                      progress=False)


def test_public_folder_link_without_sign_in_says_sign_in_is_needed(isolated, fake_drive, monkeypatch):
    folder = fake_drive.mkdir("MyDrive/open-folder", public=True)
    fake_drive.put("MyDrive/open-folder/a.bin", b"a", public=True)
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fake_drive.url)
    with pytest.raises(AuthError, match="listing a folder needs sign-in") as info:
        cm.fetch(f"https://drive.google.com/drive/folders/{folder}?usp=sharing", progress=False)
    assert "does not exist" not in str(info.value)
