"""Issue 26 (hardening, round two) where images are decoded: a shard index cannot make a dataset
read files outside its cache entry, and decompression bombs are skipped or named like any
other broken image; and the first hour: versions offline right after a save."""

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


@pytest.mark.parametrize("member", ["ABSOLUTE", "../../../../../../outside.png", "x/../../y.png",
                                    "LABEL", "SHARD", "SOURCE"])
def test_a_shard_index_cannot_point_outside_the_cache_entry(packed_small, tmp_path, member):
    pytest.importorskip("tensorflow")
    import colabmodels as cm

    fd, ref = packed_small
    secret = tmp_path / "outside.png"  # a local image of the victim's
    secret.write_bytes(_png((8, 8), 99))
    index_path = f"{ref.path}/colabmodels-dataset.json"
    index = json.loads(fd.get(index_path))
    if member == "LABEL":  # damaged rather than hostile: still our error, never an IndexError
        index["samples"][0]["label"] = 99
    elif member == "SHARD":
        index["samples"][0]["shard"] = 7
    elif member == "SOURCE":
        index["source"] = 5
    else:
        index["samples"][0]["member"] = str(secret) if member == "ABSOLUTE" else member
    fd.put(index_path, json.dumps(index).encode(), replace=True)

    with pytest.raises(IntegrityError) as info:
        ds = cm.image_dataset_from_drive(ref, image_size=(8, 8), batch_size=4, shuffle=False,
                                         verbose=False)
        for _ in ds:
            pass
    message = str(info.value)
    assert "colabmodels-dataset.json" in message and "pack the dataset again" in message.lower()


# -- decompression bombs ---------------------------------------------------------------------

BOMB_LIMIT = 10_000
"""PIL's ``MAX_IMAGE_PIXELS`` in these tests: PIL (and colabmodels, which follows it) refuses
images over twice that, so a 200x200 image stands in for a real bomb without allocating one."""


def _image(fmt: str, size: tuple[int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, "blue").save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def bombs(drive_env, monkeypatch):
    """A folder with two good images and two decompression bombs (PNG, BMP)."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", BOMB_LIMIT)
    folder = f"MyDrive/bombs-{uuid.uuid4().hex[:8]}"
    drive_env.put(f"{folder}/a/good.png", _png((8, 8), 1))
    drive_env.put(f"{folder}/b/good.png", _png((8, 8), 2))
    drive_env.put(f"{folder}/a/bomb.png", _image("PNG", (200, 200)))
    drive_env.put(f"{folder}/b/bomb.bmp", _image("BMP", (200, 200)))
    return folder


def test_pack_skips_and_names_decompression_bombs(bombs):
    import colabmodels as cm
    from colabmodels.datasets.feeder import BrokenImageError

    with pytest.raises(BrokenImageError, match=r"bombs-\w+/a/bomb.png.*(pixels|bomb)"):
        cm.pack(bombs, dest=f"{bombs}_raise", progress=False)
    ref = cm.pack(bombs, on_error="skip", progress=False)
    from colabmodels.datasets.shards import INDEX_NAME
    from colabmodels.storage import backend_for

    backend = backend_for(ref)
    index = json.loads(b"".join(backend.open_range(ref.child(INDEX_NAME), 0, None)))
    assert sorted(index["skipped"]) == [f"{bombs}/a/bomb.png", f"{bombs}/b/bomb.bmp"]
    assert len(index["samples"]) == 2


def test_drive_image_folder_names_a_decompression_bomb(bombs):
    pytest.importorskip("torch")
    import colabmodels as cm
    from colabmodels.datasets.feeder import BrokenImageError

    folder = cm.DriveImageFolder(bombs, download="lazy")
    bad = next(i for i, (p, _) in enumerate(folder.samples) if p.endswith("bomb.bmp"))
    with pytest.raises(BrokenImageError, match=rf"{bombs}/b/bomb.bmp"):
        folder[bad]
    good = next(i for i, (p, _) in enumerate(folder.samples) if p.endswith("good.png"))
    assert folder[good][0].size == (8, 8)


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "cached-by-fetch"])
def test_tf_never_decodes_a_declared_huge_image(bombs, warm):
    pytest.importorskip("tensorflow")
    import colabmodels as cm

    if warm:  # in the cache already, fetched by a route that does not check images
        cm.fetch(bombs, progress=False)
    ds = cm.image_dataset_from_drive(bombs, image_size=(8, 8), batch_size=8, shuffle=False,
                                     on_error="skip", verbose=False)
    n = sum(int(x.shape[0]) for x, _ in ds)
    assert n == 2
    assert sorted(ds.skipped) == [f"{bombs}/a/bomb.png", f"{bombs}/b/bomb.bmp"]


def test_a_bomb_in_an_altered_shard_is_never_decoded(drive_env, monkeypatch):
    """Shards were checked when packed; one changed since (here: the limit was lowered after
    packing, as good as swapping a member) is still checked before TensorFlow decodes it."""
    pytest.importorskip("tensorflow")
    from PIL import Image

    import colabmodels as cm

    folder = f"MyDrive/shardbomb-{uuid.uuid4().hex[:8]}"
    drive_env.put(f"{folder}/a/good.png", _png((8, 8), 1))
    drive_env.put(f"{folder}/b/good.png", _png((8, 8), 2))
    drive_env.put(f"{folder}/b/big.png", _image("PNG", (200, 200)))
    ref = cm.pack(folder, progress=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", BOMB_LIMIT)
    ds = cm.image_dataset_from_drive(ref, image_size=(8, 8), batch_size=8, shuffle=False,
                                     on_error="skip", verbose=False)
    assert sum(int(x.shape[0]) for x, _ in ds) == 2
    assert ds.skipped == [f"{folder}/b/big.png"]


# -- the first hour: a save is remembered for offline use -------------------------------------

def test_versions_offline_right_after_a_save_in_an_earlier_process(drive_env):
    import subprocess
    import sys

    pytest.importorskip("torch")
    import colabmodels as cm

    dest = f"MyDrive/first-hour-{uuid.uuid4().hex[:8]}/net"
    code = ("import torch, colabmodels as cm; torch.manual_seed(0); "
            f"print(cm.save_model(torch.nn.Linear(2, 1), {dest!r}, progress=False).version)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "1"

    found = cm.versions(dest, offline=True)
    assert [i.version for i in found] == [1]
    assert found[0].tags == ["latest"] and found[0].manifest.get("framework") == "torch"
    online = cm.versions(dest, offline=False)
    assert [(i.version, i.manifest) for i in online] == [(i.version, i.manifest) for i in found]
