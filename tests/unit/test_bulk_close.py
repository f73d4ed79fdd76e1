"""Pools wait for every worker when shut down, also one the pool lost track of
(``colabmodels.workers``).

A KeyboardInterrupt can land while ``ThreadPoolExecutor`` starts a worker: ``Thread.start``
waits for the new thread, that wait is interruptible, and the pool records the thread only
after ``start`` returns. The thread runs (it takes the queued work) but a plain
``shutdown(wait=True)`` does not wait for it. CI saw it as a ``colabmodels-bulk`` thread still
alive in the ``except KeyboardInterrupt`` of a script that Ctrl-C stopped while
``DriveImageFolder`` was starting its workers. Here the interrupt is raised at that exact point,
for the bulk fetcher and for the transfer engine's part workers (which must not write to a
file after its download returned).
"""

from __future__ import annotations

import threading

import pytest

from colabmodels.bulk import BulkFetcher
from colabmodels.workers import Workers

pytestmark = pytest.mark.colab


def _interrupt_the_first_start(monkeypatch, name: str, running: threading.Event) -> None:
    """``Thread.start`` of the first thread named ``name…`` starts it, waits until it runs
    the work, then raises KeyboardInterrupt (as a Ctrl-C landing inside ``start``)."""
    real_start = threading.Thread.start
    fired = []

    def start_then_interrupt(thread: threading.Thread) -> None:
        real_start(thread)
        if thread.name.startswith(name) and not fired:
            fired.append(thread.name)
            running.wait(10)
            raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)


def _blocking_work(running: threading.Event, release: threading.Event,
                   finished: threading.Event):
    def work(*_: object) -> None:
        running.set()
        release.wait(10)
        finished.set()

    return work


def test_a_worker_started_as_an_interrupt_lands_is_waited_for(monkeypatch):
    fetcher = BulkFetcher(object(), workers=4)  # type: ignore[arg-type]
    running, release, finished = threading.Event(), threading.Event(), threading.Event()
    _interrupt_the_first_start(monkeypatch, fetcher._pool.name, running)
    with pytest.raises(KeyboardInterrupt):
        fetcher.run(_blocking_work(running, release, finished))
    monkeypatch.undo()
    assert running.is_set()
    threading.Timer(0.3, release.set).start()
    fetcher.close()
    assert fetcher._pool.threads_alive() == [] and finished.is_set()


def test_the_transfer_engine_returns_only_when_every_part_worker_ended(monkeypatch):
    from colabmodels import transfer

    running, release, finished = threading.Event(), threading.Event(), threading.Event()
    _interrupt_the_first_start(monkeypatch, "colabmodels-dl", running)
    threading.Timer(0.5, release.set).start()  # the hidden worker's part ends in 0.5 s
    with pytest.raises(KeyboardInterrupt):
        transfer._run_parts(_blocking_work(running, release, finished), [0, 1], 2,
                            threading.Event(), lambda: False)
    monkeypatch.undo()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("colabmodels-dl")]
    assert alive == [] and finished.is_set()


def test_each_pool_names_its_workers_apart():
    a, b = Workers(1, "colabmodels-bulk"), Workers(1, "colabmodels-bulk")
    try:
        assert a.name != b.name and a.name.startswith("colabmodels-bulk-")
        assert a.submit(threading.current_thread).result().name.startswith(a.name + "_")
    finally:
        a.shutdown()
        b.shutdown()
