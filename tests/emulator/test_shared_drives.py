"""Issue 14: the session's ``Shareddrives/NAME/...`` paths end to end (cm.fetch, cm.load_model, cm.save_model).

The shared drive lives in the Drive emulator; colabmodels finds it with
``drives.list`` and walks it with ``supportsAllDrives``/``includeItemsFromAllDrives``.
"""

from __future__ import annotations

import json
import struct

import pytest

import colabmodels as cm
from colabmodels.errors import NotFoundError

pytestmark = pytest.mark.emulator


def safetensors(value: float) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + struct.pack("<f", value)


def test_fetch_a_file_by_its_shared_drive_path(drive_env):
    fid = drive_env.put("Shareddrives/Team/models/a.bin", b"hello from the team drive")
    drive_env.put("MyDrive/models/a.bin", b"a different file in My Drive")

    path = cm.fetch("Shareddrives/Team/models/a.bin", progress=False)

    assert path.read_bytes() == b"hello from the team drive"
    drives_calls = [r for r in drive_env.requests if r.path == "/drive/v2/drives"]
    assert drives_calls and all(r.status == 200 for r in drives_calls)
    downloads = [r for r in drive_env.requests if r.query.get("alt") == "media"]
    assert downloads and all(fid in r.path and r.query.get("supportsAllDrives") == "true" for r in downloads)


def test_the_alias_spelling_and_a_missing_drive(drive_env):
    drive_env.put("Shareddrives/Team/x.bin", b"x")
    assert cm.fetch("/content/drive/Shareddrives/Team/x.bin", progress=False).read_bytes() == b"x"
    with pytest.raises(NotFoundError, match="Nope"):
        cm.fetch("Shareddrives/Nope/x.bin", progress=False)


def test_a_drive_the_user_is_not_a_member_of_is_not_found(drive_env):
    drive_env.add_user("bob")
    drive_env.add_shared_drive("Private", creator="bob")
    drive_env.put("Shareddrives/Private/secret.bin", b"s", owner="bob")
    with pytest.raises(NotFoundError):
        cm.fetch("Shareddrives/Private/secret.bin", progress=False)


def test_load_and_save_models_in_a_shared_drive(drive_env):
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    drive_env.add_shared_drive("Lab", members={"bob": "reader"})
    drive_env.put("Shareddrives/Lab/models/w.safetensors", safetensors(2.5))

    state = cm.load_model("Shareddrives/Lab/models/w.safetensors", progress=False)
    assert float(state["w"][0]) == 2.5

    info = cm.save_model({"w": state["w"] * 2}, "Shareddrives/Lab/saved/net", progress=False)
    assert info.ref == "Shareddrives/Lab/saved/net@v1"
    saved = [f for f in drive_env.store.snapshot() if f.title.endswith(".safetensors") and f.drive_id]
    assert len(saved) == 2  # the original and the new version, both inside the drive

    again = cm.load_model("Shareddrives/Lab/saved/net@latest", progress=False)
    assert float(again["w"][0]) == 5.0
