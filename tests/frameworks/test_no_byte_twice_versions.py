"""Issue 25: ``@v2`` whose weights equal ``@v1``: saved by Drive-side copy, loaded with 0 media
bytes for the weights (counted in the emulator's request log)."""

from __future__ import annotations

import pytest

import colabmodels as cm

torch = pytest.importorskip("torch")


def test_v2_equal_to_v1_uploads_and_downloads_no_weights(drive_env):
    state = {"w": torch.arange(200_000, dtype=torch.float32), "b": torch.ones(10)}
    cm.save_model(state, "MyDrive/models/twice", progress=False)
    mark = len(drive_env.requests)
    info = cm.save_model(state, "MyDrive/models/twice", progress=False)
    assert info.version == 2
    [weights] = info.files
    assert weights["size"] > 700_000
    up = sum(r.request_bytes for r in drive_env.requests[mark:] if r.path.startswith("/upload/"))
    assert up < weights["size"] / 10, f"{up} bytes uploaded for an unchanged model"
    assert any(r.path.endswith("/copy") for r in drive_env.requests[mark:])

    v1 = cm.load_model("MyDrive/models/twice@v1", progress=False)
    mark = len(drive_env.requests)
    v2 = cm.load_model("MyDrive/models/twice@v2", progress=False)
    media = [r for r in drive_env.requests[mark:] if r.query.get("alt") == "media"]
    assert sum(r.bytes for r in media) < weights["size"] / 10, "v2's weights were downloaded"
    torch.testing.assert_close(v2["w"], v1["w"])
    torch.testing.assert_close(v2["w"], state["w"])
