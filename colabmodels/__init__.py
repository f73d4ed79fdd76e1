"""colabmodels: models and datasets in Google Drive, GCS, S3 or a URL, one line away.

In a notebook::

    %load_ext colabmodels
    model = %load_model https://drive.google.com/file/d/1AbC.../view
    %save_model model MyDrive/models/mine --meta acc=0.93

In Python::

    import colabmodels as cm
    model = cm.load_model("MyDrive/models/mine@latest")

Public names are resolved lazily, so ``import colabmodels`` imports no TensorFlow, Keras,
torch, gensim or PyDrive2; each is imported by the function that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors
from ._version import __version__

# public name -> "module:attribute" (relative to this package)
_LAZY = {
    "DatasetPanel": "widgets.dataset_panel:DatasetPanel",
    "DriveBrowser": "widgets.browser:DriveBrowser",
    "DriveCheckpoint": "checkpoint:DriveCheckpoint",
    "DriveImageFolder": "datasets:DriveImageFolder",
    "DriveImageSequence": "datasets:DriveImageSequence",
    "DriveSession": "drive.session:DriveSession",
    "FormatInfo": "formats:FormatInfo",
    "GDriveFileSystem": "gdrivefs:GDriveFileSystem",
    "Ref": "refs:Ref",
    "SavedModelInfo": "registry:SavedModelInfo",
    "cache": "cachestore:cache",
    "fetch": "api:fetch",
    "image_dataset_from_drive": "datasets:image_dataset_from_drive",
    "load_model": "api:load_model",
    "mount": "api:mount",
    "pack": "datasets:pack",
    "parse_ref": "refs:parse_ref",
    "save_model": "api:save_model",
    "sniff_format": "formats:sniff_format",
    "versions": "api:versions",
}

__all__ = sorted(
    [*_LAZY, "__version__", "errors", "load_ipython_extension", "unload_ipython_extension"]
)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .api import fetch, load_model, mount, save_model, versions
    from .cachestore import cache
    from .checkpoint import DriveCheckpoint
    from .datasets import DriveImageFolder, DriveImageSequence, image_dataset_from_drive, pack
    from .drive.session import DriveSession
    from .formats import FormatInfo, sniff_format
    from .gdrivefs import GDriveFileSystem
    from .refs import Ref, parse_ref
    from .registry import SavedModelInfo
    from .widgets.browser import DriveBrowser
    from .widgets.dataset_panel import DatasetPanel


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'colabmodels' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(f".{module_name}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext colabmodels``: register the magics."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext colabmodels``: remove the magics."""
    from .magics import unload_ipython_extension as _unload

    _unload(ipython)
