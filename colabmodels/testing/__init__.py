"""Test helpers: the Drive emulator.

``from colabmodels.testing import FakeDrive`` imports the emulator on first use,
so importing ``colabmodels.testing`` itself stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fakedrive import FakeDrive

__all__ = ["FakeDrive"]

_LAZY = {"FakeDrive": ".fakedrive"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
