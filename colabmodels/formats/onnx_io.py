"""ONNX: recognise a serialized ``ModelProto`` without the onnx package, load and save it.

Recognition walks the top-level protobuf fields of the file (reading keys and lengths, seeking
over payloads): every field must be one that ``ModelProto`` declares, with the wire type it
declares, every length must stay inside the file, the walk must end exactly at the end of the
file, and ``ir_version`` (field 1) and ``graph`` (field 7) must both be present. A TensorFlow
``saved_model.pb`` (fields 1 and 2 only) or random bytes do not pass.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO, Any

from ..errors import UnknownFormatError
from .dependencies import require

__all__ = ["inspect_onnx", "load_onnx", "save_onnx"]

logger = logging.getLogger("colabmodels")

_VARINT, _LEN = 0, 2
# ModelProto field number -> wire type (onnx.proto, onnx 1.16+)
_MODEL_FIELDS = {
    1: _VARINT,
    2: _LEN,
    3: _LEN,
    4: _LEN,
    5: _VARINT,
    6: _LEN,
    7: _LEN,
    8: _LEN,
    14: _LEN,
    20: _LEN,
    25: _LEN,
    26: _LEN,
}
_MAX_FIELDS = 1_000_000


def _varint(f: IO[bytes]) -> int | None:
    result = 0
    for shift in range(0, 70, 7):
        b = f.read(1)
        if not b:
            return None
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
    return None


def inspect_onnx(path: str | Path) -> dict[str, Any] | None:
    """Check that a file is an ONNX ``ModelProto`` by walking its top-level fields.

    Returns:
        ``{"ir_version": int, "producer": str | None}`` when it is one, else None (never
        raises for malformed input).
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if f.read(1) != b"\x08":  # ir_version comes first in every serializer
                return None
            f.seek(0)
            seen: set[int] = set()
            ir_version = None
            producer = None
            count = 0
            while f.tell() < size:
                count += 1
                if count > _MAX_FIELDS:
                    return None
                key = _varint(f)
                if key is None:
                    return None
                number, wire = key >> 3, key & 7
                if _MODEL_FIELDS.get(number) != wire:
                    return None
                value = _varint(f)
                if value is None:
                    return None
                if wire == _LEN:
                    if f.tell() + value > size:
                        return None
                    if number == 2 and value < 4096:
                        producer = f.read(value).decode("utf-8", "replace")
                    else:
                        f.seek(value, os.SEEK_CUR)
                elif number == 1:
                    ir_version = value
                seen.add(number)
            if f.tell() != size:
                return None
    except OSError:
        return None
    if ir_version is None or not 1 <= ir_version <= 100 or 7 not in seen:
        return None
    return {"ir_version": ir_version, "producer": producer}


def load_onnx(path: Path, *, framework: str | None = None, **kwargs: Any) -> Any:
    """Load an ONNX model.

    Args:
        path: the ``.onnx`` file (external data files are looked up beside it).
        framework: ``None``/``"onnx"`` returns the ``onnx.ModelProto``; ``"onnxruntime"``
            returns an ``onnxruntime.InferenceSession``.
        **kwargs: passed to ``onnx.load`` or ``InferenceSession``.

    Raises:
        MissingDependencyError: onnx (or onnxruntime) is not installed.
        UnknownFormatError: an unsupported ``framework``.
    """
    fw = (framework or "onnx").lower()
    if fw == "onnx":
        onnx = require("onnx", purpose="load ONNX models")
        return onnx.load(str(path), **kwargs)
    if fw in ("onnxruntime", "ort"):
        ort = require("onnxruntime", purpose="run ONNX models")
        return ort.InferenceSession(str(path), **kwargs)
    raise UnknownFormatError(
        f"ONNX files load with onnx or onnxruntime, not framework={framework!r}"
    )


def save_onnx(model: Any, path: Path) -> str:
    """Write an ``onnx.ModelProto``; returns the onnx version."""
    onnx = require("onnx", purpose="save ONNX models")
    onnx.save(model, str(path))
    return str(onnx.__version__)
