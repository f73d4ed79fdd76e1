"""Save a model object in the format its framework recommends.

The object's kind is recognised without importing anything: an object of a torch class can
only exist once torch is imported, so ``isinstance`` checks run only against frameworks
already in ``sys.modules``.

=============================  =====================  ========================================
object                         default format         written
=============================  =====================  ========================================
``keras.Model``                ``keras``              ``NAME.keras``
``torch.nn.Module``            ``safetensors``        ``NAME.safetensors`` (state dict) and
                                                      ``extra["arch"]``
``torch.jit.ScriptModule``     ``torchscript``        ``NAME.pt``
``torch.export.ExportedProgram`` ``torch-export``     ``NAME.pt2``
``dict[str, torch.Tensor]``    ``safetensors``        ``NAME.safetensors``
``dict[str, numpy.ndarray]``   ``safetensors``        ``NAME.safetensors``
gensim ``SaveLoad`` objects    ``gensim``             ``NAME/NAME.model`` + sidecars
``tf.Module``                  ``tf-savedmodel``      ``NAME/`` SavedModel folder
``onnx.ModelProto``            ``onnx``               ``NAME.onnx``
=============================  =====================  ========================================
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import OptionError, UnknownFormatError
from .dependencies import loaded_module, require
from .gensim_io import save_gensim
from .info import FORMAT_NAMES, SavedFiles
from .keras_io import save_keras
from .onnx_io import save_onnx
from .safetensors_io import save_tensor_dict
from .tf_io import save_tf_module
from .torch_io import save_torch

__all__ = ["object_kind", "save_object"]

logger = logging.getLogger("colabmodels")


def object_kind(obj: Any) -> str | None:
    """``"keras"``, ``"torch"``, ``"gensim"``, ``"tensorflow"``, ``"onnx"``, ``"numpy"``
    (a dict of arrays) or None, without importing any framework."""
    keras = loaded_module("keras")
    if keras is not None and isinstance(obj, keras.Model):
        return "keras"
    torch = loaded_module("torch")
    if torch is not None:
        exported = getattr(getattr(torch, "export", None), "ExportedProgram", None)
        if isinstance(obj, torch.nn.Module) or (exported is not None and isinstance(obj, exported)):
            return "torch"
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return "torch"
    gensim_utils = loaded_module("gensim.utils")
    if gensim_utils is not None and isinstance(obj, gensim_utils.SaveLoad):
        return "gensim"
    tf = loaded_module("tensorflow")
    if tf is not None and isinstance(obj, tf.Module):
        return "tensorflow"
    onnx = loaded_module("onnx")
    if onnx is not None and isinstance(obj, onnx.ModelProto):
        return "onnx"
    np = loaded_module("numpy")
    if (
        np is not None
        and isinstance(obj, dict)
        and obj
        and all(isinstance(v, np.ndarray) for v in obj.values())
    ):
        return "numpy"
    return None


def save_object(
    obj: Any,
    dest_dir: str | Path,
    *,
    format: str | None = None,
    name: str = "model",
    **save_kwargs: Any,
) -> SavedFiles:
    """Write ``obj`` into ``dest_dir`` and say exactly which files were written.

    Args:
        obj: a Keras model, torch module / ScriptModule / ExportedProgram, dict of torch
            tensors or numpy arrays, gensim model or KeyedVectors, ``tf.Module``, or
            ``onnx.ModelProto``.
        dest_dir: the folder to write into (created if needed).
        format: a format name from ``FORMAT_NAMES``; None picks
            the framework's recommended one (see the table in this module).
        name: the base name of the written file or folder.
        **save_kwargs: passed to the framework's save for gensim (e.g. ``sep_limit``).

    Returns:
        ``SavedFiles`` with the format, framework and its version,
        the files (relative to ``dest_dir``) and extra manifest facts (``arch`` for torch).

    Raises:
        UnknownFormatError: an object of an unsupported type, or a format it cannot be saved
            as.
        FileExistsError: the target file or folder already exists.
        MissingDependencyError: a library needed to write the format is missing.
    """
    if format is not None and format not in FORMAT_NAMES:
        raise UnknownFormatError(
            f"unknown format {format!r}; formats are: {', '.join(FORMAT_NAMES)}"
        )
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"name must be a plain file name, not {name!r}")
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    existing = [p.name for p in dest.iterdir() if p.name == name or p.name.startswith(name + ".")]
    if existing:
        raise FileExistsError(
            f"{dest} already holds {', '.join(sorted(existing))}; save into an empty folder "
            "or pick another name="
        )
    kind = object_kind(obj)
    if kind != "gensim" and save_kwargs:
        raise OptionError(
            f"unexpected save options for a {kind or type(obj).__name__} object: "
            f"{', '.join(save_kwargs)}"
        )
    if kind == "keras":
        saved = save_keras(obj, dest, name, format)
    elif kind == "torch":
        saved = save_torch(obj, dest, name, format)
    elif kind == "gensim":
        saved = save_gensim(obj, dest, name, format, **save_kwargs)
    elif kind == "tensorflow":
        saved = save_tf_module(obj, dest, name, format)
    elif kind == "onnx":
        if format not in (None, "onnx"):
            raise UnknownFormatError(f"ONNX models save as onnx, not {format!r}")
        target = dest / f"{name}.onnx"
        version = save_onnx(obj, target)
        saved = SavedFiles("onnx", "onnx", version, [target.relative_to(dest)], {})
    elif kind == "numpy":
        if format not in (None, "safetensors"):
            raise UnknownFormatError(f"a dict of numpy arrays saves as safetensors, not {format!r}")
        np = require("numpy")
        target = dest / f"{name}.safetensors"
        save_tensor_dict(obj, target, kind="numpy")
        saved = SavedFiles(
            "safetensors", "numpy", str(np.__version__), [target.relative_to(dest)], {}
        )
    else:
        raise UnknownFormatError(
            f"cannot save a {type(obj).__module__}.{type(obj).__qualname__}: colabmodels saves "
            "Keras models, torch modules and tensor dicts, gensim models, tf.Module objects "
            "and ONNX models"
        )
    logger.info(
        "saved %s as %s: %s", type(obj).__name__, saved.format, ", ".join(map(str, saved.files))
    )
    return saved
