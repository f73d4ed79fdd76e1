"""Build an architecture from ``arch=`` and fit a state dict into it.

``arch`` is a callable (a class or factory) or a dotted path: ``"mypkg.nets:Net"``,
``"mypkg.nets.Net"`` or ``"torchvision.models.vgg16"``. It is called with no arguments, or
with ``arch_kwargs``.

Fitting a state dict is forgiving about how checkpoints are usually written and strict about
what matters:

* wrappers are unwrapped: ``{"state_dict": ...}``, ``{"model_state_dict": ...}``,
  ``{"model": ...}`` (checkpoints that also hold ``optimizer``, ``epoch``...), a pickled
  module is replaced by its ``state_dict()``;
* prefixes are stripped when that makes more keys match: ``module.`` (``DataParallel`` /
  ``DistributedDataParallel``) and ``_orig_mod.`` (``torch.compile``), at the start or in
  the middle of keys;
* shapes are compared before torch sees anything (``load_state_dict(strict=False)`` still
  raises on a shape mismatch), and missing, unexpected and shape-mismatched keys are reported
  together in one ``ArchitectureMismatchError``.

The module is returned in whatever mode the architecture built it (``nn.Module`` starts in
training mode); call ``.eval()`` before inference.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ArchitectureMismatchError, MissingDependencyError

__all__ = [
    "WRAPPER_KEYS",
    "build_arch",
    "extract_state_dict",
    "fit_state_dict",
    "importable_path",
    "load_into_arch",
    "resolve_arch",
]

logger = logging.getLogger("colabmodels")

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module")
_LIST_LIMIT = 20


def resolve_arch(arch: str | Callable[..., Any]) -> Callable[..., Any]:
    """Turn ``arch`` into the callable that builds the model.

    Raises:
        MissingDependencyError: the module cannot be imported (not installed).
        ArchitectureMismatchError: the module has no such attribute, or it is not callable.
    """
    if callable(arch):
        return arch
    if not isinstance(arch, str) or not arch.strip():
        raise ArchitectureMismatchError(
            f"arch must be a callable or a dotted path like 'mypkg.nets:Net', not {arch!r}"
        )
    text = arch.strip()
    if ":" in text:
        module_name, _, attr_path = text.partition(":")
        module = _import(module_name, text)
        return _attr(module, attr_path, text)
    parts = text.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
                continue  # this prefix is not a module; try a shorter one
            raise MissingDependencyError(
                f"arch {text!r}: importing {module_name} needs {e.name}, which is not installed "
                f"(pip install {(e.name or '').split('.')[0]})"
            ) from e
        return _attr(module, ".".join(parts[i:]), text)
    top = parts[0]
    raise MissingDependencyError(
        f"arch {text!r}: cannot import {top}; is it installed (pip install {top}) and on sys.path?"
    )


def _import(module_name: str, text: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise MissingDependencyError(
            f"arch {text!r}: cannot import {module_name} ({e.name} is missing; "
            f"pip install {(e.name or module_name).split('.')[0]}, or check sys.path)"
        ) from e


def _attr(module: Any, attr_path: str, text: str) -> Callable[..., Any]:
    obj = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ArchitectureMismatchError(
                f"arch {text!r}: {getattr(module, '__name__', module)} has no {attr_path!r}"
            ) from None
    if not callable(obj):
        raise ArchitectureMismatchError(f"arch {text!r} is not callable")
    return obj


def build_arch(arch: str | Callable[..., Any], arch_kwargs: Mapping[str, Any] | None = None) -> Any:
    """Build the model: ``resolve_arch(arch)(**arch_kwargs)``.

    Raises:
        MissingDependencyError, ArchitectureMismatchError: see ``resolve_arch``.
    """
    factory = resolve_arch(arch)
    try:
        return factory(**dict(arch_kwargs or {}))
    except TypeError as e:
        raise ArchitectureMismatchError(
            f"could not build the architecture {getattr(factory, '__qualname__', factory)!r}: {e}. "
            "If it needs constructor arguments, pass arch_kwargs={...} or arch= a callable such "
            "as functools.partial(Net, num_classes=10)."
        ) from e


def importable_path(cls: type) -> str | None:
    """``"module:QualName"`` when importing it gives back ``cls``; None for classes defined
    in ``__main__``, inside functions, or otherwise not reachable by import."""
    module_name, qualname = cls.__module__, cls.__qualname__
    if module_name == "__main__" or "<locals>" in qualname:
        return None
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return f"{module_name}:{qualname}" if obj is cls else None


def _is_tensor_like(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _looks_like_state_dict(obj: Any) -> bool:
    if not isinstance(obj, Mapping) or not obj:
        return False
    values = list(obj.values())
    return any(_is_tensor_like(v) for v in values) and not any(
        isinstance(v, Mapping) for v in values
    )


def extract_state_dict(obj: Any) -> tuple[dict[str, Any], list[str]]:
    """Find the state dict in a loaded checkpoint.

    Returns:
        ``(state_dict, notes)``; ``notes`` says which wrappers were unwrapped.

    Raises:
        ArchitectureMismatchError: nothing in ``obj`` looks like a state dict.
    """
    notes: list[str] = []
    current = obj
    for _ in range(4):
        if hasattr(current, "state_dict") and callable(current.state_dict):
            notes.append(f"took state_dict() of the pickled {type(current).__name__}")
            current = current.state_dict()
            continue
        if hasattr(current, "state_dict") and isinstance(current.state_dict, Mapping):
            notes.append(f"took .state_dict of the {type(current).__name__}")
            current = current.state_dict
            continue
        if _looks_like_state_dict(current):
            return dict(current), notes
        if isinstance(current, Mapping):
            for key in WRAPPER_KEYS:
                inner = current.get(key)
                if isinstance(inner, Mapping) or hasattr(inner, "state_dict"):
                    notes.append(f"unwrapped {key!r}")
                    current = inner
                    break
            else:
                break
        else:
            break
    if isinstance(current, Mapping):
        keys = ", ".join(map(str, list(current)[:_LIST_LIMIT]))
        raise ArchitectureMismatchError(
            f"cannot find a state dict in this checkpoint; its top-level keys are: {keys}"
        )
    raise ArchitectureMismatchError(
        f"cannot load a {type(current).__name__} into an architecture; expected a state dict"
    )


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def _strip_transforms(expected: set[str]) -> list[tuple[str, Callable[[str], str]]]:
    def strip_leading(prefix: str) -> Callable[[str], str]:
        return lambda k: k[len(prefix) :] if k.startswith(prefix) else k

    def drop_segment(segment: str) -> Callable[[str], str]:
        return lambda k: ".".join(p for p in k.split(".") if p != segment)

    out = []
    for seg in ("module", "_orig_mod"):
        out.append((f"stripped prefix '{seg}.'", strip_leading(seg + ".")))
        if not any(seg in k.split(".") for k in expected):
            out.append((f"removed '{seg}' from inside keys", drop_segment(seg)))
    return out


def _normalise_keys(sd: dict[str, Any], expected: set[str], notes: list[str]) -> dict[str, Any]:
    """Apply prefix/segment stripping while it makes more keys match the model."""
    transforms = _strip_transforms(expected)
    for _ in range(6):
        score = len(expected & sd.keys())
        best = None
        for label, fn in transforms:
            renamed = {fn(k): v for k, v in sd.items()}
            if len(renamed) != len(sd):
                continue  # stripping would merge keys
            gain = len(expected & renamed.keys())
            if gain > score and (best is None or gain > best[0]):
                best = (gain, label, renamed)
        if best is None:
            break
        notes.append(best[1])
        sd = best[2]
    return sd


def _listing(title: str, items: list[str]) -> str:
    shown = items[:_LIST_LIMIT]
    more = f" ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return f"  {title} ({len(items)}): " + ", ".join(shown) + more


def fit_state_dict(
    model: Any,
    checkpoint: Any,
    *,
    strict: bool = True,
    source: str = "the file",
    arch_name: str | None = None,
) -> Any:
    """Load ``checkpoint`` (a state dict or a wrapper around one) into a torch module.

    Args:
        model: the built ``torch.nn.Module``.
        checkpoint: a state dict, a checkpoint dict wrapping one, or a module.
        strict: refuse missing or unexpected keys (shape mismatches are always refused).
        source: how to name the checkpoint in messages.
        arch_name: how to name the architecture in messages.

    Returns:
        ``model``, with the weights loaded (its train/eval mode untouched).

    Raises:
        ArchitectureMismatchError: keys or shapes do not fit; the message lists missing,
            unexpected and shape-mismatched keys together. The error also carries
            ``missing``, ``unexpected`` and ``mismatched`` attributes.
    """
    if not hasattr(model, "load_state_dict") or not hasattr(model, "state_dict"):
        raise ArchitectureMismatchError(
            f"arch built a {type(model).__name__}, which has no load_state_dict(); "
            "arch= must build a torch.nn.Module for this file"
        )
    sd, notes = extract_state_dict(checkpoint)
    expected = model.state_dict()
    sd = _normalise_keys(sd, set(expected), notes)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = []
    for k, v in sd.items():
        if k in expected:
            want, got = _shape(expected[k]), _shape(v)
            if want is not None and got is not None and want != got:
                mismatched.append(f"{k}: file {got} vs model {want}")
    name = arch_name or type(model).__name__
    if mismatched or (strict and (missing or unexpected)):
        lines = [
            f"the state dict in {source} does not fit {name} "
            f"({len(expected)} keys in the model, {len(sd)} in the file):"
        ]
        if missing:
            lines.append(_listing("missing from the file", missing))
        if unexpected:
            lines.append(_listing("unexpected in the file", unexpected))
        if mismatched:
            lines.append(_listing("shape mismatch", mismatched))
        if notes:
            lines.append("  (" + "; ".join(notes) + ")")
        if not mismatched:
            lines.append("Pass strict=False to load the keys that do match.")
        err = ArchitectureMismatchError("\n".join(lines))
        err.missing = missing  # type: ignore[attr-defined]
        err.unexpected = unexpected  # type: ignore[attr-defined]
        err.mismatched = mismatched  # type: ignore[attr-defined]
        raise err
    if missing or unexpected:
        logger.warning(
            "loading %s into %s with strict=False: %d missing, %d unexpected keys",
            source,
            name,
            len(missing),
            len(unexpected),
        )
    if notes:
        logger.info("fitted %s into %s: %s", source, name, "; ".join(notes))
    try:
        model.load_state_dict(sd, strict=strict)
    except RuntimeError as e:  # dtype or anything torch still objects to
        raise ArchitectureMismatchError(
            f"the state dict in {source} does not fit {name}: {e}"
        ) from e
    return model


def load_into_arch(
    arch: str | Callable[..., Any],
    checkpoint: Any,
    *,
    arch_kwargs: Mapping[str, Any] | None = None,
    strict: bool = True,
    source: str = "the file",
) -> Any:
    """Build ``arch`` and fit ``checkpoint`` into it; see ``fit_state_dict``.

    Raises:
        MissingDependencyError, ArchitectureMismatchError: see ``resolve_arch`` and
            ``fit_state_dict``.
    """
    model = build_arch(arch, arch_kwargs)
    arch_name = arch if isinstance(arch, str) else getattr(arch, "__qualname__", repr(arch))
    return fit_state_dict(model, checkpoint, strict=strict, source=source, arch_name=arch_name)
