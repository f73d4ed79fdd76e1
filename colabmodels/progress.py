"""One progress callback shape for every long operation.

Library code calls ``callback(n)`` with the number of new bytes. ``progress_bar`` gives a
``tqdm.auto`` bar (a widget in notebooks, text in terminals); widgets implement the same shape.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator

__all__ = ["ProgressCallback", "ProgressSink", "describe_bytes", "progress_bar", "report_to"]

ProgressCallback = Callable[[int], None]
"""Called with the number of new bytes each time some arrive (or leave, for uploads).

The one definition: storage backends, the transfer engine, tqdm bars and the widgets all use it."""


@contextlib.contextmanager
def progress_bar(total: int | None, desc: str, *, enabled: bool = True) -> Iterator[ProgressCallback]:
    """Yield a thread-safe byte-count callback drawing a tqdm bar (or doing nothing)."""
    if not enabled:
        yield _ignore
        return
    sink = _sink.get()
    if sink is not None:  # a widget asked for the bars of this operation (see report_to)
        with sink(total, desc) as callback:
            yield callback
        return
    from tqdm.auto import tqdm

    lock = threading.Lock()
    bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
               leave=False, dynamic_ncols=True, mininterval=0.2)

    def update(n: int) -> None:
        with lock:
            bar.update(n)

    try:
        yield update
    finally:
        bar.close()


def _ignore(_: int) -> None:
    return None


ProgressSink = Callable[[int | None, str], contextlib.AbstractContextManager[ProgressCallback]]
"""Makes the bar of one operation: ``sink(total_bytes, description)`` -> a context manager
yielding its ``ProgressCallback`` (the widgets' progress bar is one)."""

_sink: contextvars.ContextVar[ProgressSink | None] = contextvars.ContextVar(
    "colabmodels_progress_sink", default=None)


@contextlib.contextmanager
def report_to(sink: ProgressSink) -> Iterator[None]:
    """Within this block (in this thread/context), ``progress_bar`` draws with ``sink``
    instead of tqdm: ``with report_to(widget.bar): cm.load_model(...)``."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def describe_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (the one size format: ``colabmodels.presentation.format_size``)."""
    from .presentation import format_size

    return format_size(n)
