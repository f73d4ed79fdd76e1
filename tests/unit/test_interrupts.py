"""The interrupt watch (colabmodels/datasets/interrupts.py): a SIGINT reaches the feeders
through the wakeup fd, whatever the main thread is doing, and the wakeup fd is borrowed politely.

Real signals to this process and, in the last test, Kernel > Interrupt on a real Jupyter
kernel of this interpreter (IPython 9 in the dev env, IPython 7.34 in the Colab-pinned env).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time

import pytest

from colabmodels.datasets import interrupts

pytestmark = pytest.mark.colab

WAIT_S = 10  # only so a broken build fails instead of hanging


class FakeFeeder:
    """What the watch needs of a feeder: ``pending`` and ``interrupt``."""

    def __init__(self, pending: bool = True) -> None:
        self.is_pending = pending
        self.interrupted = threading.Event()

    def pending(self) -> bool:
        return self.is_pending

    def interrupt(self) -> None:
        self.interrupted.set()


@pytest.fixture
def previous_wakeup():
    """A wakeup fd set before ours (as an asyncio loop would), put back afterwards."""
    interrupts.release()  # a watch left by an earlier test's dataset would come before it
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    reader.settimeout(WAIT_S)
    old = signal.set_wakeup_fd(writer.fileno())
    old_handler = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield reader, writer.fileno()
    interrupts.release()
    signal.signal(signal.SIGINT, old_handler)
    signal.set_wakeup_fd(old)
    reader.close()
    writer.close()


def _sigint_to_myself() -> None:
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(WAIT_S)  # the KeyboardInterrupt lands here
    except KeyboardInterrupt:
        return
    raise AssertionError("no KeyboardInterrupt")


def test_sigint_stops_a_watched_feeder_and_the_previous_wakeup_fd_still_hears_it(previous_wakeup):
    reader, previous_fd = previous_wakeup
    feeder = FakeFeeder()
    assert interrupts.watch_interrupts(feeder)
    assert interrupts.watching()
    assert any(t.name == interrupts.THREAD_NAME for t in threading.enumerate())
    _sigint_to_myself()
    assert feeder.interrupted.wait(WAIT_S), "the watched feeder was not stopped"
    assert int(signal.SIGINT) in reader.recv(64), "the signal was not forwarded"
    # nothing pending any more: the previous wakeup fd is put back and the thread ends
    feeder.is_pending = False
    interrupts.release_idle()
    assert not interrupts.watching()
    assert signal.set_wakeup_fd(previous_fd) == previous_fd
    deadline = time.monotonic() + WAIT_S
    while any(t.name == interrupts.THREAD_NAME for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the watch thread did not end"
        time.sleep(0.01)


def test_a_handler_that_only_sets_a_flag_decides_for_itself(previous_wakeup):
    reader, _ = previous_wakeup
    feeder = FakeFeeder()
    interrupts.watch_interrupts(feeder)
    seen: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    os.kill(os.getpid(), signal.SIGINT)
    assert int(signal.SIGINT) in reader.recv(64)  # forwarded, so the watch has read it
    time.sleep(0.2)  # the Python handler runs on the main thread's next instruction
    assert seen == [signal.SIGINT]
    assert not feeder.interrupted.is_set()


def test_a_feeder_with_nothing_to_fetch_is_left_alone(previous_wakeup):
    done, busy = FakeFeeder(pending=False), FakeFeeder()
    interrupts.watch_interrupts(done)
    interrupts.watch_interrupts(busy)
    _sigint_to_myself()
    assert busy.interrupted.wait(WAIT_S)
    assert not done.interrupted.is_set()


def test_the_watch_is_set_only_on_the_main_thread_and_leaves_a_newer_wakeup_fd(previous_wakeup):
    _, previous_fd = previous_wakeup
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.append(
        interrupts.watch_interrupts(FakeFeeder())))
    worker.start()
    worker.join()
    assert results == [False] and not interrupts.watching()
    feeder = FakeFeeder()
    interrupts.watch_interrupts(feeder)
    newer_reader, newer_writer = socket.socketpair()
    newer_writer.setblocking(False)
    try:
        signal.set_wakeup_fd(newer_writer.fileno())  # someone else comes after us
        feeder.is_pending = False
        interrupts.release_idle()
        assert signal.set_wakeup_fd(previous_fd) == newer_writer.fileno()  # theirs was kept
    finally:
        newer_reader.close()
        newer_writer.close()


class SlowClose:
    """A fetcher whose threads take a while to end (a download finishing its block)."""

    def __init__(self) -> None:
        self.closing = threading.Event()
        self.closed = threading.Event()

    def close(self) -> None:
        self.closing.set()
        time.sleep(0.3)
        self.closed.set()


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_second_stop_returns_only_once_the_first_has_ended_the_threads(kind):
    """Ctrl-C stops a feeder twice at once: from the interrupt watch (``interrupt``) and from
    the main thread's ``except KeyboardInterrupt``. The main thread's stop, finding the fetcher
    already taken by the watch, must still wait for its threads to end: code after the
    interrupt may count them (a clean-clone run found one fetch thread still alive)."""
    from colabmodels.datasets.feeder import Feeder, FeederBase

    if kind == "folder":
        feeder: FeederBase = Feeder(None, [], on_error="skip")  # type: ignore[arg-type]
    else:
        from colabmodels.datasets.zipped import ZipFeeder

        feeder = ZipFeeder.__new__(ZipFeeder)  # no archive needed: only stop() is tried
        FeederBase.__init__(feeder, [], on_error="skip", check_images=False, skipped=None,
                            lookahead=1)
    fetcher = SlowClose()
    feeder._fetcher = fetcher  # type: ignore[assignment]
    watch = threading.Thread(target=feeder.interrupt)
    watch.start()
    assert fetcher.closing.wait(WAIT_S)
    feeder.stop()  # the main thread's stop, while the watch's close is under way
    assert fetcher.closed.is_set()
    watch.join(WAIT_S)


KERNEL_WAIT_S = 90


def _run(kc, code: str) -> dict:
    """Run ``code`` in the kernel; its stdout and the reply's content (sent again when the
    kernel aborted it: ipykernel drops what arrives just after an error)."""
    for _ in range(20):
        reply = _run_once(kc, code)
        if reply.get("status") != "aborted":
            return reply
        time.sleep(0.25)
    return reply


def _run_once(kc, code: str) -> dict:
    msg_id = kc.execute(code)
    out = []
    while True:
        msg = kc.get_iopub_msg(timeout=KERNEL_WAIT_S)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=KERNEL_WAIT_S)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=KERNEL_WAIT_S)
    return {"out": "".join(out), **reply["content"]}


WATCH_CELL = """
import signal, threading, IPython
from colabmodels.datasets import interrupts
class FakeFeeder:
    interrupted = threading.Event()
    def pending(self):
        return True
    def interrupt(self):
        self.interrupted.set()
feeder = FakeFeeder()
print("WATCHED", interrupts.watch_interrupts(feeder), IPython.version_info[0])
"""


def test_kernel_interrupt_reaches_a_feeder_watched_in_an_earlier_cell():
    """ipykernel puts Python's own SIGINT handler in place for each cell and the wakeup fd
    set in one cell is still ours in the next: Kernel > Interrupt reaches the watch."""
    jupyter_client = pytest.importorskip("jupyter_client")
    pytest.importorskip("ipykernel")
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(extra_arguments=["--HistoryManager.enabled=False"])
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=KERNEL_WAIT_S)
        reply = _run(kc, f"import sys; print('PY', sys.executable == {sys.executable!r})")
        assert "PY True" in reply["out"], reply
        reply = _run(kc, WATCH_CELL)
        assert "WATCHED True" in reply["out"], reply
        msg_id = kc.execute("import time\nfor _ in range(600): time.sleep(0.1)")
        time.sleep(1.0)  # the cell is running
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=KERNEL_WAIT_S)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=KERNEL_WAIT_S)
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        reply = _run(kc, "print('STOPPED', feeder.interrupted.wait(10))")
        assert "STOPPED True" in reply["out"], reply
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
