"""Images handed to TensorFlow as encoded bytes, decoded in its parallel map as Keras decodes files.

Packed shards (``.shards``) and zip members (``.zipped``) are parts of bigger files: rather
than writing each image to a file of its own for ``tf.io.read_file`` to open again, their readers
give the encoded bytes of a batch of elements in one Python call (``FEED_BATCH`` indices at
a time, ``FEED_CALLS`` such calls in flight, each waiting for its bytes while others run)
and TensorFlow decodes them in a parallel map (``decode_calls`` at once) with the ops Keras'
``image_dataset_from_directory`` runs on a file's contents (``decode_image``, then ``resize`` /
``smart_resize`` / ``resize_with_pad``): the same pixels, so downloading, parsing and decoding
overlap.

``bytes_problem`` is the reader's cheap check of one image's bytes (a decompression bomb,
a truncated or unreadable image), the same verdict ``.feeder.image_problem`` gives a file.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from typing import Any

from .feeder import BrokenImageError, pil_problem, stand_ins_when_stopped
from .pixels import bomb_message, declared_size_of_bytes, markers_complete, pixel_limit

logger = logging.getLogger(__name__)

FEED_BATCH = 16
"""Elements one Python call serves (their bytes here; their cache paths on a cold cache in
``image_dataset``, which shares these two)."""
FEED_CALLS = 16
"""Such calls in flight at once (each waits for its batch while others proceed)."""



def decode_calls() -> int:
    """How many images are decoded at once after a Python-function map: one per core this
    process may run on (``without_autotune`` says why not ``tf.data.AUTOTUNE``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


def without_autotune(ds: Any) -> Any:
    """``ds`` with tf.data's autotuning off (its options, so they reach the datasets made
    from it; ``with_options`` turns it back on).

    With autotuning on, a pipeline with a ``numpy_function`` map ended about one epoch in two
    with a stall of about 0.6 s after its last batch, in the iterator's clean-up: measured
    here over packed shards, the epoch's last batch at 1.1 s and the loop's end at 1.7 s,
    every Python thread idle meanwhile. With it off: no stall in 12 epochs out of 12, and the
    same time to the last batch. The parallel maps have fixed widths instead (``FEED_CALLS``,
    ``decode_calls``).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


ReadBatch = Callable[[Any], tuple[Any, Any]]
"""``read(indices) -> (bytes per index as an object array, readable per index as bools)``."""


def decode_image_bytes(data: Any, image_size: tuple[int, int], num_channels: int,
                       interpolation: str, data_format: str, crop_to_aspect_ratio: bool = False,
                       pad_to_aspect_ratio: bool = False) -> Any:
    """One image's encoded bytes (a scalar ``tf.string``) to the tensor Keras' loader makes of
    the same bytes read from a file (same ops, same order, same shapes)."""
    import tensorflow as tf

    img = tf.image.decode_image(data, channels=num_channels, expand_animations=False)
    if crop_to_aspect_ratio:
        from keras.src.backend import tensorflow as tf_backend
        from keras.src.utils import image_utils

        if data_format == "channels_first":
            img = tf.transpose(img, (2, 0, 1))
        img = image_utils.smart_resize(img, image_size, interpolation=interpolation,
                                       data_format=data_format, backend_module=tf_backend)
    elif pad_to_aspect_ratio:
        img = tf.image.resize_with_pad(img, image_size[0], image_size[1], method=interpolation)
        if data_format == "channels_first":
            img = tf.transpose(img, (2, 0, 1))
    else:
        img = tf.image.resize(img, image_size, method=interpolation)
        if data_format == "channels_first":
            img = tf.transpose(img, (2, 0, 1))
    if data_format == "channels_last":
        img.set_shape((image_size[0], image_size[1], num_channels))
    else:
        img.set_shape((num_channels, image_size[0], image_size[1]))
    return img


def bytes_to_dataset(n: int, labels: Any, read: ReadBatch, *, image_size: tuple[int, int],
                     num_channels: int, label_mode: str | None, num_classes: int,
                     interpolation: str, data_format: str, crop_to_aspect_ratio: bool,
                     pad_to_aspect_ratio: bool, on_error: str, shuffle: bool = False,
                     shuffle_buffer_size: int | None = None, seed: int | None = None,
                     checked: bool = False) -> Any:
    """Keras' ``paths_and_labels_to_dataset`` element stream over ``n`` images given as bytes.

    The labels are encoded by Keras' ``labels_to_dataset_tf`` and shuffled with the same
    buffer and seed as Keras shuffles paths (so element ``k`` is the image Keras would give
    at ``k``); ``read`` is called with ``FEED_BATCH`` indices at a time (a batch the
    feeder was stopped for gets stand-in images: ``.feeder.stand_ins_when_stopped``). With
    ``on_error="skip"``, elements ``read`` marks unreadable are left out (the length becomes
    unknown, unless ``checked``: every element was found readable up front); otherwise the
    length is asserted to be ``n``.
    """
    import tensorflow as tf
    from keras.src.utils import dataset_utils

    ds = tf.data.Dataset.range(n)
    if label_mode:
        ds = tf.data.Dataset.zip((ds, dataset_utils.labels_to_dataset_tf(labels, label_mode,
                                                                         num_classes)))
    if shuffle:
        ds = ds.shuffle(buffer_size=shuffle_buffer_size or 1024, seed=seed)

    # Plain TensorFlow ops with no Python control flow: no autograph conversion (which would
    # parse and rewrite these functions and Keras' resize helpers, ~0.5 s per dataset).
    plain = tf.autograph.experimental.do_not_convert

    read = stand_ins_when_stopped(read, as_path=False)  # Ctrl-C: stand-ins, not an error

    @plain
    def fetch(i: Any) -> tuple[Any, Any]:
        data, ok = tf.numpy_function(read, [i], (tf.string, tf.bool), stateful=True)
        data.set_shape(i.shape)
        ok.set_shape(i.shape)
        return data, ok

    ds = ds.batch(FEED_BATCH)
    if label_mode:
        ds = ds.map(plain(lambda i, y: (*fetch(i), y)), num_parallel_calls=FEED_CALLS)
    else:
        ds = ds.map(fetch, num_parallel_calls=FEED_CALLS)
    ds = ds.unbatch()
    args = (image_size, num_channels, interpolation, data_format, crop_to_aspect_ratio,
            pad_to_aspect_ratio)
    if on_error == "skip":
        ds = ds.filter(plain(lambda data, ok, *y: ok))
    if on_error != "skip" or checked:
        ds = ds.apply(tf.data.experimental.assert_cardinality(n))
    if label_mode:
        ds = ds.map(plain(lambda data, ok, y: (decode_image_bytes(data, *args), y)),
                    num_parallel_calls=decode_calls())
    else:
        ds = ds.map(plain(lambda data, ok: decode_image_bytes(data, *args)),
                    num_parallel_calls=decode_calls())
    return without_autotune(ds)


def batch_reader(get: Callable[[int], bytes | None]) -> ReadBatch:
    """A ``ReadBatch`` calling ``get(index)`` (None: left out) for each index of a batch."""
    import numpy as np

    def read(indices: Any) -> tuple[Any, Any]:
        got = [get(int(i)) for i in indices]
        return (np.array([b if b is not None else b"" for b in got], dtype=object),
                np.array([b is not None for b in got], dtype=bool))

    return read


# -- checks on bytes -----------------------------------------------------------------------------

def bytes_problem(data: bytes) -> str | None:
    """Why these bytes are not a readable image, or None: a declared size past the pixel
    limit (a decompression bomb), else start and end markers, else PIL's check."""
    size = declared_size_of_bytes(data)
    limit = pixel_limit()
    if size is not None and limit is not None and size[0] * size[1] > limit:
        return bomb_message(size[0] * size[1], limit, f"{size[0]}x{size[1]}")
    if markers_complete(data[:16], data[-4096:]):
        return None
    return pil_problem(io.BytesIO(data))


def checked(data: bytes, where: str, on_error: str, skipped: list[str]) -> bytes | None:
    """``data`` when readable; else None (``on_error="skip"``, noted in ``skipped``) or
    ``BrokenImageError`` naming ``where``."""
    problem = bytes_problem(data)
    if problem is None:
        return data
    message = f"{where}: {problem}"
    if on_error == "skip":
        logger.warning("skipped %s", message)
        skipped.append(where)
        return None
    raise BrokenImageError(f'{message}. Replace it, or pass on_error="skip" to leave it out.')
