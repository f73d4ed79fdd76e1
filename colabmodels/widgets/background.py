"""What every widget model shares: observers, background work on a thread pool, a busy state
and ``wait()``, with no widgets.

A widget's logic lives in a plain model object (the Drive browser's
``BrowserModel``, the dataset panel's
``DatasetPanelModel``) so tests and notebooks can drive it
without a browser. Such a model subclasses ``BackgroundModel``: its Drive calls run on the
pool through ``BackgroundModel._submit``, so the kernel stays free; a call's error becomes
``BackgroundModel.error`` (what the widget shows); and results that arrive after the user
moved on are dropped, because each new start bumps a generation number that the call checks
with ``BackgroundModel._current``. Observers registered with
``BackgroundModel.observe`` are called, on whichever thread made the change, with the name
of what changed; ``"busy"`` and ``"error"`` come from here, the other names from the subclass.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..browse import Trouble, trouble

if TYPE_CHECKING:
    from ..progress import ProgressSink

__all__ = ["BackgroundModel", "reporting_to", "user_namespace"]

logger = logging.getLogger("colabmodels.widgets")


def user_namespace() -> MutableMapping[str, Any]:
    """The notebook's variables (``get_ipython().user_ns``), or ``__main__``'s in a script."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a core dependency
        shell = None
    if shell is not None:
        return shell.user_ns  # type: ignore[no-any-return]
    import __main__

    return __main__.__dict__


def reporting_to(progress: ProgressSink | None) -> contextlib.AbstractContextManager[Any]:
    """``colabmodels.progress.report_to`` ``progress``, or nothing when it is None."""
    if progress is None:
        return contextlib.nullcontext()
    from ..progress import report_to

    return report_to(progress)


class BackgroundModel:
    """Observers, a worker pool, the busy state and ``wait()`` of a widget's model.

    Args:
        what: the model's name in log lines (``"browser"``).
        workers: background calls that may run at once.
        thread_name: the prefix of the worker threads' names.

    Attributes:
        error: the last background call's error, as the widget shows it (None after a
            success the subclass records).
    """

    def __init__(self, *, what: str, workers: int, thread_name: str) -> None:
        self.error: Trouble | None = None
        self._what = what
        self._generation = 0
        self._active = 0  # background calls running or queued
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._observers: list[Callable[[str], None]] = []
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name)

    # -- observing -----------------------------------------------------------------------------
    def observe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(event)`` after each change (from the thread that made it)."""
        self._observers.append(callback)

    def _emit(self, event: str) -> None:
        for callback in list(self._observers):
            try:
                callback(event)
            except Exception:  # an observer's bug must not stop the model
                logger.exception("%s observer failed on %s", self._what, event)

    @property
    def busy(self) -> bool:
        """True while a background call of this model is running or queued."""
        with self._lock:
            return self._active > 0

    def wait(self, timeout: float | None = 120) -> bool:
        """Block until no background work is left (tests, notebooks); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def close(self) -> None:
        """Stop background work (results still on their way are dropped)."""
        with self._idle:
            self._generation += 1
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._active = 0  # cancelled calls never run; a running one finds its result dropped
            self._idle.notify_all()

    # -- background work -----------------------------------------------------------------------
    def _submit(self, fn: Callable[..., None], *args: Any) -> Future[Any]:
        """Run ``fn(generation, *args)`` on the pool; its error becomes ``error``."""
        with self._lock:
            generation = self._generation
            self._active += 1
            future = self._pool.submit(self._run, generation, fn, *args)
        self._emit("busy")
        return future

    def _run(self, generation: int, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(generation, *args)
        except Exception as e:
            with self._lock:
                current = self._current(generation)
                if current:
                    self.error = trouble(e)
            if current:
                logger.info("%s: %s", self._what, e)
                self._emit("error")
        finally:
            with self._idle:
                self._active = max(0, self._active - 1)
                self._idle.notify_all()
            self._emit("busy")

    def _current(self, generation: int) -> bool:
        """Whether a call started at ``generation`` still counts (the user has not moved on)."""
        return generation == self._generation
