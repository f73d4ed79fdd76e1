"""torch: recognise ``torch.save`` / TorchScript / ``torch.export`` files, load and save them.

Recognition (no torch import):

* a zip whose members sit under one folder ``R/`` with ``R/constants.pkl`` is TorchScript,
  with or without ``R/code/``: that is how ``torch.load`` itself decides to hand an archive
  to ``torch.jit.load`` (``torch.serialization._is_torchscript_zip``), so a ``torch.save``
  file with a ``constants.pkl`` added is code, whatever its ``data.pkl`` holds; with
  ``R/archive_format`` (or ``R/models/*.json``) it is a ``torch.export`` ``.pt2``; with
  ``R/data.pkl`` it is a ``torch.save`` file;
* a pickle stream starting with torch's legacy magic number is a pre-1.6 ``torch.save`` file
  (magic, protocol version, system info, then the object pickle).

A ``torch.save`` file is a ``torch-state-dict`` when every global its object pickle names is
one ``torch.load(weights_only=True)`` accepts (tensors, storages, dtypes, OrderedDict...), and
a ``torch-pickle`` (a full model or custom objects: importing and calling those globals runs
code) otherwise. numpy scalars, arrays and dtypes (``"best_acc": np.float64(0.9)`` in a
checkpoint dict) count as state-dict content: they are added to ``weights_only``'s allowlist
for that one load. State dicts always load through ``weights_only=True``, which has the last
word.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

from ..errors import UnknownFormatError, UntrustedFormatError
from .arch import importable_path, load_into_arch
from .dependencies import require
from .info import FormatInfo, SavedFiles
from .paths import with_suffix
from .safetensors_io import save_tensor_dict
from .safety import (
    PickleScan,
    is_numpy_safe_global,
    is_torch_safe_global,
    read_member,
    scan_pickle,
)

__all__ = [
    "LEGACY_MAGIC",
    "classify_torch_pickle",
    "inspect_torch_zip",
    "load_torch",
    "save_torch",
]

logger = logging.getLogger("colabmodels")

_IN_MEMORY_PICKLE = 256 * 1024**2
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The first pickled value of a pre-1.6 (non-zip) ``torch.save`` file."""


def classify_torch_pickle(scan: PickleScan, container: str) -> FormatInfo:
    """``torch-state-dict`` or ``torch-pickle``, from the globals of the object pickle."""
    unsafe = [g for g in scan.globals if not is_torch_safe_global(g)]
    if scan.error:
        unsafe.append(f"<unreadable pickle: {scan.error}>")
    details: dict[str, Any] = {"container": container, "globals": list(scan.globals)}
    if container == "legacy":
        details["legacy"] = True
    if not unsafe:
        return FormatInfo("torch-state-dict", "torch", False, details)
    details["unsafe_globals"] = unsafe
    details["would_run"] = unsafe
    return FormatInfo("torch-pickle", "torch", True, details)


def inspect_torch_zip(zf: zipfile.ZipFile, names: list[str]) -> FormatInfo | None:
    """Describe a torch zip archive, or None when the zip is not one."""
    roots = {n.split("/", 1)[0] for n in names if "/" in n}
    # torch reads the archive under the first member's folder; any folder with a
    # constants.pkl is treated as TorchScript (a superset of what torch.load dispatches).
    ordered = sorted(roots, key=lambda r: (f"{r}/constants.pkl" not in names, r))
    for root in ordered:
        members = [n for n in names if n.startswith(root + "/")]
        if f"{root}/constants.pkl" in names:
            code = sorted(
                n[len(root) + len("/code/") : -3].replace("/", ".")
                for n in members
                if n.startswith(f"{root}/code/") and n.endswith(".py")
            )
            would_run = [f"TorchScript code {c}" for c in code] or [
                "TorchScript (torch.load hands archives with a constants.pkl to torch.jit.load)"
            ]
            return FormatInfo(
                "torchscript", "torch", True, {"root": root, "code": code, "would_run": would_run}
            )
        models = [n for n in members if n.startswith(f"{root}/models/") and n.endswith(".json")]
        if f"{root}/archive_format" in names or models:
            archive_format = None
            if f"{root}/archive_format" in names:
                archive_format = (
                    read_member(zf, f"{root}/archive_format", limit=1024)
                    .decode("utf-8", "replace")
                    .strip()
                )
            return FormatInfo(
                "torch-export",
                "torch",
                True,
                {
                    "root": root,
                    "archive_format": archive_format,
                    "models": [m[len(root) + 1 :] for m in models],
                    "would_run": ["the exported torch program"]
                    + [f"program {m[len(root) + 1 :]}" for m in models],
                },
            )
        if f"{root}/data.pkl" in names:
            member = f"{root}/data.pkl"
            if zf.getinfo(member).file_size <= _IN_MEMORY_PICKLE:
                scan = scan_pickle(read_member(zf, member, limit=_IN_MEMORY_PICKLE))
            else:
                with zf.open(member) as f:
                    scan = scan_pickle(f)
            info = classify_torch_pickle(scan, "zip")
            info.details["root"] = root
            return info
    return None


def load_torch(
    path: Path,
    info: FormatInfo,
    *,
    trust: bool,
    map_location: Any = "cpu",
    arch: Any = None,
    name: str | None = None,
    **loader_kwargs: Any,
) -> Any:
    """Load a torch file (the caller has refused untrusted formats without ``trust``).

    * ``torch-state-dict``: ``torch.load(weights_only=True, map_location=...)``.
    * ``torch-pickle``: ``torch.load(weights_only=False)`` (``trust=True`` only).
    * ``torchscript``: ``torch.jit.load``; ``torch-export``: ``torch.export.load``.

    With ``arch``, the loaded state dict (or the loaded module's ``state_dict()``) is fitted
    into a freshly built architecture (see ``colabmodels.formats.arch``); ``arch_kwargs``
    and ``strict`` come from ``loader_kwargs``.

    Raises:
        UntrustedFormatError: ``weights_only=True`` refused a global our scan allowed.
        ArchitectureMismatchError: the state dict does not fit ``arch``.
        MissingDependencyError: torch is not installed.
    """
    torch = require("torch", purpose="load torch models")
    shown = name or str(path)
    name = info.name
    if map_location is None:
        map_location = "cpu"
    if name == "torch-state-dict":
        try:
            # An open file, not a path: torch.load treats paths ending in .safetensors
            # as safetensors, and the name of a downloaded file proves nothing.
            with open(path, "rb") as f, _numpy_allowed(torch, info):
                obj = torch.load(f, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UntrustedFormatError(
                f"torch.load(weights_only=True) refused {shown}: {first}. "
                "Pass trust=True only if you trust where it came from.",
                would_run=info.details.get("globals", []),
            ) from e
    elif name == "torch-pickle":
        if not trust:  # the dispatcher checks too; never load a pickle unasked
            raise UntrustedFormatError(
                f"{shown} needs trust=True", would_run=info.details.get("would_run", [])
            )
        with open(path, "rb") as f:
            obj = torch.load(f, map_location=map_location, weights_only=False)
    elif name == "torchscript":
        obj = torch.jit.load(str(path), map_location=map_location)
    elif name == "torch-export":
        with with_suffix(path, ".pt2") as named:  # torch.export.load insists on the suffix
            obj = torch.export.load(str(named))
    else:
        raise UnknownFormatError(f"{name} is not a torch format")
    if arch is not None:
        return load_into_arch(
            arch,
            obj,
            arch_kwargs=loader_kwargs.get("arch_kwargs"),
            strict=loader_kwargs.get("strict", True),
            source=shown,
        )
    return obj


def _numpy_allowed(torch: Any, info: FormatInfo) -> Any:
    """A context allowing the numpy scalar/array/dtype globals the pickle names, for
    ``weights_only=True`` (torch >= 2.5); a no-op when there are none."""
    names = [g for g in info.details.get("globals", []) if is_numpy_safe_global(g)]
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if not names or safe_globals is None:
        return contextlib.nullcontext()
    require("numpy", purpose="load numpy values stored in this checkpoint")
    allowed: list[Any] = []
    for name in names:
        module, _, attr = name.rpartition(".")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy.core is a deprecated alias in numpy 2
            try:
                allowed.append((getattr(importlib.import_module(module), attr), name))
            except (ImportError, AttributeError):
                continue
    dtypes = importlib.import_module("numpy.dtypes") if "numpy.dtype" in names else None
    if dtypes is not None:  # numpy.dtype(...) builds instances of these classes
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return safe_globals(allowed)


def _is_tensor_dict(obj: Any, torch: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _builds_without_arguments(torch: Any, cls: type) -> bool:
    """Whether ``cls()`` rebuilds the architecture: containers (``nn.Sequential`` and kin) and
    classes whose constructor has required parameters do not, so their name alone is no arch."""
    import inspect

    containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)
    if issubclass(cls, containers):
        return False
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in params)


def save_torch(obj: Any, dest_dir: Path, name: str, fmt: str | None) -> SavedFiles:
    """Save a torch object.

    * ``nn.Module``: ``safetensors`` (default: ``NAME.safetensors`` with the state dict, and
      ``extra["arch"] = "module:QualName"`` when the class can be imported back),
      ``torch-state-dict`` (``NAME.pt`` via ``torch.save(state_dict)``), ``torch-pickle``
      (``NAME.pt``, the whole module; loading it needs ``trust=True``), ``torchscript``.
    * ``torch.jit.ScriptModule``: ``torchscript`` (``NAME.pt``).
    * ``torch.export.ExportedProgram``: ``torch-export`` (``NAME.pt2``).
    * ``dict[str, Tensor]``: ``safetensors`` (default) or ``torch-state-dict``.

    Raises:
        UnknownFormatError: a format this object cannot be saved as.
    """
    torch = require("torch", purpose="save torch models")
    version = str(torch.__version__)
    cls = type(obj)
    extra: dict[str, Any] = {}

    def done(fmt_: str, target: Path) -> SavedFiles:
        return SavedFiles(fmt_, "torch", version, [target.relative_to(dest_dir)], extra)

    exported_type = getattr(getattr(torch, "export", None), "ExportedProgram", None)
    if exported_type is not None and isinstance(obj, exported_type):
        if (fmt or "torch-export") != "torch-export":
            raise UnknownFormatError(f"an ExportedProgram saves as torch-export, not {fmt!r}")
        target = dest_dir / f"{name}.pt2"
        torch.export.save(obj, str(target))
        return done("torch-export", target)
    if isinstance(obj, torch.jit.ScriptModule):
        fmt = fmt or "torchscript"
        if fmt == "torchscript":
            target = dest_dir / f"{name}.pt"
            torch.jit.save(obj, str(target))
            return done(fmt, target)
    if isinstance(obj, torch.nn.Module):
        fmt = fmt or "safetensors"
        extra["class"] = f"{cls.__module__}.{cls.__qualname__}"
        arch = importable_path(cls)
        if fmt in ("safetensors", "torch-state-dict"):
            rebuildable = _builds_without_arguments(torch, cls)
            extra["arch"] = arch if rebuildable else None
            if arch is None:
                logger.warning(
                    "%s is not importable (defined in __main__ or a function); "
                    "pass arch= when loading this state dict back",
                    cls.__qualname__,
                )
            elif not rebuildable:
                logger.warning(
                    "%s cannot be rebuilt without its constructor arguments (a container's "
                    "layers, say); load gives the state dict, or pass arch= (a callable that "
                    "builds the model) to get the model back",
                    cls.__qualname__,
                )
        if fmt == "safetensors":
            target = dest_dir / f"{name}.safetensors"
            save_tensor_dict(obj.state_dict(), target, kind="torch")
            return done(fmt, target)
        if fmt == "torch-state-dict":
            target = dest_dir / f"{name}.pt"
            torch.save(obj.state_dict(), str(target))
            return done(fmt, target)
        if fmt == "torch-pickle":
            target = dest_dir / f"{name}.pt"
            torch.save(obj, str(target))
            return done(fmt, target)
        if fmt == "torchscript":
            target = dest_dir / f"{name}.pt"
            torch.jit.save(torch.jit.script(obj), str(target))
            return done(fmt, target)
        raise UnknownFormatError(
            "torch modules save as safetensors, torch-state-dict, torch-pickle or torchscript, "
            f"not {fmt!r}"
        )
    if _is_tensor_dict(obj, torch):
        fmt = fmt or "safetensors"
        if fmt == "safetensors":
            target = dest_dir / f"{name}.safetensors"
            save_tensor_dict(obj, target, kind="torch")
            return done(fmt, target)
        if fmt == "torch-state-dict":
            target = dest_dir / f"{name}.pt"
            torch.save(obj, str(target))
            return done(fmt, target)
        raise UnknownFormatError(
            f"a dict of tensors saves as safetensors or torch-state-dict, not {fmt!r}"
        )
    raise UnknownFormatError(f"cannot save a {cls.__qualname__} with torch as {fmt!r}")
