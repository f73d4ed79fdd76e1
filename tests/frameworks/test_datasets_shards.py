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


def _extracted(tmp_path, originals):
    root = tmp_path / "extracted"
    for rel, data in originals.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _shard_entries():
    from colabmodels.cachestore import cache

    return [e for e in cache.entries() if e.identity.startswith("shard:")]


def test_cold_then_warm_equals_keras_on_the_extracted_folder(packed, tmp_path):
    """shuffle=False and shuffled: Keras' images, order and labels; the shards stay in the
    cache as one file each, so a second epoch and a new reader send no media request."""
    import colabmodels as cm
    from tests.frameworks.test_datasets_keras import _assert_same

    ref, index, _, originals, fd = packed
    root = _extracted(tmp_path, originals)
    for kwargs in (dict(shuffle=False), dict(seed=5, label_mode="categorical",
                                             interpolation="nearest", crop_to_aspect_ratio=True)):
        kwargs = dict(kwargs, image_size=(9, 7), batch_size=5, verbose=False)
        expected = keras.utils.image_dataset_from_directory(root, **kwargs)
        got = cm.image_dataset_from_drive(ref, **kwargs)
        assert got.class_names == expected.class_names
        assert _assert_same(expected, got) > 2
        fd.reset_requests()
        assert _assert_same(expected, got) > 2  # second epoch: local
        again = cm.image_dataset_from_drive(ref, **kwargs)  # a new reader: the cache entries
        assert _assert_same(keras.utils.image_dataset_from_directory(root, **kwargs), again) > 2
        assert not [r for r in fd.requests if (r.query or {}).get("alt") == "media"]
    entries = _shard_entries()
    assert sorted(e.name for e in entries) == sorted(s["name"] for s in index["shards"])
    assert all(e.kind == "file" for e in entries)


def test_interrupted_cold_read_leaves_no_shard_entry_and_resumes(packed):
    import time

    import colabmodels as cm
    from colabmodels.datasets.listing import resolve_folder
    from colabmodels.datasets.shards import open_packed

    ref, index, _, _, fd = packed
    fd.bandwidth_bytes_per_s = 4000  # a slow connection: a full shard takes seconds
    backend, root = resolve_folder(ref)
    packed_ds = open_packed(backend, root)
    files, _, _ = packed_ds.select("inferred", None, False, None)
    feeder = packed_ds.feeder(files, on_error="raise", skipped=[])
    streams = list(feeder._streams.values())
    time.sleep(0.5)
    feeder.close()  # what an interrupt does: nobody reads on, the downloads stop
    deadline = time.monotonic() + 30  # a part in flight stops at its next block
    while any(s._error is None and not s.complete for s in streams) and time.monotonic() < deadline:
        time.sleep(0.05)
    done = sorted(s.stat.name for s in streams if s.complete)
    assert all(s.complete or s._error is not None for s in streams)  # none left running
    assert len(done) < len(streams)  # the slow ones were stopped mid-way
    assert sorted(e.name for e in _shard_entries()) == done  # only whole shards are entries
    fd.bandwidth_bytes_per_s = None
    ds = cm.image_dataset_from_drive(ref, shuffle=False, image_size=(8, 8), batch_size=4,
                                     verbose=False)
    assert sum(int(x.shape[0]) for x, _ in ds) == len(index["samples"])
    assert len(_shard_entries()) == len(index["shards"])


def _damage_first_member(fd, ref, index):
    """Overwrite the first sample's bytes in its shard (same size: the index still fits)."""
    sample = index["samples"][0]
    name = index["shards"][sample["shard"]]["name"]
    tar = bytearray(fd.get(f"{ref.path}/{name}"))
    off, size = sample["offset"], sample["size"]
    tar[off:off + size] = b"\x00" * size
    fd.put(f"{ref.path}/{name}", bytes(tar), replace=True)
    return sample


def test_broken_member_raises_naming_it_or_is_skipped(packed):
    import colabmodels as cm

    ref, index, _, _, fd = packed
    sample = _damage_first_member(fd, ref, index)
    kwargs = dict(shuffle=False, image_size=(8, 8), batch_size=4, verbose=False)
    # TensorFlow hands the reader's BrokenImageError on as its own error, message kept
    with pytest.raises(Exception, match=rf"BrokenImageError: MyDrive/ds/{sample['path']}: not a readable"):
        for _ in cm.image_dataset_from_drive(ref, **kwargs):
            pass
    ds = cm.image_dataset_from_drive(ref, on_error="skip", **kwargs)
    seen = sum(int(x.shape[0]) for x, _ in ds)
    assert seen == len(index["samples"]) - 1
    assert ds.skipped == [f"{index['source']}/{sample['path']}"]


def test_index_without_offsets_reads_the_tar_headers(packed, tmp_path):
    """Packs made before offsets were recorded: the shard's headers say where members are."""
    import colabmodels as cm
    from tests.frameworks.test_datasets_keras import _assert_same

    ref, index, _, originals, fd = packed
    for s in index["samples"]:
        s["offset"] = 0
    fd.put(f"{ref.path}/colabmodels-dataset.json", json.dumps(index).encode(), replace=True)
    kwargs = dict(shuffle=False, image_size=(8, 8), batch_size=4, verbose=False)
    expected = keras.utils.image_dataset_from_directory(_extracted(tmp_path, originals), **kwargs)
    assert _assert_same(expected, cm.image_dataset_from_drive(ref, **kwargs)) > 2


def test_pack_records_each_members_data_offset(packed):
    _, index, local, originals, _ = packed
    for s in index["samples"]:
        tar = (local / index["shards"][s["shard"]]["name"]).read_bytes()
        assert tar[s["offset"]:s["offset"] + s["size"]] == originals[s["path"]]


def test_interrupt_stops_a_waiting_reader_then_reading_again_resumes(packed):
    import threading
    import time

    from colabmodels.datasets.feeder import FetchStopped
    from colabmodels.datasets.listing import resolve_folder
    from colabmodels.datasets.shards import open_packed

    ref, index, _, originals, fd = packed
    fd.latency_ms = 1500  # every request waits: the reader is still waiting at the interrupt
    backend, root = resolve_folder(ref)
    packed_ds = open_packed(backend, root)
    files, _, _ = packed_ds.select("inferred", None, False, None)
    feeder = packed_ds.feeder(files, on_error="raise", skipped=[])
    assert feeder.pending()
    errors: list[BaseException] = []

    def read_last() -> None:
        try:
            feeder.member_bytes(len(files) - 1)
        except BaseException as e:
            errors.append(e)

    reader = threading.Thread(target=read_last)
    reader.start()
    time.sleep(0.3)
    feeder.interrupt()  # what the interrupt watch does on Ctrl-C
    reader.join(timeout=5)  # told at once, not when the downloads end
    assert not reader.is_alive()
    assert errors and isinstance(errors[0], FetchStopped)
    fd.latency_ms = 0
    time.sleep(1.1)  # the interrupted readers' quiet time
    by_member = {(s["shard"], s["member"]): s["path"] for s in index["samples"]}
    got = [feeder.member_bytes(i) for i in range(len(files))]
    assert got == [originals[by_member[(f.info["shard"], f.info["member"])]] for f in files]
    assert not feeder.pending()
    feeder.close()
