"""safetensors: header validation (stdlib only), loading and saving.

A safetensors file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON, then
one byte buffer. The JSON maps each tensor name to ``{"dtype", "shape", "data_offsets"}``
(offsets relative to the buffer) plus an optional ``"__metadata__"`` of strings. A valid file
has offsets that tile the whole buffer, in order, without holes or overlaps, and each tensor's
byte length equals its element count times its dtype size.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from ..errors import UnknownFormatError
from .dependencies import require

__all__ = ["DTYPE_BYTES", "load_safetensors", "read_header", "save_tensor_dict"]

logger = logging.getLogger("colabmodels")

MAX_HEADER_BYTES = 100 * 1024**2

DTYPE_BYTES: dict[str, float] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "F4": 0.5,
    "F6_E2M3": 0.75,
    "F6_E3M2": 0.75,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "C64": 8,
    "F64": 8,
    "I64": 8,
    "U64": 8,
}


def read_header(path: str | Path) -> dict[str, Any] | None:
    """Read and validate a safetensors header.

    Args:
        path: a file.

    Returns:
        ``{"tensors": {name: {"dtype", "shape", "data_offsets"}}, "metadata": {...},
        "header_bytes": N}`` when the file is a consistent safetensors file, else None.
        Never raises for malformed input; it just is not safetensors.
    """
    try:
        size = os.path.getsize(path)
        if size < 8 + 2:
            return None
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
                return None
            first = f.read(1)
            if first != b"{":
                return None
            raw = first + f.read(n - 1)
        header = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        return None
    buffer_size = size - 8 - n
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict):
            return None
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BYTES:
            return None
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            return None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
        ):
            return None
        begin, end = offsets
        if not 0 <= begin <= end <= buffer_size:
            return None
        if end - begin != math.ceil(math.prod(shape) * DTYPE_BYTES[dtype]):
            return None
        spans.append((begin, end, name))
    spans.sort()
    position = 0
    for begin, end, _name in spans:
        if begin != position:
            return None
        position = end
    if position != buffer_size:
        return None
    return {"tensors": header, "metadata": metadata, "header_bytes": n}


def load_safetensors(path: Path, *, framework: str | None, map_location: Any) -> dict[str, Any]:
    """Load every tensor of a safetensors file.

    Args:
        path: the file.
        framework: ``None``/``"torch"`` (default: torch tensors), ``"numpy"`` or
            ``"tensorflow"``.
        map_location: torch device for the tensors (torch only; ``"cpu"`` by default).

    Returns:
        A dict of tensor name to tensor.

    Raises:
        MissingDependencyError: safetensors or the chosen framework is not installed.
        UnknownFormatError: an unsupported ``framework``.
    """
    fw = (framework or "torch").lower()
    if fw in ("torch", "pt", "pytorch", "safetensors"):
        st = require("safetensors.torch", purpose="load safetensors into torch tensors")
        if map_location is None or callable(map_location) or isinstance(map_location, dict):
            device: Any = "cpu"  # torch-only map_location shapes; safetensors wants a device
        elif isinstance(map_location, (str, int)):
            device = map_location
        else:
            device = str(map_location)  # torch.device
        return dict(st.load_file(str(path), device=device))
    if fw in ("numpy", "np"):
        st = require("safetensors.numpy", purpose="load safetensors into numpy arrays")
        return dict(st.load_file(str(path)))
    if fw in ("tensorflow", "tf", "keras"):
        st = require("safetensors.tensorflow", purpose="load safetensors into tf tensors")
        return dict(st.load_file(str(path)))
    raise UnknownFormatError(
        f"safetensors files load as torch, numpy or tensorflow tensors, not framework={framework!r}"
    )


def save_tensor_dict(tensors: dict[str, Any], path: Path, *, kind: str) -> None:
    """Write a dict of tensors (``kind`` ``"torch"`` or ``"numpy"``) as safetensors.

    Torch tensors that share memory (tied weights) are each written as their own copy, so
    ``load_state_dict`` restores every key; non-contiguous tensors are made contiguous.
    """
    if kind == "numpy":
        np = require("numpy")
        stn = require("safetensors.numpy", purpose="save safetensors")
        stn.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
        return
    stt = require("safetensors.torch", purpose="save safetensors")
    seen: set[tuple[Any, int]] = set()
    out: dict[str, Any] = {}
    for key, tensor in tensors.items():
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        storage_key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if t.numel() and storage_key in seen:
            t = t.clone()
        seen.add(storage_key)
        out[key] = t.contiguous()
    stt.save_file(out, str(path), metadata={"format": "pt"})
