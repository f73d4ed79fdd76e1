"""Decoding without TensorFlow: PIL + numpy (+ ``keras.ops`` for Keras' resize rules)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from .feeder import BrokenImageError
from .pixels import bomb_problem


def pil_open(path: str, mode: str) -> Any:
    """The image at ``path`` converted the way Keras' PIL loader converts it.

    ``mode``: ``"grayscale"`` (8-, 16- and 32-bit grey kept), ``"rgb"`` or ``"rgba"``. Animated
    images give their first frame.

    Raises:
        BrokenImageError: the image declares more pixels than PIL allows (a decompression
            bomb); the caller adds the Drive path.
    """
    try:
        from PIL import Image
    except ImportError as e:
        raise MissingDependencyError(
            'decoding images needs Pillow: pip install "colabmodels[torch]" (or "colabmodels[tf]")'
        ) from e

    problem = bomb_problem(path)
    if problem:
        raise BrokenImageError(problem)
    try:
        img: Any = Image.open(path)
    except Image.DecompressionBombError as e:  # a format whose header pixels.py does not read
        raise BrokenImageError(f"a possible decompression bomb ({e})") from e
    img.load()
    if mode == "grayscale":
        if img.mode not in ("L", "I;16", "I"):
            img = img.convert("L")
    elif mode == "rgba":
        if img.mode != "RGBA":
            img = img.convert("RGBA")
    elif img.mode != "RGB":
        img = img.convert("RGB")
    return img


def keras_load(path: str, *, color_mode: str, image_size: tuple[int, int], interpolation: str,
               data_format: str, crop_to_aspect_ratio: bool,
               pad_to_aspect_ratio: bool) -> np.ndarray:
    """One image as float32 ``image_size`` pixels, resized by ``keras.ops.image.resize``.

    These are the rules of Keras' backend-neutral loader (its ``format="grain"`` path): PIL
    decodes, Keras resizes (with ``crop_to_aspect_ratio`` / ``pad_to_aspect_ratio``).
    """
    from keras import ops

    arr = np.asarray(pil_open(path, color_mode), dtype="float32")
    if arr.ndim == 2:
        arr = arr[..., None]
    if data_format == "channels_first":
        arr = arr.transpose(2, 0, 1)
    out = ops.image.resize(arr, size=image_size, interpolation=interpolation,
                           crop_to_aspect_ratio=crop_to_aspect_ratio,
                           pad_to_aspect_ratio=pad_to_aspect_ratio, data_format=data_format)
    return np.asarray(ops.convert_to_numpy(out), dtype="float32")


def encode_labels(labels: np.ndarray, label_mode: str | None, num_classes: int) -> np.ndarray | None:
    """Keras' label encodings: int32 ``(n,)``, float32 one-hot ``(n, k)``, float32 ``(n, 1)``."""
    if label_mode is None:
        return None
    labels = np.asarray(labels)
    if label_mode == "categorical":
        return np.eye(num_classes, dtype="float32")[labels.astype("int64")]
    if label_mode == "binary":
        return labels.astype("float32")[:, None]
    return labels.astype("int32")
