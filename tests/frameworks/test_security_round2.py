"""Issue 26 (hardening, round two) where images are decoded: a shard index cannot make a dataset
read files outside its cache entry, and decompression bombs are skipped or named like any
other broken image."""

from __future__ import annotations

import io
import json
import uuid

import numpy as np
import pytest

from colabmodels.errors import IntegrityError

pytest.importorskip("PIL")


def _png(size: tuple[int, int], seed: int = 0) -> bytes:
    from PIL import Image

    arr = np.random.RandomState(seed).randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def fake_drive():
    """One emulator for the module (each test writes its own folder)."""
    from colabmodels.testing import FakeDrive

    with FakeDrive() as fd:
        yield fd


# -- a shard index names only members of its own shards -------------------------------------

@pytest.fixture
def packed_small(drive_env):
    import colabmodels as cm

    folder = f"MyDrive/packed-{uuid.uuid4().hex[:8]}"
    for i in range(2):
        drive_env.put(f"{folder}/a/{i}.png", _png((8, 8), i))
        drive_env.put(f"{folder}/b/{i}.png", _png((8, 8), 10 + i))
    ref = cm.pack(folder, progress=False)
    return drive_env, ref


@pytest.mark.parametrize("member", ["ABSOLUTE", "../../../../../../outside.png", "x/../../y.png"])
def test_a_shard_index_cannot_point_outside_the_cache_entry(packed_small, tmp_path, member):
    pytest.importorskip("tensorflow")
    import colabmodels as cm

    fd, ref = packed_small
    secret = tmp_path / "outside.png"  # a local image of the victim's
    secret.write_bytes(_png((8, 8), 99))
    index_path = f"{ref.path}/colabmodels-dataset.json"
    index = json.loads(fd.get(index_path))
    index["samples"][0]["member"] = str(secret) if member == "ABSOLUTE" else member
    fd.put(index_path, json.dumps(index).encode(), replace=True)

    with pytest.raises(IntegrityError) as info:
        ds = cm.image_dataset_from_drive(ref, image_size=(8, 8), batch_size=4, shuffle=False,
                                         verbose=False)
        for _ in ds:
            pass
    message = str(info.value)
    assert "colabmodels-dataset.json" in message and "pack the dataset again" in message.lower()
