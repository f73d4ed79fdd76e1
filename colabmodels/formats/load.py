"""Load a sniffed file with the right framework, safely by default.

Formats that run no code load straight away. Formats that would run code from the file
(``executes_code``) raise ``UntrustedFormatError`` naming what would
run, unless the caller passed ``trust=True``; nothing here ever falls back to an unsafe load on
its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ColabModelsError, OptionError, UnknownFormatError, UntrustedFormatError
from .arch import build_arch, load_into_arch
from .gensim_io import load_gensim, load_word2vec
from .info import FormatInfo
from .keras_io import load_keras
from .names import DisplayNames
from .onnx_io import ONNX_OPTIONS, ORT_OPTIONS, load_onnx
from .safetensors_io import load_safetensors
from .sniff import sniff_format
from .tf_io import CHECKPOINT_OPTIONS, load_checkpoint, load_savedmodel
from .torch_io import load_torch
from .versions import check_running_version

__all__ = ["LOADER_OPTIONS", "load_path"]

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
_TORCH_OPTIONS = ("arch_kwargs", "strict")
_WORD2VEC_OPTIONS = (
    "fvocab",
    "binary",
    "encoding",
    "unicode_errors",
    "limit",
    "datatype",
    "no_header",
)
LOADER_OPTIONS: dict[str, tuple[str, ...]] = {
    "keras": ("compile", "custom_objects"),
    "keras-h5": ("compile", "custom_objects"),
    "keras-h5-weights": ("model", "skip_mismatch", "arch_kwargs"),
    "tf-savedmodel": ("saved_model_api", "call_endpoint"),
    "tf-checkpoint": ("model", *CHECKPOINT_OPTIONS),
    "torch-state-dict": _TORCH_OPTIONS,
    "torch-pickle": _TORCH_OPTIONS,
    "torchscript": _TORCH_OPTIONS,
    "torch-export": _TORCH_OPTIONS,
    "safetensors": _TORCH_OPTIONS,
    "gensim": ("mmap",),
    "word2vec-text": _WORD2VEC_OPTIONS,
    "word2vec-binary": _WORD2VEC_OPTIONS,
    "onnx": (*ONNX_OPTIONS, *ORT_OPTIONS),
}
"""The ``**loader_kwargs`` each format takes; anything else is a ``TypeError``. (ONNX
takes the onnx options, or with ``framework="onnxruntime"`` the onnxruntime ones.)"""


def _check_options(info: FormatInfo, given: dict[str, Any], fw: str | None) -> None:
    accepted = LOADER_OPTIONS.get(info.name, ())
    if info.name == "onnx":
        accepted = ORT_OPTIONS if fw == "onnxruntime" else ONNX_OPTIONS
    wrong = sorted(k for k in given if k not in accepted)
    if wrong:
        raise OptionError(
            f"unexpected option{'s' if len(wrong) > 1 else ''} {', '.join(map(repr, wrong))} "
            f"for a {info.name} file; it accepts: {', '.join(accepted) or 'no options'} "
            "(plus framework, arch, trust, map_location)"
        )


def _untrusted_message(name: str, info: FormatInfo) -> str:
    what = info.would_run
    shown = ", ".join(what[:10]) + (f" (and {len(what) - 10} more)" if len(what) > 10 else "")
    return (
        f"Loading {name} ({info.name}) would run code stored in the file: {shown or 'unknown'}. "
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
    source: str | None = None,
    **loader_kwargs: Any,
) -> Any:
    """Load the model in a local file or folder.

    Args:
        path: what ``sniff_format`` accepts.
        info: the result of an earlier ``sniff_format(path)``, to skip sniffing again.
        framework: insist on a framework; for safetensors it picks the tensor type
            (``"torch"`` by default, ``"numpy"``, ``"tensorflow"``); for ONNX
            ``"onnxruntime"`` returns an ``InferenceSession`` instead of the ``ModelProto``.
        arch: a callable or dotted path (``"mypkg.nets:Net"``) that builds the architecture:
            torch state dicts (``torch-state-dict``, ``safetensors``, and modules loaded with
            trust) are fitted into it; for ``keras-h5-weights`` and ``tf-checkpoint`` it
            builds the model to receive the weights.
        trust: allow formats that execute code from the file, and formats whose safety
            relies on a framework guard the running framework version lacks (see
            ``colabmodels.formats.versions``).
        map_location: torch device for loaded tensors (default CPU).
        source: what the user passed for ``path`` when ``path`` is a local copy (a link,
            ``MyDrive/...``, ``gs://...``); error messages name it first, the local copy
            after it.
        **loader_kwargs: per-format options, listed in ``LOADER_OPTIONS``: ``model`` (a
            built Keras model / tf.Module for weights and checkpoints), ``checkpoint`` (a
            ``tf.train.Checkpoint``), ``checkpoint_key``, ``arch_kwargs``, ``strict`` (torch
            state dicts), ``compile``/``custom_objects`` (Keras), ``skip_mismatch`` (Keras
            weights), ``saved_model_api``/``call_endpoint`` (SavedModel), ``mmap`` (gensim),
            ``limit``/``encoding``/... (word2vec), ``load_external_data`` (onnx),
            ``providers``/``sess_options``/... (onnxruntime).

    Returns:
        The model: ``keras.Model``; ``keras.layers.TFSMLayer`` or a loaded SavedModel;
        the restored ``model`` (or ``checkpoint``); a torch state dict (dict of tensors) or
        ``nn.Module``; a ``torch.jit.ScriptModule``; an ``ExportedProgram``; a dict of
        tensors; a gensim model or ``KeyedVectors``; an ``onnx.ModelProto``. Torch modules
        built from ``arch`` keep the mode the architecture built them in (call ``.eval()``
        for inference).

    Raises:
        OptionError: an option this format does not take (the message lists those it does).
        UntrustedFormatError: the format executes code, or the running framework predates a
            fix its safe loading relies on, and ``trust`` is False.
        UnknownFormatError: unrecognised bytes; ``framework`` cannot load this format; or
            the framework could not read a file that looked like the format (damaged or
            incomplete).
        ArchitectureMismatchError: the weights do not fit ``arch``/``model``, or a weights-only
            format got neither.
        MissingDependencyError: the framework is not installed (the message names the extra).
        NotFoundError: the path, gensim sidecars, checkpoint shards or ONNX external data
            are missing.
        UnsafeArchiveError: a zip archive with path tricks or absurd sizes; ONNX external
            data outside the model's folder.
    """
    p = Path(path).expanduser()
    names = DisplayNames(p, source)
    if info is None:
        info = sniff_format(p, source=source)
    fw = _ALIASES.get(framework.lower(), framework.lower()) if framework else None
    if fw is not None and fw not in _COMPATIBLE.get(info.framework, {info.framework}):
        raise UnknownFormatError(
            f"{names(p)} is {info.name} (a {info.framework} format); framework={framework!r} "
            "cannot load it"
        )
    _check_options(info, loader_kwargs, fw)
    if info.executes_code and not trust:
        raise UntrustedFormatError(_untrusted_message(names(p), info), would_run=info.would_run)
    check_running_version(info, trust=trust, name=names(p))

    target = Path(info.details.get("file") or info.details.get("folder") or p)
    model = loader_kwargs.pop("model", None)
    if info.name in _NEEDS_MODEL and model is None and arch is not None:
        model = build_arch(arch, loader_kwargs.pop("arch_kwargs", None))
        arch = None
    if arch is not None and info.name in _FULL_MODELS:
        logger.warning("arch= is ignored for %s files, which hold a full model", info.name)
        arch = None
    logger.debug("loading %s as %s", target, info.name)
    try:
        return _dispatch(
            target, info, names, fw, framework, arch, model, trust, map_location, loader_kwargs
        )
    except ColabModelsError:
        raise
    except Exception as e:  # the framework choked on bytes that looked like its format
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise UnknownFormatError(
            f"{names(target)} looks like {info.name} but {info.framework} could not load it "
            f"({type(e).__name__}: {first}). The file may be damaged or incomplete: fetch it "
            "again, or check that it is the file you meant."
        ) from e


def _dispatch(
    target: Path,
    info: FormatInfo,
    names: DisplayNames,
    fw: str | None,
    framework: str | None,
    arch: Any,
    model: Any,
    trust: bool,
    map_location: Any,
    loader_kwargs: dict[str, Any],
) -> Any:
    name = info.name
    shown = names(target)
    if name in ("keras", "keras-h5", "keras-h5-weights"):
        return load_keras(target, info, trust=trust, model=model, name=shown, **loader_kwargs)
    if name == "tf-savedmodel":
        return load_savedmodel(target, info, **loader_kwargs)
    if name == "tf-checkpoint":
        return load_checkpoint(info, model=model, name=shown, **loader_kwargs)
    if name in ("torch-state-dict", "torch-pickle", "torchscript", "torch-export"):
        return load_torch(
            target,
            info,
            trust=trust,
            map_location=map_location,
            arch=arch,
            name=shown,
            **loader_kwargs,
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
            source=shown,
        )
    if name == "gensim":
        return load_gensim(target, info, source=names.source_of(target), **loader_kwargs)
    if name in ("word2vec-text", "word2vec-binary"):
        return load_word2vec(target, info, **loader_kwargs)
    if name == "onnx":
        return load_onnx(target, framework=fw, source=shown, **loader_kwargs)
    raise UnknownFormatError(f"no loader for format {name!r}")
