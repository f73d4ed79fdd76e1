"""Keras: ``.keras`` archives and HDF5 files — recognise, load, save.

Recognition reads ``config.json``/``metadata.json`` from the archive's central directory, or
the root attributes of an HDF5 file (``model_config`` for a full legacy model, ``layer_names``
for legacy weights, ``layers``/``vars`` groups for Keras 3 ``.weights.h5``). A model config
that contains ``Lambda`` layers (or serialized ``__lambda__`` functions) executes Python
bytecode when loaded, so those files are marked ``executes_code``.

Keras picks its loader from the file name, so a file stored under another name is exposed
under the right suffix (``with_suffix``) before loading.
"""

from __future__ import annotations

import json
import logging
import math
import zipfile
from pathlib import Path
from typing import Any

from ..errors import ArchitectureMismatchError, UnknownFormatError, UntrustedFormatError
from .dependencies import require
from .info import FormatInfo, SavedFiles
from .paths import files_under, with_suffix
from .safety import read_member

__all__ = [
    "inspect_hdf5",
    "inspect_keras_dir",
    "inspect_keras_zip",
    "lambda_layers",
    "load_keras",
    "save_keras",
]

logger = logging.getLogger("colabmodels")

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_KERAS3_WEIGHT_GROUPS = {"layers", "vars", "optimizer", "metrics", "_layer_checkpoint_dependencies"}


def lambda_layers(config: Any) -> list[str]:
    """Names of the layers in a Keras model config that would run stored Python code.

    Finds ``Lambda`` layers (Keras 2 and 3) and any serialized ``__lambda__`` function
    (e.g. a lambda used as an activation), naming the layer that holds it.
    """
    found: list[str] = []

    def walk(node: Any, layer: str | None) -> None:
        if isinstance(node, dict):
            cfg = node.get("config")
            name = cfg.get("name") if isinstance(cfg, dict) else None
            here = name if isinstance(name, str) and "class_name" in node else layer
            cls = node.get("class_name")
            if cls == "Lambda" or (isinstance(cfg, dict) and cfg.get("function_type") == "lambda"):
                label = here or "<unnamed Lambda>"
                if label not in found:
                    found.append(label)
                return  # its own __lambda__ function is this same finding
            if cls == "__lambda__":
                label = f"{layer or '<model>'} (lambda function)"
                if label not in found:
                    found.append(label)
            for value in node.values():
                walk(value, here)
        elif isinstance(node, list):
            for value in node:
                walk(value, layer)

    walk(config, None)
    return found


def _model_info(name: str, config: Any, extra: dict[str, Any]) -> FormatInfo:
    lambdas = lambda_layers(config)
    details = dict(extra)
    details["lambda_layers"] = lambdas
    if isinstance(config, dict):
        details["class_name"] = config.get("class_name")
    if lambdas:
        details["would_run"] = [f"Lambda layer {n!r}" for n in lambdas]
    return FormatInfo(name, "keras", bool(lambdas), details)


def inspect_keras_zip(zf: zipfile.ZipFile, names: list[str]) -> FormatInfo | None:
    """A ``.keras`` archive's ``FormatInfo``, or None when the zip is not one."""
    if "config.json" not in names or "metadata.json" not in names:
        return None
    try:
        config = json.loads(read_member(zf, "config.json"))
        metadata = json.loads(read_member(zf, "metadata.json"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(metadata, dict):
        return None
    weights = [n for n in names if n.startswith("model.weights.")]
    return _model_info(
        "keras",
        config,
        {"keras_version": metadata.get("keras_version"), "weights_member": weights[:1] or None},
    )


def inspect_keras_dir(path: Path) -> FormatInfo | None:
    """An unzipped ``.keras`` folder (``config.json`` + ``metadata.json`` + weights)."""
    config_path, metadata_path = path / "config.json", path / "metadata.json"
    if not (config_path.is_file() and metadata_path.is_file()):
        return None
    if not any(p.name.startswith("model.weights.") for p in path.iterdir()):
        return None
    try:
        config = json.loads(config_path.read_text("utf-8"))
        metadata = json.loads(metadata_path.read_text("utf-8"))
    except (ValueError, OSError):
        return None
    if not isinstance(metadata, dict) or "keras_version" not in metadata:
        return None
    return _model_info(
        "keras", config, {"keras_version": metadata.get("keras_version"), "unzipped": True}
    )


HDF5_PROBE_TIMEOUT_S = 60.0
"""How long reading an HDF5 file's root attributes may take (a healthy file: milliseconds)."""


def inspect_hdf5(path: Path) -> FormatInfo | None:
    """Tell a legacy HDF5 full model from HDF5 weights; None for other HDF5 files.

    Uses h5py when installed, in a child process: on some damaged files HDF5's own reading
    loops forever (holding the GIL) or crashes, and neither may take the kernel with it.
    Without h5py, falls back to looking for the attribute names in the first megabytes.

    Raises:
        UnknownFormatError: HDF5 did not finish reading the file in ``HDF5_PROBE_TIMEOUT_S``,
            or crashed on it (a damaged file).
        MissingDependencyError: h5py is missing and the fallback cannot decide.
    """
    try:
        import h5py  # noqa: F401 - only whether it is there: the child process reads the file
    except ImportError:
        return _inspect_hdf5_without_h5py(path)
    return _probe_in_child(path)


def _probe_in_child(path: Path) -> FormatInfo | None:
    import os
    import subprocess
    import sys

    package_parent = str(Path(__file__).resolve().parents[2])  # this colabmodels, installed or not
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    code = ("import sys; from colabmodels.formats.keras_io import _probe_main; "
            "_probe_main(sys.argv[1], int(sys.argv[2]))")
    damaged = (f"{path.name} looks like a damaged HDF5 file: {{}}. Download or save it again "
               "(a file cut short or changed on the way reads like this).")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path), str(_MAX_ATTR_BYTES)],
                              capture_output=True, timeout=HDF5_PROBE_TIMEOUT_S, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UnknownFormatError(damaged.format(
            f"HDF5 did not finish reading its header in {HDF5_PROBE_TIMEOUT_S:g} s")) from None
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        logger.debug("HDF5 probe of %s: exit %s, %s", path, done.returncode,
                     done.stderr.decode("utf-8", "replace")[-2000:])
        raise UnknownFormatError(damaged.format(
            f"HDF5 stopped while reading it (exit code {done.returncode})"))
    found = json.loads(lines[-1])
    return None if found is None else FormatInfo(**found)


def _probe_main(path: str, max_attr_bytes: int) -> None:
    """The child process of ``inspect_hdf5``: prints what the file holds as one JSON line."""
    info = _inspect_hdf5_in_process(Path(path), max_attr_bytes)
    found = None if info is None else {"name": info.name, "framework": info.framework,
                                       "executes_code": info.executes_code,
                                       "details": info.details}
    print(json.dumps(found), flush=True)


def _inspect_hdf5_in_process(path: Path, max_attr_bytes: int) -> FormatInfo | None:
    import h5py

    def read(attrs: Any, name: str) -> Any:
        return _read_attr(attrs, name, max_attr_bytes)

    try:
        with h5py.File(path, "r") as f:
            attrs = f.attrs
            keys = set(f.keys())
            if "model_config" in attrs:
                raw = read(attrs, "model_config")
                text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
                try:
                    config = json.loads(text)
                except ValueError:
                    config = None
                version = read(attrs, "keras_version")
                return _model_info(
                    "keras-h5",
                    config,
                    {"keras_version": _text(version),
                     "backend": _text(read(attrs, "backend"))},
                )
            if "layer_names" in attrs:
                return FormatInfo(
                    "keras-h5-weights",
                    "keras",
                    False,
                    {"layout": "legacy",
                     "keras_version": _text(read(attrs, "keras_version"))},
                )
            if keys and keys <= _KERAS3_WEIGHT_GROUPS and ({"layers", "vars"} & keys):
                return FormatInfo("keras-h5-weights", "keras", False, {"layout": "keras3"})
    except Exception as e:  # h5py raises OSError, RuntimeError, KeyError... on damaged files
        logger.debug("cannot read %s as HDF5: %s: %s", path, type(e).__name__, e)
        return None
    return None


_MAX_ATTR_BYTES = 64 * 1024**2
"""The most an HDF5 attribute read here may declare (a Keras model's config is a few MB)."""


def _read_attr(attrs: Any, name: str, max_bytes: int) -> Any:
    """``attrs[name]``, or None when absent; refused (``ValueError``) when its header declares
    more than ``max_bytes`` (``_MAX_ATTR_BYTES``): h5py allocates and fills the whole array
    before it reads a byte, so a damaged file declaring billions of elements would take
    minutes and gigabytes."""
    if name not in attrs:
        return None
    attr = attrs.get_id(name)
    shape = attr.shape or ()
    dtype = attr.dtype
    if dtype.subdtype is not None:
        dtype, sub = dtype.subdtype
        shape = (*shape, *sub)
    declared = math.prod(shape) * max(dtype.itemsize, 1)
    if declared > max_bytes:
        raise ValueError(f"attribute {name!r} declares {declared:,} bytes: a damaged file")
    return attrs[name]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _inspect_hdf5_without_h5py(path: Path) -> FormatInfo | None:
    from ..errors import MissingDependencyError

    with open(path, "rb") as f:
        head = f.read(16 * 1024**2)
    if b"model_config" in head:
        lambdas = b'"class_name": "Lambda"' in head or b'"__lambda__"' in head
        details: dict[str, Any] = {"inspected_without_h5py": True, "lambda_layers": []}
        if lambdas:
            details["lambda_layers"] = ["<unknown: install h5py to name them>"]
            details["would_run"] = ["Lambda layers (install h5py to name them)"]
        return FormatInfo("keras-h5", "keras", lambdas, details)
    if b"layer_names" in head:
        return FormatInfo("keras-h5-weights", "keras", False, {"layout": "legacy"})
    raise MissingDependencyError(
        f"{path} is an HDF5 file; h5py is needed to tell what it holds. "
        'Install it with: pip install "colabmodels[tf]"'
    )


def load_keras(
    path: Path,
    info: FormatInfo,
    *,
    trust: bool,
    model: Any = None,
    name: str | None = None,
    **loader_kwargs: Any,
) -> Any:
    """Load a Keras model, or load weights into ``model``.

    Full models (``keras``, ``keras-h5``) load with ``safe_mode=True`` unless ``trust``.
    Weights (``keras-h5-weights``) load into ``model`` and return it.

    Args:
        path: the file (or unzipped ``.keras`` folder).
        info: what ``sniff_format`` found.
        trust: allow Lambda layers (``safe_mode=False``).
        model: a built Keras model to receive weights (weights formats only).
        name: how to name the file in messages (default: ``path``).
        **loader_kwargs: ``compile``, ``custom_objects`` (full models); ``skip_mismatch``
            (weights).

    Raises:
        UntrustedFormatError: Keras refused to deserialize code in safe mode.
        ArchitectureMismatchError: weights without ``model=``, or weights that do not fit it.
        MissingDependencyError: keras is not installed.
    """
    keras = require("keras", purpose="load Keras models")
    shown = name or str(path)
    if info.name in ("keras", "keras-h5"):
        kwargs: dict[str, Any] = {
            k: loader_kwargs[k] for k in ("compile", "custom_objects") if k in loader_kwargs
        }
        suffix = ".keras" if info.name == "keras" else ".h5"
        if info.details.get("unzipped"):
            return _keras_load_model(keras, path, trust, kwargs, shown)
        with with_suffix(path, suffix) as named:
            return _keras_load_model(keras, named, trust, kwargs, shown)
    if info.name == "keras-h5-weights":
        if model is None:
            raise ArchitectureMismatchError(
                f"{shown} holds Keras weights only; pass model=<a built Keras model with the same "
                "architecture> (or arch=<a callable that builds it>) to load them into"
            )
        suffix = ".weights.h5" if info.details.get("layout") == "keras3" else ".h5"
        kwargs = {k: loader_kwargs[k] for k in ("skip_mismatch",) if k in loader_kwargs}
        avoid = None if suffix == ".weights.h5" else ".weights.h5"
        with with_suffix(path, suffix, avoid=avoid) as named:
            try:
                model.load_weights(str(named), **kwargs)
            except ValueError as e:
                raise ArchitectureMismatchError(
                    f"the weights in {shown} do not fit {type(model).__name__}: {e}"
                ) from e
        return model
    raise UnknownFormatError(f"{info.name} is not a Keras format")


def _keras_load_model(
    keras: Any, path: Path, trust: bool, kwargs: dict[str, Any], shown: str
) -> Any:
    try:
        return keras.saving.load_model(str(path), safe_mode=not trust, **kwargs)
    except ValueError as e:
        text = str(e)
        if "safe_mode" in text or "unsafe" in text.lower():
            raise UntrustedFormatError(
                f"Keras refused to load {shown} in safe mode: {text.splitlines()[0]} "
                "Pass trust=True only if you trust where it came from.",
                would_run=["Python code stored in the model config"],
            ) from e
        raise


def save_keras(model: Any, dest_dir: Path, name: str, fmt: str | None) -> SavedFiles:
    """Save a Keras model as ``NAME.keras`` (default), ``NAME.h5``, ``NAME.weights.h5`` or a
    SavedModel folder ``NAME/`` (``format="tf-savedmodel"``, via ``model.export``).

    Raises:
        UnknownFormatError: a format Keras models cannot be saved as.
    """
    keras = require("keras", purpose="save Keras models")
    fmt = fmt or "keras"
    extra: dict[str, Any] = {"keras_backend": keras.backend.backend()}
    if fmt == "keras":
        target = dest_dir / f"{name}.keras"
        model.save(str(target))
    elif fmt == "keras-h5":
        target = dest_dir / f"{name}.h5"
        model.save(str(target))
    elif fmt == "keras-h5-weights":
        target = dest_dir / f"{name}.weights.h5"
        model.save_weights(str(target))
    elif fmt == "tf-savedmodel":
        target = dest_dir / name
        model.export(str(target), format="tf_saved_model")
        return SavedFiles(
            fmt, "keras", keras.__version__, files_under(dest_dir, target), extra, Path(name)
        )
    else:
        raise UnknownFormatError(
            f"Keras models save as keras, keras-h5, keras-h5-weights or tf-savedmodel, not {fmt!r}"
        )
    return SavedFiles(fmt, "keras", keras.__version__, [target.relative_to(dest_dir)], extra)
