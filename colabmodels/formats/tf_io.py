"""TensorFlow: SavedModel folders and ``tf.train.Checkpoint`` files.

A SavedModel is a folder with ``saved_model.pb`` (or ``.pbtxt``) and usually ``variables/``.
Its signature names are read from the protobuf by a small field walker, so sniffing needs no
TensorFlow. Loading one runs its graph functions, so it needs ``trust=True``.

A checkpoint is ``PREFIX.index`` (a TensorFlow table: its last 8 bytes are the table magic
number) plus ``PREFIX.data-NNNNN-of-MMMMM`` shards, often with a ``checkpoint`` text file
naming the latest prefix. Restoring only assigns variable values (no code runs), but it needs
the object to restore into: ``checkpoint=`` (the ``tf.train.Checkpoint`` that was saved, or
one built the same way), or ``model=`` (or ``arch=``) for ``tf.train.Checkpoint(model=...)``.

The prefix ``ckpt.save()`` returns (``.../model-1``) names no file: its files are
``model-1.index`` and ``model-1.data-*-of-*``; ``checkpoint_files`` says which to fetch
from a folder listing, and ``sniff_format(".../model-1")`` finds them beside the prefix.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ArchitectureMismatchError, NotFoundError, UnknownFormatError
from .dependencies import require
from .info import FormatInfo, SavedFiles
from .paths import files_under, linked_files
from .protobuf import VARINT, iter_fields

__all__ = [
    "checkpoint_files",
    "checkpoint_info",
    "find_checkpoint_in_dir",
    "inspect_savedmodel",
    "is_tf_index",
    "load_checkpoint",
    "load_savedmodel",
    "save_tf_module",
    "shard_index_path",
]

logger = logging.getLogger("colabmodels")

TABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
_SHARD = re.compile(r"^(?P<prefix>.+)\.data-(?P<i>\d{5})-of-(?P<n>\d{5})$")
_CHECKPOINT_LINE = re.compile(r'^model_checkpoint_path:\s*"(?P<path>[^"]+)"', re.MULTILINE)


# --------------------------------------------------------------------------- protobuf walking


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """Top-level (field number, wire type, value) of a protobuf message; bytes for LEN and
    fixed-width fields, the integer for varints.

    Raises:
        ValueError: malformed message.
    """
    return [
        (f.number, f.wire, f.value if f.wire == VARINT else buf[f.start : f.end])
        for f in iter_fields(buf)
    ]


def _signature_names(saved_model_pb: bytes) -> list[str]:
    """Signature names of the first MetaGraphDef (SavedModel.meta_graphs = 2,
    MetaGraphDef.signature_def = 5, map entry key = 1)."""
    names: list[str] = []
    for number, wire, value in _fields(saved_model_pb):
        if number == 2 and wire == 2:
            for n2, w2, v2 in _fields(value):
                if n2 == 5 and w2 == 2:
                    for n3, w3, v3 in _fields(v2):
                        if n3 == 1 and w3 == 2:
                            names.append(v3.decode("utf-8", "replace"))
            break
    return names


# --------------------------------------------------------------------------- SavedModel


def inspect_savedmodel(path: Path) -> FormatInfo | None:
    """A SavedModel folder's ``FormatInfo``, or None when ``path`` is not one."""
    pb = path / "saved_model.pb"
    pbtxt = path / "saved_model.pbtxt"
    if not (pb.is_file() or pbtxt.is_file()):
        return None
    signatures: list[str] = []
    if pb.is_file():
        try:
            data = pb.read_bytes()
            fields = _fields(data)
            if not fields or fields[0][0] not in (1, 2):
                return None
            signatures = _signature_names(data)
        except (OSError, ValueError):
            return None
    details = {
        "signatures": signatures,
        "keras_metadata": (path / "keras_metadata.pb").is_file(),
        "variables": (path / "variables").is_dir(),
        "would_run": ["TensorFlow graph functions stored in saved_model.pb"]
        + [f"signature {s!r}" for s in signatures],
    }
    return FormatInfo("tf-savedmodel", "tensorflow", True, details)


def load_savedmodel(path: Path, info: FormatInfo, **loader_kwargs: Any) -> Any:
    """Load a SavedModel (the caller has checked ``trust``).

    By default (``saved_model_api="auto"``) a model with a ``serving_default`` (or ``serve``)
    signature loads as ``keras.layers.TFSMLayer(path, call_endpoint=...)`` under Keras 3 with
    the TensorFlow backend; otherwise, or with ``saved_model_api="tf"``, it loads with
    ``tf.saved_model.load``. ``saved_model_api="keras"`` insists on TFSMLayer;
    ``call_endpoint=`` picks the signature.

    Raises:
        MissingDependencyError: tensorflow (or keras) is not installed.
        UnknownFormatError: an unknown ``saved_model_api`` value.
    """
    api = loader_kwargs.get("saved_model_api", "auto")
    if api not in ("auto", "keras", "tf"):
        raise UnknownFormatError(f"saved_model_api must be 'auto', 'keras' or 'tf', not {api!r}")
    signatures = list(info.details.get("signatures") or [])
    endpoint = loader_kwargs.get("call_endpoint")
    if endpoint is None:
        for candidate in ("serving_default", "serve"):
            if candidate in signatures:
                endpoint = candidate
                break
    use_keras = api == "keras"
    if api == "auto" and endpoint is not None:
        try:
            keras = require("keras")
            use_keras = keras.backend.backend() == "tensorflow"
        except ImportError:
            use_keras = False
    if use_keras:
        keras = require("keras", purpose="load a SavedModel as a Keras layer")
        return keras.layers.TFSMLayer(str(path), call_endpoint=endpoint or "serving_default")
    tf = require("tensorflow", purpose="load a SavedModel")
    return tf.saved_model.load(str(path))


def save_tf_module(module: Any, dest_dir: Path, name: str, fmt: str | None) -> SavedFiles:
    """Save a ``tf.Module`` as a SavedModel folder ``NAME/`` (default) or as a checkpoint
    ``NAME/ckpt.*`` (``format="tf-checkpoint"``, restored with ``model=``).

    Raises:
        UnknownFormatError: another format.
    """
    tf = require("tensorflow", purpose="save TensorFlow modules")
    fmt = fmt or "tf-savedmodel"
    target = dest_dir / name
    if fmt == "tf-savedmodel":
        tf.saved_model.save(module, str(target))
        extra: dict[str, Any] = {}
    elif fmt == "tf-checkpoint":
        target.mkdir(parents=True, exist_ok=True)
        tf.train.Checkpoint(model=module).write(str(target / "ckpt"))
        extra = {"checkpoint_key": "model", "prefix": f"{name}/ckpt"}
    else:
        raise UnknownFormatError(
            f"tf.Module objects save as tf-savedmodel or tf-checkpoint, not {fmt!r}"
        )
    return SavedFiles(
        fmt, "tensorflow", tf.__version__, files_under(dest_dir, target), extra, Path(name)
    )


# --------------------------------------------------------------------------- checkpoints


def is_tf_index(path: Path) -> bool:
    """Whether ``path`` is a TensorFlow table file (a checkpoint ``.index``)."""
    try:
        size = path.stat().st_size
        if size < 48:
            return False
        with open(path, "rb") as f:
            f.seek(size - 8)
            return f.read(8) == TABLE_MAGIC
    except OSError:
        return False


def shard_index_path(path: Path) -> Path | None:
    """For a ``PREFIX.data-NNNNN-of-MMMMM`` shard, the ``PREFIX.index`` beside it."""
    m = _SHARD.match(path.name)
    if not m:
        return None
    index = path.with_name(m.group("prefix") + ".index")
    return index if is_tf_index(index) else None


def checkpoint_info(index: Path) -> FormatInfo:
    """Describe the checkpoint whose index file is ``index``.

    The shards are found by the index's own prefix (``PREFIX.index``); when the index was
    renamed, by the only shard prefix in its folder (loading then links the files back
    under one prefix).
    """
    folder = index.parent
    own_prefix = index.name[: -len(".index")] if index.name.endswith(".index") else None
    groups: dict[str, list[tuple[int, int, Path]]] = {}
    for p in folder.iterdir():
        m = _SHARD.match(p.name)
        if m and p.is_file():
            groups.setdefault(m.group("prefix"), []).append(
                (int(m.group("i")), int(m.group("n")), p)
            )
    shard_prefix = None
    if own_prefix is not None and own_prefix in groups:
        shard_prefix = own_prefix
    elif len(groups) == 1:
        shard_prefix = next(iter(groups))
    shards = sorted(groups.get(shard_prefix, [])) if shard_prefix else []
    expected = shards[0][1] if shards else 1
    present = {i for i, _n, _p in shards}
    missing = [
        f"{shard_prefix or own_prefix or index.stem}.data-{i:05d}-of-{expected:05d}"
        for i in range(expected)
        if i not in present
    ]
    details = {
        "index": str(index),
        "prefix": str(folder / own_prefix) if own_prefix and shard_prefix == own_prefix else None,
        "shard_prefix": shard_prefix,
        "shards": [str(p) for _i, _n, p in shards],
        "missing_shards": missing,
    }
    return FormatInfo("tf-checkpoint", "tensorflow", False, details)


def find_checkpoint_in_dir(path: Path, name: str | None = None) -> FormatInfo | None:
    """The checkpoint in a folder: the one the ``checkpoint`` file names, or the only one.

    Raises:
        UnknownFormatError: several checkpoints and no ``checkpoint`` file to choose.
    """
    state = path / "checkpoint"
    if state.is_file():
        try:
            m = _CHECKPOINT_LINE.search(state.read_text("utf-8", "replace"))
        except OSError:
            m = None
        if m:
            index = path / (Path(m.group("path")).name + ".index")
            if is_tf_index(index):
                return checkpoint_info(index)
    indexes = sorted(p for p in path.glob("*.index") if p.is_file() and is_tf_index(p))
    if len(indexes) == 1:
        return checkpoint_info(indexes[0])
    if len(indexes) > 1:
        raise UnknownFormatError(
            f"{name or path} holds several TensorFlow checkpoints "
            f"({', '.join(p.name[:-6] for p in indexes)}) and no 'checkpoint' file naming the "
            "latest; pass the prefix of the one you want"
        )
    return None


def checkpoint_files(prefix: str, names: Iterable[str]) -> list[str]:
    """The files a checkpoint prefix needs, picked from the names in its folder.

    ``ckpt.save(".../model")`` returns ``".../model-1"``, a prefix that names no file; the
    checkpoint is ``model-1.index`` plus every ``model-1.data-NNNNN-of-MMMMM`` shard.

    Args:
        prefix: the prefix's last component (``"model-1"``).
        names: the file names in the folder that holds it (a listing).

    Returns:
        The index and every shard, sorted.

    Raises:
        NotFoundError: no ``PREFIX.index``, or shards missing (each is named).
    """
    available = set(names)
    index = f"{prefix}.index"
    if index not in available:
        raise NotFoundError(
            f"{prefix} is not a TensorFlow checkpoint prefix here: {index} is missing"
        )
    shards: dict[int, int] = {}
    for n in available:
        m = _SHARD.match(n)
        if m and m.group("prefix") == prefix:
            shards[int(m.group("i"))] = int(m.group("n"))
    count = max(shards.values(), default=1)
    wanted = [f"{prefix}.data-{i:05d}-of-{count:05d}" for i in range(count)]
    missing = [w for w in wanted if w not in available]
    if missing:
        raise NotFoundError(f"checkpoint {prefix} is missing shard files: {', '.join(missing)}")
    return sorted([index, *wanted])


CHECKPOINT_OPTIONS = ("checkpoint", "checkpoint_key", "arch_kwargs")
"""Options ``load_checkpoint`` takes besides ``model``."""


def load_checkpoint(
    info: FormatInfo,
    *,
    model: Any = None,
    checkpoint: Any = None,
    checkpoint_key: str = "model",
    name: str | None = None,
    **loader_kwargs: Any,
) -> Any:
    """Restore a checkpoint and return what it was restored into.

    ``checkpoint=<a tf.train.Checkpoint>`` restores into that object as it is (build it the
    way the saved one was built, e.g. ``tf.train.Checkpoint(model=m, optimizer=o)``); a
    ``tf.train.Checkpoint`` passed as ``model=`` is used the same way, not wrapped again.
    Otherwise ``tf.train.Checkpoint(**{checkpoint_key: model})`` with ``checkpoint_key``
    ``"model"`` by default (``tf.train.Checkpoint(model=m)`` when saving). The restore must
    match every variable of the target (``assert_existing_objects_matched``); values in the
    file that it lacks are allowed (``expect_partial``).

    Args:
        info: what ``sniff_format`` found.
        model: the tf.Module / Keras model to restore into (or a ``tf.train.Checkpoint``).
        checkpoint: a ``tf.train.Checkpoint`` to restore into.
        checkpoint_key: the keyword ``model`` was saved under.
        name: how to name the checkpoint in messages (default: its index file).
        **loader_kwargs: ``arch_kwargs`` (already used by the caller).

    Returns:
        ``model`` when given as a model, else the checkpoint object.

    Raises:
        ArchitectureMismatchError: nothing to restore into, or it does not match.
        NotFoundError: shard files are missing.
        MissingDependencyError: tensorflow is not installed.
    """
    tf = require("tensorflow", purpose="restore TensorFlow checkpoints")
    name = name or str(info.details.get("index"))
    if checkpoint is None and isinstance(model, tf.train.Checkpoint):
        checkpoint, model = model, None
    if model is None and checkpoint is None:
        raise ArchitectureMismatchError(
            f"{name} is a TensorFlow checkpoint: it holds variable values only. Pass "
            "checkpoint=<a tf.train.Checkpoint built like the one that was saved, e.g. "
            "tf.train.Checkpoint(model=m)>, or model=<the tf.Module or Keras model that was "
            "saved as tf.train.Checkpoint(model=...)> (or arch=<a callable that builds it>). "
            "To read raw values instead, use tf.train.load_checkpoint(prefix)."
        )
    if info.details.get("missing_shards"):
        raise NotFoundError(
            f"checkpoint {name} is missing shard files: "
            + ", ".join(info.details["missing_shards"])
        )
    if checkpoint is None:
        checkpoint = tf.train.Checkpoint(**{checkpoint_key: model})
    target = model if model is not None else checkpoint
    prefix = info.details.get("prefix")
    if prefix:
        _restore(checkpoint, prefix, target, name)
    else:
        names = {"ckpt.index": Path(info.details["index"])}
        for shard in info.details.get("shards", []):
            m = _SHARD.match(Path(shard).name)
            if m:
                names[f"ckpt.data-{m.group('i')}-of-{m.group('n')}"] = Path(shard)
        with linked_files(names) as tmp:
            _restore(checkpoint, str(tmp / "ckpt"), target, name)
    return target


def _restore(checkpoint: Any, prefix: str, target: Any, name: str) -> None:
    # read() is restore() without creating the save counter, which write()-style checkpoints
    # do not hold and which would otherwise count as an unmatched object.
    try:
        status = checkpoint.read(prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:
        raise ArchitectureMismatchError(
            f"checkpoint {name} does not match {type(target).__name__}: {e}"
        ) from e
