"""A progress bar widget that speaks the library's progress callback.

``ProgressWidget`` is both:

- a ``colabmodels.progress.ProgressCallback``: ``bar(n)`` adds ``n`` bytes;
- a ``ProgressSink``: ``with report_to(bar.track): cm.load_model(...)`` makes every download
  or upload of the block draw on this bar instead of a tqdm bar.

Transfers report from several threads at once; the counter is locked and the widget is redrawn
at most every ``interval_s`` (and at the end), so a fast download does not flood the frontend
with comm messages. Setting a widget's value from a thread that is not the kernel's is what
ipywidgets' own documentation does for background progress; it works on 7.7 and 8.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from ..presentation import format_size
from ..progress import ProgressCallback

__all__ = ["ProgressWidget"]


class ProgressWidget:
    """A bar, a label with bytes done/total and speed, hidden until something runs.

    Attributes:
        box: the ``HBox`` to put in a layout (or display the object itself).
        bar: the ``FloatProgress``; label: the ``Label``.
        done, total: bytes reported and expected (total None when unknown).
    """

    def __init__(self, description: str = "", *, interval_s: float = 0.1) -> None:
        import ipywidgets as w

        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, description=description,
                                   layout=w.Layout(width="50%"))
        self.label = w.Label("")
        self.box = w.HBox([self.bar, self.label], layout=w.Layout(display="none"))
        self.interval_s = interval_s
        self.done = 0
        self.total: int | None = None
        self.title = description
        self._lock = threading.Lock()
        self._started = 0.0
        self._drawn = 0.0

    # -- ProgressCallback --------------------------------------------------------------------
    def __call__(self, n: int) -> None:
        """Add ``n`` bytes (any thread)."""
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._drawn < self.interval_s and (self.total is None or self.done < self.total):
                return
            self._drawn = now
            self._draw()

    # -- ProgressSink ------------------------------------------------------------------------
    @contextlib.contextmanager
    def track(self, total: int | None, desc: str) -> Iterator[ProgressCallback]:
        """One operation of ``total`` bytes named ``desc``: shows the bar, yields the callback,
        and marks it finished (or failed) at the end."""
        self.start(total, desc)
        ok = False
        try:
            yield self
            ok = True
        finally:
            self.finish(ok=ok)

    def start(self, total: int | None, desc: str) -> None:
        with self._lock:
            self.done, self.total, self.title = 0, total, desc
            self._started = self._drawn = time.monotonic()
            self.bar.bar_style = ""
            self.box.layout.display = "flex"
            self._draw()

    def finish(self, *, ok: bool = True) -> None:
        with self._lock:
            if ok and self.total is None:
                self.total = self.done
            self._draw()
            self.bar.bar_style = "success" if ok else "danger"

    def hide(self) -> None:
        self.box.layout.display = "none"

    def _draw(self) -> None:
        total = self.total
        self.bar.max = float(max(total or 0, 1))
        self.bar.value = float(min(self.done, total)) if total else (1.0 if self.done else 0.0)
        elapsed = max(time.monotonic() - self._started, 1e-6)
        speed = f" · {format_size(self.done / elapsed)}/s" if self.done else ""
        of = f" of {format_size(total)}" if total else ""
        self.label.value = f"{self.title}: {format_size(self.done)}{of}{speed}"

    @property
    def fraction(self) -> float:
        """Done as a fraction of the total (0 when unknown)."""
        return self.done / self.total if self.total else 0.0

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)

    def __repr__(self) -> str:
        return f"<ProgressWidget {self.label.value!r}>"
