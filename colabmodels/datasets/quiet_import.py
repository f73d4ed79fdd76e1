"""Import TensorFlow (or Keras on it) without its C++ start-up lines reaching the notebook.

TensorFlow's native code writes its start-up chatter straight to file descriptor 2 when it is
first imported (absl's "All log messages before absl::InitializeLog() …", oneDNN's "custom
operations are on", the CPU-feature note, CUDA factory registrations on GPU builds). In
Jupyter that lands in whatever output is active: inside a widget's Output capture it shows as
red boxes that overflow the widget. ``quiet_import`` imports a module with descriptor 2
pointed at a temporary file, drops the lines known to be start-up noise and logs every other
line as a warning, so real errors are still seen.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from types import ModuleType

__all__ = ["NOISE", "held_native_stderr", "is_noise", "quiet_import"]

logger = logging.getLogger(__name__)

NOISE = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "cpu_feature_guard",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "rebuild TensorFlow with the appropriate compiler flags",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "TF-TRT Warning: Could not find TensorRT",
    "Could not find cuda drivers on your machine",
    "cuda_dnn.cc",
    "cuda_fft.cc",
    "cuda_blas.cc",
)
"""Fragments of TensorFlow's start-up lines that say nothing about the user's work."""

_HEAVY = ("tensorflow", "keras")
_lock = threading.RLock()  # re-entered when a held block imports TensorFlow


def is_noise(line: str) -> bool:
    """Whether a native stderr line is TensorFlow start-up noise (blank lines count)."""
    return not line.strip() or any(fragment in line for fragment in NOISE)


@contextlib.contextmanager
def held_native_stderr() -> Iterator[None]:
    """Within this block, lines written to descriptor 2 by native code are held back; at its
    end the known TensorFlow start-up noise is dropped and every other line logged as a
    warning. Does nothing once TensorFlow is imported (it says nothing more after that) or
    where there is no descriptor 2. For calls that may import TensorFlow on the way, such as
    loading a Keras model."""
    if "tensorflow" in sys.modules:
        yield
        return
    with _lock:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:
            saved = -1
        if saved < 0:
            yield
            return
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                _report(held.read().decode("utf-8", "replace"))


def _report(text: str) -> None:
    for line in text.splitlines():
        if is_noise(line):
            logger.debug("tensorflow start-up: %s", line)
        else:
            logger.warning("%s", line)


def quiet_import(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with TensorFlow's native start-up lines held back.

    Only the first import of TensorFlow is wrapped (later ones print nothing anyway); a module
    already imported is returned as it is. Lines that are not known noise are logged as
    warnings (``colabmodels.datasets.quiet_import``).

    Raises:
        ImportError: as ``import_module`` does.
    """
    if name in sys.modules or "tensorflow" in sys.modules or name.split(".")[0] not in _HEAVY:
        return importlib.import_module(name)
    with held_native_stderr():
        return importlib.import_module(name)
