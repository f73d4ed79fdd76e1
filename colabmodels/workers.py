"""Thread pools that wait for all of their workers when shut down (a leaf: imports nothing
of colabmodels).

``ThreadPoolExecutor`` records a new worker thread only after ``Thread.start`` returns, and
``start`` waits for the thread to begin, in a wait that a KeyboardInterrupt can end. A Ctrl-C
that lands there leaves a worker running that the pool does not know of: it takes the queued
work, and ``shutdown(wait=True)`` returns without waiting for it. For the transfer engine that
breaks a promise (nothing writes to a file after its download returns); for the bulk fetcher a
fetch thread outlives the interrupt. ``Workers`` names its threads apart from every other pool's
and, on ``shutdown(wait=True)``, also waits for any thread of its name that is still alive.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["Workers"]

_numbers = itertools.count(1)


class Workers(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose threads are named ``<name>-<n>_<k>`` (``n`` unique to
    this pool) and whose ``shutdown(wait=True)`` waits for every one of them."""

    def __init__(self, max_workers: int, name: str) -> None:
        self.name = f"{name}-{next(_numbers)}"
        super().__init__(max_workers=max_workers, thread_name_prefix=self.name)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        if not wait:
            return
        me = threading.current_thread()
        for thread in threading.enumerate():
            if thread is not me and thread.name.startswith(self.name + "_"):
                thread.join()

    def threads_alive(self) -> list[str]:
        """The names of this pool's threads still running (for tests and diagnostics)."""
        return [t.name for t in threading.enumerate() if t.name.startswith(self.name + "_")]
