"""cm.pack writes WebDataset shards + a JSON index to Drive; our reader, webdataset and Ray Data
read them unchanged, and a packed dataset yields what the original folder yields."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_datasets_keras import awkward_dataset

keras = pytest.importorskip("keras")


@pytest.fixture
def packed(drive_env, tmp_path):
    import colabmodels as cm

    fd = drive_env
    originals = awkward_dataset()
    for rel, data in originals.items():
        fd.put(f"MyDrive/ds/{rel}", data)
    ref = cm.pack("MyDrive/ds", validation_split=0.25, seed=3, shard_bytes=16_000, progress=False)
    index = json.loads(fd.get(f"{ref.path}/colabmodels-dataset.json"))
    local = tmp_path / "shards"
    local.mkdir()
    for shard in index["shards"]:
        (local / shard["name"]).write_bytes(fd.get(f"{ref.path}/{shard['name']}"))
    return ref, index, local, originals, fd


def test_pack_layout_and_index(packed):
    ref, index, _, _, _ = packed
    assert ref.path == "MyDrive/ds_shards"
    names = [s["name"] for s in index["shards"]]
    assert names[0] == "train-000000.tar" and "validation-000000.tar" in names
    assert len(names) > 2  # small shard size: several shards per subset
    assert index["class_names"] == ["birds", "cats", "dogs"]
    assert sum(index["counts"].values()) == len(index["samples"])
    assert index["split"] == {"validation_split": 0.25, "seed": 3,
                              "training": len(index["samples"]) - index["split"]["validation"],
                              "validation": int(0.25 * len(index["samples"]))}
    for s in index["samples"]:
        assert s["member"] == f"{s['key']}.{s['ext']}" and "." not in s["key"]


def _compare(a, b) -> None:
    assert a.file_paths == b.file_paths and a.class_names == b.class_names
    for (x1, y1), (x2, y2) in zip(a, b, strict=True):
        np.testing.assert_array_equal(x1.numpy(), x2.numpy())
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())


@pytest.mark.parametrize("kwargs", [
    dict(seed=3, validation_split=0.25, subset="both"),          # the split that was packed
    dict(seed=9, validation_split=0.4, subset="both"),           # another split
    dict(seed=1, class_names=["dogs", "birds"], label_mode="categorical"),
    dict(shuffle=False),
])
def test_packed_reads_like_the_original_folder(packed, kwargs):
    import colabmodels as cm

    ref, _, _, _, fd = packed
    kwargs = dict(kwargs, image_size=(8, 8), batch_size=4, verbose=False)
    original = cm.image_dataset_from_drive("MyDrive/ds", **kwargs)
    fd.reset_requests()
    from_shards = cm.image_dataset_from_drive(ref, **kwargs)
    pairs = zip(original, from_shards, strict=True) if isinstance(original, list) else [(original, from_shards)]
    for a, b in pairs:
        _compare(a, b)
    media = [r for r in fd.requests if (r.query or {}).get("alt") == "media"]
    shard_ids = {fd.resolve(f"{ref.path}/{name}") for name in ("train-000000.tar",)}
    assert media and all(r.range for r in media)  # ranged reads of whole shards
    assert shard_ids <= {r.path.rsplit("/", 1)[-1] for r in media}
    assert len(media) <= len(json.loads(fd.get(f"{ref.path}/colabmodels-dataset.json"))["shards"]) + 1


def test_webdataset_reads_our_shards(packed):
    wds = pytest.importorskip("webdataset")
    _, index, local, originals, _ = packed
    urls = [str(local / s["name"]) for s in index["shards"]]
    by_key = {s["key"]: s for s in index["samples"]}
    seen = 0
    for sample in wds.WebDataset(urls, shardshuffle=False):
        meta = by_key[sample["__key__"]]
        assert sample[meta["ext"]] == originals[meta["path"]]
        assert int(sample["cls"]) == meta["label"]
        seen += 1
    assert seen == len(index["samples"])
    decoded = next(iter(wds.WebDataset(urls[:1], shardshuffle=False).decode("rgb8").to_tuple("jpg;png;jpeg;bmp;gif", "cls")))
    assert decoded[0].ndim == 3 and isinstance(decoded[1], int)


def test_ray_data_reads_our_shards(packed):
    ray = pytest.importorskip("ray")
    _, index, local, originals, _ = packed
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        ds = ray.data.read_webdataset([str(local / s["name"]) for s in index["shards"]],
                                      decoder=None)
        rows = ds.take_all()
    finally:
        ray.shutdown()
    assert len(rows) == len(index["samples"])
    by_key = {s["key"]: s for s in index["samples"]}
    for row in rows:
        meta = by_key[row["__key__"]]
        assert int(row["cls"]) == meta["label"]
        assert bytes(row[meta["ext"]]) == originals[meta["path"]]
