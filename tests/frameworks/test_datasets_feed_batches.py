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
