"""ONNX: recognise a serialized ``ModelProto`` without the onnx package, load and save it.

Recognition walks the top-level protobuf fields of the file (reading keys and lengths, seeking
over payloads): every field must be one that ``ModelProto`` declares, with the wire type it
declares, every length must stay inside the file, the walk must end exactly at the end of the
file, and ``ir_version`` (field 1) and ``graph`` (field 7) must both be present. A TensorFlow
``saved_model.pb`` (fields 1 and 2 only) or random bytes do not pass.
"""

from __future__ import annotations

import logging
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, OptionError, UnknownFormatError, UnsafeArchiveError
from .dependencies import require
from .protobuf import LEN, VARINT, iter_fields

__all__ = ["external_data_files", "inspect_onnx", "load_onnx", "save_onnx"]

logger = logging.getLogger("colabmodels")

# ModelProto field number -> wire type (onnx.proto, onnx 1.16+)
_MODEL_FIELDS = {
    1: VARINT,
    2: LEN,
    3: LEN,
    4: LEN,
    5: VARINT,
    6: LEN,
    7: LEN,
    8: LEN,
    14: LEN,
    20: LEN,
    25: LEN,
    26: LEN,
}
_MAX_FIELDS = 1_000_000


def inspect_onnx(path: str | Path) -> dict[str, Any] | None:
    """Check that a file is an ONNX ``ModelProto`` by walking its top-level fields.

    Returns:
        ``{"ir_version": int, "producer": str | None}`` when it is one, else None (never
        raises for malformed input).
    """
    try:
        with open(path, "rb") as f:
            if f.read(1) != b"\x08":  # ir_version comes first in every serializer
                return None
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _walk_model(buf)
    except (OSError, ValueError):
        return None


def _walk_model(buf: mmap.mmap) -> dict[str, Any] | None:
    seen: set[int] = set()
    ir_version = None
    producer = None
    for count, field in enumerate(iter_fields(buf)):
        if count >= _MAX_FIELDS or _MODEL_FIELDS.get(field.number) != field.wire:
            return None
        if field.number == 1:
            ir_version = field.value
        elif field.number == 2 and field.value < 4096:
            producer = buf[field.start : field.end].decode("utf-8", "replace")
        seen.add(field.number)
    if ir_version is None or not 1 <= ir_version <= 100 or 7 not in seen:
        return None
    return {"ir_version": ir_version, "producer": producer}


def _tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto of a model: initializers, sparse initializers, node attributes, in
    the main graph, in subgraphs (If/Loop/Scan bodies) and in model-local functions."""

    def in_nodes(nodes: Any) -> Iterator[Any]:
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("sparse_tensor"):
                    yield attr.sparse_tensor.values
                    yield attr.sparse_tensor.indices
                for sparse in attr.sparse_tensors:
                    yield sparse.values
                    yield sparse.indices
                if attr.HasField("g"):
                    yield from in_graph(attr.g)
                for graph in attr.graphs:
                    yield from in_graph(graph)

    def in_graph(graph: Any) -> Iterator[Any]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from in_nodes(graph.node)

    yield from in_graph(model.graph)
    for function in model.functions:
        yield from in_nodes(function.node)


def external_data_files(model: Any, folder: Path, *, source: str | None = None) -> list[Path]:
    """Check where a model's external data lives; only files inside ``folder`` are allowed.

    Args:
        model: an ``onnx.ModelProto`` read with ``load_external_data=False``.
        folder: the folder of the ``.onnx`` file.
        source: how to name the model in messages (default: the folder).

    Returns:
        The external data files, resolved, each once.

    Raises:
        UnsafeArchiveError: a ``location`` that is absolute, has ``..``, or resolves (through
            symlinks) outside ``folder``.
        NotFoundError: an external data file is missing.
    """
    root = folder.resolve()
    name = source or str(folder)
    files: list[Path] = []
    for tensor in _tensors(model):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        parts = location.replace("\\", "/").split("/")
        if (
            not location
            or os.path.isabs(location)
            or location.startswith(("/", "\\"))
            or (len(location) > 1 and location[1] == ":")
            or ".." in parts
        ):
            raise UnsafeArchiveError(
                f"{name}: tensor {tensor.name!r} keeps its data at {location!r}, outside the "
                "model's folder; colabmodels reads external data only from files beside the "
                "model"
            )
        target = (folder / location).resolve()
        if target != root and root not in target.parents:
            raise UnsafeArchiveError(
                f"{name}: external data file {location!r} of tensor {tensor.name!r} is a link "
                f"to {target}, outside the model's folder; colabmodels reads external data "
                "only from files beside the model"
            )
        if not target.is_file():
            raise NotFoundError(
                f"{name}: tensor {tensor.name!r} keeps its data in {location!r}, which is "
                "missing; fetch the folder the model was saved in, not the .onnx file alone"
            )
        if target not in files:
            files.append(target)
    return files


ONNX_OPTIONS = ("load_external_data",)
"""Options ``load_onnx`` accepts for ``onnx.load``."""
ORT_OPTIONS = ("sess_options", "providers", "provider_options", "disabled_optimizers")
"""Options ``load_onnx`` passes to ``onnxruntime.InferenceSession``."""


def load_onnx(
    path: Path, *, framework: str | None = None, source: str | None = None, **kwargs: Any
) -> Any:
    """Load an ONNX model, reading external data only from files inside its folder.

    The model is parsed first without its external data, every ``location`` is checked with
    ``external_data_files``, and only then is the data read (by onnx, or by onnxruntime
    from the same folder). Checking needs the onnx package in both cases.

    Args:
        path: the ``.onnx`` file (external data files are looked up beside it).
        framework: ``None``/``"onnx"`` returns the ``onnx.ModelProto``; ``"onnxruntime"``
            returns an ``onnxruntime.InferenceSession``.
        source: how to name the model in messages.
        **kwargs: ``load_external_data`` (onnx, default True); ``sess_options``,
            ``providers``, ``provider_options``, ``disabled_optimizers`` (onnxruntime).

    Raises:
        MissingDependencyError: onnx (or onnxruntime) is not installed.
        UnsafeArchiveError: external data outside the model's folder.
        NotFoundError: an external data file is missing.
        UnknownFormatError: an unsupported ``framework``.
        OptionError: an option the chosen framework does not take.
    """
    fw = (framework or "onnx").lower()
    if fw not in ("onnx", "onnxruntime", "ort"):
        raise UnknownFormatError(
            f"ONNX files load with onnx or onnxruntime, not framework={framework!r}"
        )
    allowed = ONNX_OPTIONS if fw == "onnx" else ORT_OPTIONS
    wrong = sorted(set(kwargs) - set(allowed))
    if wrong:
        raise OptionError(
            f"unexpected option(s) {', '.join(wrong)} for ONNX with {fw}; accepted: "
            + ", ".join(allowed)
        )
    onnx = require("onnx", purpose="read ONNX models")
    model = onnx.load(str(path), load_external_data=False)
    external_data_files(model, path.parent, source=source)
    if fw == "onnx":
        if kwargs.get("load_external_data", True):
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(model, str(path.parent))
        return model
    ort = require("onnxruntime", purpose="run ONNX models")
    return ort.InferenceSession(str(path), **kwargs)


def save_onnx(model: Any, path: Path) -> str:
    """Write an ``onnx.ModelProto``; returns the onnx version."""
    onnx = require("onnx", purpose="save ONNX models")
    onnx.save(model, str(path))
    return str(onnx.__version__)
