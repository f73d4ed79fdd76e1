"""Issue 25: on a cold cache the tf.data pipeline asks Python for files once per batch of
indices (``FEED_BATCH``), not once per element; the second epoch never leaves TensorFlow.
Counted (never timed): the feeder's batch calls, and the emulator's media requests."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

import colabmodels as cm
from colabmodels.datasets import image_dataset

tf = pytest.importorskip("tensorflow")


def _jpeg(rng: np.random.RandomState) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.randint(0, 255, (12, 14, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_cold_epoch_asks_python_once_per_batch_of_files(drive_env):
    rng = np.random.RandomState(7)
    n = 75
    for i in range(n):
        drive_env.put(f"MyDrive/feed/c{i % 3}/{i:03d}.jpg", _jpeg(rng))
    ds = cm.image_dataset_from_drive("MyDrive/feed", image_size=(8, 8), batch_size=10, seed=3,
                                     verbose=False)
    feeder = ds._colabmodels_feeder
    calls = []
    original = feeder.prefetch
    feeder.prefetch = lambda indices: (calls.append(len(indices)), original(indices))[1]
    images = [x.numpy() for x, _ in ds]
    seen = sum(len(x) for x in images)
    assert seen == n
    assert len(ds) == math.ceil(n / 10)  # the cardinality survives the batched look-ups
    # one Python call per FEED_BATCH indices (a smaller last one), never one per element
    assert len(calls) <= math.ceil(n / image_dataset.FEED_BATCH), calls
    assert sum(calls) == n

    mark = len(drive_env.requests)
    calls.clear()
    again = [x.numpy() for x, _ in ds]  # second epoch: every path is known in TensorFlow
    assert calls == []
    assert not [r for r in drive_env.requests[mark:] if r.query.get("alt") == "media"]
    assert sum(len(x) for x in again) == n


def _media(fd) -> list:
    return [r for r in fd.requests if r.query.get("alt") == "media"]


def test_a_cold_dataset_starts_fetching_while_it_is_made(drive_env):
    """The first files are fetched while TensorFlow builds the pipeline, before the first
    batch is asked for; the validation split of ``subset="both"`` waits for its turn. Each
    file is still fetched once."""
    import time

    rng = np.random.RandomState(8)
    n = 40
    for i in range(n):
        drive_env.put(f"MyDrive/early/c{i % 2}/{i:03d}.jpg", _jpeg(rng))
    drive_env.reset_requests()
    train, val = cm.image_dataset_from_drive("MyDrive/early", image_size=(8, 8), batch_size=8,
                                             seed=3, validation_split=0.25, subset="both",
                                             verbose=False)
    wanted = {f"/drive/v2/files/{drive_env.resolve(p)}" for p in train.file_paths}
    deadline = time.monotonic() + 30  # a hang guard, not a timing assertion
    while len(_media(drive_env)) < len(wanted) and time.monotonic() < deadline:
        time.sleep(0.02)
    early = {r.path for r in _media(drive_env)}
    assert early == wanted  # every training file, nothing of the validation split, no iteration
    assert sum(len(x) for x, _ in train) == len(wanted)
    assert sum(len(x) for x, _ in val) == n - len(wanted)
    assert len(_media(drive_env)) == n  # each file once


def test_pipelines_with_python_lookups_run_without_tf_autotuning(drive_env):
    """tf.data's autotuning made an epoch of such a pipeline end with a stall of about 0.6 s
    about one time in two (measured by the benchmarks, see ``member_bytes.without_autotune``):
    the cold dataset has it off and fixed map widths, and the Keras-only pipeline of a warm
    cache keeps Keras' own settings."""
    from colabmodels.datasets.member_bytes import decode_calls

    rng = np.random.RandomState(11)
    for i in range(12):
        drive_env.put(f"MyDrive/tune/c{i % 2}/{i:03d}.jpg", _jpeg(rng))
    cold = cm.image_dataset_from_drive("MyDrive/tune", image_size=(8, 8), batch_size=4, seed=1,
                                       verbose=False)
    assert cold.options().autotune.enabled is False
    assert decode_calls() >= 1
    assert sum(len(x) for x, _ in cold) == 12
    warm = cm.image_dataset_from_drive("MyDrive/tune", image_size=(8, 8), batch_size=4, seed=1,
                                       verbose=False)  # every file local now: Keras' pipeline
    assert warm._colabmodels_paths is None
    assert warm.options().autotune.enabled is not False


def test_a_shuffled_cold_dataset_fetches_its_first_batch_first(drive_env):
    """Files are fetched in the order the first epoch asks for them: the first batch of a
    shuffled dataset (random over a 256-element shuffle buffer) waits for its own 32 files,
    not for the first few hundred in list order. Each file is a solid grey PNG of its own
    level, so a batch's pixels say which files it holds."""
    from PIL import Image

    n = 200
    ids = {}
    for level in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (3, 3), (level, level, level)).save(buf, "PNG")
        ids[level] = drive_env.put(f"MyDrive/order/c{level % 2}/{level:03d}.png", buf.getvalue())
    drive_env.reset_requests()
    ds = cm.image_dataset_from_drive("MyDrive/order", image_size=(2, 2), batch_size=32, seed=5,
                                     verbose=False)
    first, _ = next(iter(ds))
    levels = {round(float(v)) for v in first.numpy()[:, 0, 0, 0]}
    assert len(levels) == 32
    # 64 requests run at once (FETCH_WORKERS): the first 64 to arrive were the first 64 asked
    fetched_first = [r.path.rsplit("/", 1)[-1] for r in _media(drive_env)[:64]]
    assert {ids[level] for level in levels} <= set(fetched_first)
    assert sum(len(x) for x, _ in ds) == n  # the rest of the epoch, each file once
    assert len(_media(drive_env)) == n
    feeder = ds._colabmodels_feeder
    with pytest.raises(RuntimeError, match="started"):  # the order is set before fetching
        feeder.fetch_in_order(range(n))
    with pytest.raises(ValueError, match="each index"):
        feeder.fetch_in_order([0] * n)


def test_a_warm_cache_skips_working_out_the_fetch_order(drive_env, monkeypatch):
    """The order costs a first tf.data run (about 50 ms in a new kernel): only a dataset with
    files to fetch works it out, never one whose files are all in the cache."""
    rng = np.random.RandomState(9)
    for i in range(6):
        drive_env.put(f"MyDrive/warmorder/c{i % 2}/{i:03d}.jpg", _jpeg(rng))
    calls = []
    original = image_dataset.first_epoch_order
    monkeypatch.setattr(image_dataset, "first_epoch_order",
                        lambda *a: (calls.append(a), original(*a))[1])
    cold = cm.image_dataset_from_drive("MyDrive/warmorder", image_size=(8, 8), batch_size=2,
                                       seed=1, verbose=False)
    assert calls == [(6, 16, 1)]  # the count, the shuffle buffer (8 x the batch) and the seed
    assert sum(len(x) for x, _ in cold) == 6
    warm = cm.image_dataset_from_drive("MyDrive/warmorder", image_size=(8, 8), batch_size=2,
                                       seed=1, verbose=False)
    assert sum(len(x) for x, _ in warm) == 6
    assert len(calls) == 1
