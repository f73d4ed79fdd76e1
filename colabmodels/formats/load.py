"""Load a sniffed file with the right framework, safely by default.

Formats that run no code load straight away. Formats that would run code from the file
(``executes_code``) raise :class:`~colabmodels.errors.UntrustedFormatError` naming what would
run, unless the caller passed ``trust=True``; nothing here ever falls back to an unsafe load on
its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UnknownFormatError, UntrustedFormatError
from .arch import build_arch, load_into_arch
from .gensim_io import load_gensim, load_word2vec
from .info import FormatInfo
from .keras_io import load_keras
from .onnx_io import load_onnx
from .safetensors_io import load_safetensors
from .sniff import sniff_format
from .tf_io import load_checkpoint, load_savedmodel
from .torch_io import load_torch

__all__ = ["load_path"]

logger = logging.getLogger("colabmodels")

_ALIASES = {
    "tf": "tensorflow",
    "pytorch": "torch",
    "pt": "torch",
    "np": "numpy",
    "ort": "onnxruntime",
}
_COMPATIBLE = {
    "keras": {"keras", "tensorflow"},
    "tensorflow": {"tensorflow", "keras"},
    "torch": {"torch"},
    "safetensors": {"safetensors", "torch", "numpy", "tensorflow", "keras"},
    "gensim": {"gensim"},
    "onnx": {"onnx", "onnxruntime"},
}
_NEEDS_MODEL = {"keras-h5-weights", "tf-checkpoint"}
_FULL_MODELS = {
    "keras",
    "keras-h5",
    "tf-savedmodel",
    "gensim",
    "word2vec-text",
    "word2vec-binary",
    "onnx",
}


def _untrusted_message(path: Path, info: FormatInfo) -> str:
    what = info.would_run
    shown = ", ".join(what[:10]) + (f" (and {len(what) - 10} more)" if len(what) > 10 else "")
    return (
        f"Loading {path} ({info.name}) would run code stored in the file: {shown or 'unknown'}. "
        "Pass trust=True (--trust) only if you trust where it came from."
    )


def load_path(
    path: str | Path,
    *,
    info: FormatInfo | None = None,
    framework: str | None = None,
    arch: str | Callable[..., Any] | None = None,
    trust: bool = False,
    map_location: Any = "cpu",
    **loader_kwargs: Any,
) -> Any:
    """Load the model in a local file or folder.

    Args:
        path: what :func:`~colabmodels.formats.sniff_format` accepts.
        info: the result of an earlier ``sniff_format(path)``, to skip sniffing again.
        framework: insist on a framework; for safetensors it picks the tensor type
            (``"torch"`` by default, ``"numpy"``, ``"tensorflow"``); for ONNX
            ``"onnxruntime"`` returns an ``InferenceSession`` instead of the ``ModelProto``.
        arch: a callable or dotted path (``"mypkg.nets:Net"``) that builds the architecture:
            torch state dicts (``torch-state-dict``, ``safetensors``, and modules loaded with
            trust) are fitted into it; for ``keras-h5-weights`` and ``tf-checkpoint`` it
            builds the model to receive the weights.
        trust: allow formats that execute code from the file.
        map_location: torch device for loaded tensors (default CPU).
        **loader_kwargs: per-format options: ``model`` (a built Keras model / tf.Module
            for weights and checkpoints), ``arch_kwargs``, ``strict`` (torch state dicts),
            ``compile``/``custom_objects`` (Keras), ``saved_model_api``/``call_endpoint``
            (SavedModel), ``checkpoint_key`` (tf checkpoints), ``mmap`` (gensim),
            ``limit``... (word2vec).

    Returns:
        The model: ``keras.Model``; ``keras.layers.TFSMLayer`` or a loaded SavedModel;
        the restored ``model``; a torch state dict (dict of tensors) or ``nn.Module``;
        a ``torch.jit.ScriptModule``; an ``ExportedProgram``; a dict of tensors; a gensim
        model or ``KeyedVectors``; an ``onnx.ModelProto``. Torch modules built from ``arch``
        keep the mode the architecture built them in (call ``.eval()`` for inference).

    Raises:
        UntrustedFormatError: the format executes code and ``trust`` is False.
        UnknownFormatError: unrecognised bytes, or ``framework`` cannot load this format.
        ArchitectureMismatchError: the weights do not fit ``arch``/``model``, or a weights-only
            format got neither.
        MissingDependencyError: the framework is not installed (the message names the extra).
        NotFoundError: the path, gensim sidecars or checkpoint shards are missing.
        UnsafeArchiveError: a zip archive with path tricks or absurd sizes.
    """
    p = Path(path).expanduser()
    if info is None:
        info = sniff_format(p)
    fw = _ALIASES.get(framework.lower(), framework.lower()) if framework else None
    if fw is not None and fw not in _COMPATIBLE.get(info.framework, {info.framework}):
        raise UnknownFormatError(
            f"{p} is {info.name} (a {info.framework} format); framework={framework!r} cannot load it"
        )
    if info.executes_code and not trust:
        raise UntrustedFormatError(_untrusted_message(p, info), would_run=info.would_run)

    target = Path(info.details.get("file") or info.details.get("folder") or p)
    model = loader_kwargs.pop("model", None)
    if info.name in _NEEDS_MODEL and model is None and arch is not None:
        model = build_arch(arch, loader_kwargs.pop("arch_kwargs", None))
        arch = None
    if arch is not None and info.name in _FULL_MODELS:
        logger.warning("arch= is ignored for %s files, which hold a full model", info.name)
        arch = None
    logger.debug("loading %s as %s", target, info.name)

    name = info.name
    if name in ("keras", "keras-h5", "keras-h5-weights"):
        return load_keras(target, info, trust=trust, model=model, **loader_kwargs)
    if name == "tf-savedmodel":
        return load_savedmodel(target, info, **loader_kwargs)
    if name == "tf-checkpoint":
        return load_checkpoint(info, model=model, **loader_kwargs)
    if name in ("torch-state-dict", "torch-pickle", "torchscript", "torch-export"):
        return load_torch(
            target, info, trust=trust, map_location=map_location, arch=arch, **loader_kwargs
        )
    if name == "safetensors":
        tensors = load_safetensors(target, framework=fw, map_location=map_location)
        if arch is None:
            return tensors
        if fw not in (None, "torch", "safetensors"):
            raise UnknownFormatError(
                f"arch= builds a torch module; framework={framework!r} clashes"
            )
        return load_into_arch(
            arch,
            tensors,
            arch_kwargs=loader_kwargs.get("arch_kwargs"),
            strict=loader_kwargs.get("strict", True),
            source=str(target),
        )
    if name == "gensim":
        return load_gensim(target, info, **loader_kwargs)
    if name in ("word2vec-text", "word2vec-binary"):
        return load_word2vec(target, info, **loader_kwargs)
    if name == "onnx":
        return load_onnx(target, framework=fw, **loader_kwargs)
    raise UnknownFormatError(f"no loader for format {name!r}")
