"""Import optional libraries on demand, with an install hint when they are missing.

Nothing here imports a heavy library at module import; ``require`` does it when a
function actually needs one.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from ..errors import MissingDependencyError

__all__ = ["INSTALL_HINTS", "loaded_module", "require"]

INSTALL_HINTS: dict[str, str] = {
    "torch": 'pip install "colabmodels[torch]"',
    "safetensors": 'pip install "colabmodels[torch]"',
    "tensorflow": 'pip install "colabmodels[tf]"',
    "keras": 'pip install "colabmodels[tf]"',
    "h5py": 'pip install "colabmodels[tf]"',
    "gensim": 'pip install "colabmodels[gensim]"',
    "numpy": "pip install numpy",
    "onnx": "pip install onnx",
    "onnxruntime": "pip install onnxruntime",
}


def require(module: str, *, purpose: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"safetensors.torch"``) or explain how to install it.

    Args:
        module: dotted module name; its top-level package decides the install hint.
        purpose: what it is needed for, quoted in the error message.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: the package is not installed; the message names the pip
            command (``pip install "colabmodels[torch]"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        missing = getattr(e, "name", None) or top
        hint = INSTALL_HINTS.get(top, f"pip install {top}")
        why = f" to {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{top} is needed{why} but cannot be imported ({missing} is missing). "
            f"Install it with: {hint}"
        ) from e


def loaded_module(name: str) -> ModuleType | None:
    """The module ``name`` if something already imported it, else None (never imports).

    An object of a class from ``torch`` can only exist once ``torch`` is imported, so
    checking ``sys.modules`` is enough to recognise objects without importing anything.
    """
    return sys.modules.get(name)
