"""Notebook widgets, on core ipywidgets only (7.7 as Colab ships it, and 8.x).

- ``DriveBrowser`` (``browser``): point, click, load or save; its logic is the plain
  ``BrowserModel`` (``browser_model``), which the widget only draws.
- ``ProgressWidget`` (``progress``): a progress bar that is a
  ``colabmodels.progress.ProgressCallback`` and a ``ProgressSink`` for
  ``colabmodels.progress.report_to``.
- ``CallbackGuard`` (``capture``): every callback of a widget on the kernel's thread runs
  inside an ``Output`` capture, and the errors of every callback show in the widget with
  what to do next.
- ``background``: what every widget model shares (observers, a worker pool, ``busy`` and
  ``wait()``): the ``BackgroundModel`` base class.

Names are imported lazily: ``import colabmodels.widgets`` does not import ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["BrowserModel", "CallbackGuard", "DriveBrowser", "ProgressWidget"]

_LAZY = {
    "BrowserModel": "browser_model",
    "CallbackGuard": "capture",
    "DriveBrowser": "browser",
    "ProgressWidget": "progress",
}

if TYPE_CHECKING:  # pragma: no cover
    from .browser import DriveBrowser
    from .browser_model import BrowserModel
    from .capture import CallbackGuard
    from .progress import ProgressWidget


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'colabmodels.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
