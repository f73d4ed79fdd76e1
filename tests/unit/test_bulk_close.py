"""``BulkFetcher.close`` waits for every worker, also one the pool lost track of.

A KeyboardInterrupt can land while ``ThreadPoolExecutor`` starts a worker: ``Thread.start``
waits for the new thread, that wait is interruptible, and the pool records the thread only
after ``start`` returns. The thread runs (it takes the queued work) but ``shutdown(wait=True)``
does not wait for it. CI saw it as a ``colabmodels-bulk`` thread still alive in the
``except KeyboardInterrupt`` of a script that Ctrl-C stopped while ``DriveImageFolder`` was
starting its workers. Here the interrupt is raised at that exact point.
"""

from __future__ import annotations

import threading

import pytest

from colabmodels.bulk import BulkFetcher

pytestmark = pytest.mark.colab


def test_a_worker_started_as_an_interrupt_lands_is_waited_for(monkeypatch):
    fetcher = BulkFetcher(object(), workers=4)  # type: ignore[arg-type]
    running, release, finished = threading.Event(), threading.Event(), threading.Event()
    real_start = threading.Thread.start

    def start_then_interrupt(thread: threading.Thread) -> None:
        real_start(thread)
        if thread.name.startswith(fetcher._thread_prefix):
            running.wait(10)  # the new worker has taken the queued work
            raise KeyboardInterrupt

    def work() -> None:
        running.set()
        release.wait(10)
        finished.set()

    monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetcher.run(work)
    monkeypatch.undo()
    assert running.is_set()
    threading.Timer(0.3, release.set).start()
    fetcher.close()
    alive = [t.name for t in threading.enumerate() if t.name.startswith(fetcher._thread_prefix)]
    assert alive == [] and finished.is_set()


def test_each_fetcher_names_its_workers_apart():
    a, b = BulkFetcher(object()), BulkFetcher(object())  # type: ignore[arg-type]
    try:
        assert a._thread_prefix != b._thread_prefix
        assert a._thread_prefix.startswith("colabmodels-bulk")
    finally:
        a.close()
        b.close()
