"""One progress callback shape for every long operation.

Library code calls ``callback(n)`` with the number of new bytes. :func:`progress_bar` gives a
``tqdm.auto`` bar (a widget in notebooks, text in terminals); widgets implement the same shape.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

ProgressCallback = Callable[[int], None]


@contextlib.contextmanager
def progress_bar(total: int | None, desc: str, *, enabled: bool = True) -> Iterator[ProgressCallback]:
    """Yield a thread-safe byte-count callback drawing a tqdm bar (or doing nothing)."""
    if not enabled:
        yield _ignore
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


def combine(*callbacks: ProgressCallback | None) -> ProgressCallback:
    """A callback that calls each of ``callbacks`` that is not None."""
    active = [cb for cb in callbacks if cb is not None]
    if not active:
        return _ignore
    if len(active) == 1:
        return active[0]

    def both(n: int) -> None:
        for cb in active:
            cb(n)

    return both
