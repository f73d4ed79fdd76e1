"""Recognise a model file or folder by its bytes and structure, never by its name.

The order of checks goes from the most specific signature to the least: a safetensors header
that validates against the file size, the HDF5 signature, a zip archive (Keras, torch,
TorchScript, ``.pt2``; checked for path tricks and absurd sizes first), a pickle stream
(legacy torch, gensim), a TensorFlow table (checkpoint index), an ONNX ``ModelProto``, and
finally word2vec text or binary. Nothing is executed and no framework is imported (h5py is
used for HDF5 files when installed).
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from pathlib import Path

from ..errors import NotFoundError, UnknownFormatError, UnsafeArchiveError
from .gensim_io import inspect_gensim_pickle, sniff_word2vec
from .info import FORMAT_NAMES, FormatInfo
from .keras_io import HDF5_SIGNATURE, inspect_hdf5, inspect_keras_dir, inspect_keras_zip
from .names import DisplayNames
from .onnx_io import inspect_onnx
from .safetensors_io import read_header
from .safety import open_zip, scan_pickle
from .tf_io import (
    checkpoint_info,
    find_checkpoint_in_dir,
    inspect_savedmodel,
    is_tf_index,
    shard_index_path,
)
from .torch_io import LEGACY_MAGIC, classify_torch_pickle, inspect_torch_zip

__all__ = ["sniff_format"]

logger = logging.getLogger("colabmodels")

_HEAD_BYTES = 4096
_MAX_DIR_FILES = 500
_SUPPORTED = ", ".join(FORMAT_NAMES)
# what zipfile and zlib raise for a damaged archive or member (CRC, bad headers, truncated
# data, unsupported compression or encryption)
_DAMAGED_ZIP = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OSError,
)


def sniff_format(path: str | Path, *, source: str | None = None) -> FormatInfo:
    """Say what model format a file or folder holds.

    Args:
        path: a file; a folder (SavedModel, unzipped ``.keras``, a checkpoint folder, or a
            folder holding one model file, e.g. a gensim pickle with its sidecars — then
            ``details["file"]`` names that file); or a ``tf.train.Checkpoint`` prefix
            (``.../ckpt`` when ``.../ckpt.index`` exists: the name ``ckpt.save()`` returns).
        source: what the user passed for ``path`` (a link, ``MyDrive/...``, ``gs://...``)
            when ``path`` is a local copy; error messages name it first.

    Returns:
        The ``FormatInfo``.

    Raises:
        NotFoundError: nothing exists at ``path``.
        UnknownFormatError: no supported format; the message says what was seen (first
            bytes, size, zip members...) and lists the supported formats.
        UnsafeArchiveError: a zip archive with absolute/``..`` paths or absurd sizes.
    """
    p = Path(path).expanduser()
    names = DisplayNames(p, source)
    if p.is_dir():
        return _sniff_dir(p, 0, names)
    if not p.exists():
        index = p.with_name(p.name + ".index")
        if is_tf_index(index):
            return checkpoint_info(index)
        raise NotFoundError(
            f"{names(p)} does not exist (nor a TensorFlow checkpoint {index.name} beside it)"
        )
    if not p.is_file():
        raise UnknownFormatError(f"{names(p)} is not a regular file or folder")
    return _sniff_file(p, names)


def _describe_head(head: bytes, size: int) -> str:
    shown = head[:16]
    hexes = " ".join(f"{b:02x}" for b in shown)
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in shown)
    return f"{size} bytes, starting {hexes} ({text!r})"


def _unknown(name: str, seen: str) -> UnknownFormatError:
    return UnknownFormatError(
        f"{name} is not a model format colabmodels recognises: {seen}. Supported formats: "
        f"{_SUPPORTED}."
    )


def _sniff_file(p: Path, names: DisplayNames) -> FormatInfo:
    size = p.stat().st_size
    if size == 0:
        raise _unknown(names(p), "the file is empty")
    with open(p, "rb") as f:
        head = f.read(_HEAD_BYTES)

    if p.name in ("saved_model.pb", "saved_model.pbtxt"):
        info = inspect_savedmodel(p.parent)
        if info is not None:
            info.details["folder"] = str(p.parent)
            return info

    header = read_header(p)
    if header is not None:
        details = {
            "tensors": len(header["tensors"]),
            "metadata": header["metadata"],
            "header_bytes": header["header_bytes"],
        }
        return FormatInfo("safetensors", "safetensors", False, details)

    if any(head[off : off + 8] == HDF5_SIGNATURE for off in (0, 512, 1024, 2048)):
        info = inspect_hdf5(p)
        if info is not None:
            return info
        raise _unknown(names(p), f"an HDF5 file that is no Keras model or weights ({size} bytes)")

    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06") or (
        head[:1] != b"\x80" and zipfile.is_zipfile(p)
    ):
        return _sniff_zip(p, size, names)

    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return _sniff_pickle(p, size, head, names)

    if is_tf_index(p):
        return checkpoint_info(p)
    index = shard_index_path(p)
    if index is not None:
        return checkpoint_info(index)

    onnx = inspect_onnx(p)
    if onnx is not None:
        return FormatInfo("onnx", "onnx", False, onnx)

    w2v = sniff_word2vec(p, size)
    if w2v is not None:
        return w2v

    raise _unknown(names(p), _describe_head(head, size))


def _sniff_zip(p: Path, size: int, names: DisplayNames) -> FormatInfo:
    try:
        with open_zip(p, source=names(p)) as zf:
            members = zf.namelist()
            info = inspect_keras_zip(zf, members) or inspect_torch_zip(zf, members)
    except UnsafeArchiveError:
        raise
    except _DAMAGED_ZIP as e:
        raise _unknown(names(p), f"a damaged zip archive of {size} bytes ({e})") from e
    if info is not None:
        return info
    shown = ", ".join(members[:12]) + (
        f" (and {len(members) - 12} more)" if len(members) > 12 else ""
    )
    raise _unknown(names(p), f"a zip archive ({size} bytes) with members: {shown or 'none'}")


def _sniff_pickle(p: Path, size: int, head: bytes, names: DisplayNames) -> FormatInfo:
    with open(p, "rb") as f:
        first = scan_pickle(f)
        if first.error is None and first.first_value == LEGACY_MAGIC:
            scan_pickle(f)  # protocol version
            scan_pickle(f)  # system info
            main = scan_pickle(f)
            return classify_torch_pickle(main, "legacy")
    if first.error is not None and not first.globals:
        raise _unknown(names(p), _describe_head(head, size))
    if any(g.startswith("gensim.") for g in first.globals):
        return inspect_gensim_pickle(p, first)
    needs = ", ".join(first.globals[:10]) or "no globals"
    raise _unknown(
        names(p),
        f"a Python pickle (protocol {first.protocol}, {size} bytes) that is neither a "
        f"torch.save file nor a gensim model; it would import: {needs}",
    )


def _sniff_dir(p: Path, depth: int, names: DisplayNames) -> FormatInfo:
    info = inspect_savedmodel(p) or inspect_keras_dir(p) or find_checkpoint_in_dir(p, names(p))
    if info is not None:
        return info
    found: list[tuple[Path, FormatInfo]] = []
    entries = sorted(e for e in p.iterdir() if not e.name.startswith("."))
    files = [e for e in entries if e.is_file()][:_MAX_DIR_FILES]
    for f in files:
        try:
            found.append((f, _sniff_file(f, names)))
        except UnknownFormatError:
            continue
    if not found and depth < 2:
        for sub in (e for e in entries if e.is_dir()):
            try:
                info = _sniff_dir(sub, depth + 1, names)
            except UnknownFormatError:
                continue
            if "file" not in info.details and "folder" not in info.details:
                info.details["folder"] = str(sub)
            found.append((sub, info))
    if len(found) == 1:
        target, info = found[0]
        if target.is_file():
            info.details["file"] = str(target)
        return info
    if found:
        listing = ", ".join(f"{t.name} ({i.name})" for t, i in found[:12])
        raise UnknownFormatError(
            f"{names(p)} holds several models: {listing}; pass the one to load"
        )
    shown = ", ".join(e.name + ("/" if e.is_dir() else "") for e in entries[:12])
    raise UnknownFormatError(
        f"{names(p)} is a folder with no model colabmodels recognises (it holds: {shown or 'nothing'}). "
        f"Supported formats: {_SUPPORTED}."
    )
