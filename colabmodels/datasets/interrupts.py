"""Ctrl-C (and Kernel > Interrupt) reaches the feeders while the main thread is blocked in C.

A script or a cell that iterates a ``tf.data`` dataset spends its time in TensorFlow's C++
``GetNext``, waiting for a batch whose files are still downloading (TensorFlow calls the
feeder through ``tf.numpy_function`` on its own threads). Python runs its SIGINT handler only
when the main thread is back in the interpreter, so without help the interrupt would wait for
that batch, and the feeder would go on fetching ahead after it.

What helps: Python's C-level signal handler also writes the signal's number to the *wakeup
fd* (``signal.set_wakeup_fd``), at once and whatever the main thread is doing. While a
dataset that still has files to fetch is alive, ``watch_interrupts`` points the wakeup fd
at a socket read by a small daemon thread (``colabmodels-interrupts``). On a SIGINT that will
interrupt (the handler is Python's own ``default_int_handler``, which scripts, IPython and
ipykernel use while code runs, or asyncio's or ipykernel's cancelling handler) it stops the
watched feeders: their waiting readers get ``FetchStopped`` within a few
milliseconds and hand TensorFlow stand-in images for what they were waiting for
(``feeder.stand_ins_when_stopped``: an error would collide with the pending interrupt),
TensorFlow's ``GetNext`` returns, and the main thread raises the ``KeyboardInterrupt``
itself, as usual (nothing here raises, catches or swallows it). Other
handlers (a handler that only sets a flag, ``SIG_IGN``) are left to decide: nothing is stopped.

Manners: the wakeup fd is set only from the main thread (Python allows nothing else), the one
set before is kept and every byte is forwarded to it (asyncio loops and others that read it
see every signal as before), and it is put back once no watched feeder has files left to
fetch, at the next chance the main thread gives (a new dataset, interpreter exit), unless
someone else has replaced ours meanwhile (theirs is then left alone). A forked child (a torch
DataLoader worker) drops the watch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)

THREAD_NAME = "colabmodels-interrupts"


class Interruptible(Protocol):
    """A feeder as the watch sees it."""

    def interrupt(self) -> None: ...

    def pending(self) -> bool: ...


def _interrupts(handler: Any) -> bool:
    """Whether this SIGINT handler means "stop what runs": Python's default (scripts, IPython,
    ipykernel while a cell runs), asyncio.run's (it cancels the main task), ipykernel's for
    async cells (it cancels the cell)."""
    if handler is signal.default_int_handler:
        return True
    name = getattr(handler, "__qualname__", "") or ""
    module = getattr(handler, "__module__", "") or ""
    return ((module.startswith("asyncio") and name.endswith("Runner._on_sigint"))
            or (module.startswith("ipykernel") and name.endswith("_cancel_on_sigint.<locals>.handle_sigint")))


def _forward(fd: int, data: bytes) -> None:
    """Write ``data`` to the wakeup fd that was set before ours, as Python would have."""
    try:
        os.write(fd, data)
    except BlockingIOError:  # full: its reader is behind; Python drops the byte too
        logger.debug("the previous wakeup fd is full; %d signal bytes dropped", len(data))
    except OSError:
        if os.name != "nt":
            logger.debug("the previous wakeup fd %d cannot be written", fd)
            return
        sock = socket.socket(fileno=fd)  # Windows: the wakeup fd is a socket
        try:
            sock.send(data)
        except OSError as e:
            logger.debug("the previous wakeup socket cannot be written: %s", e)
        finally:
            sock.detach()


class _Watch:
    """The wakeup socket, the previous wakeup fd, and the thread that reads and forwards."""

    def __init__(self, on_interrupt: Callable[[], None]) -> None:
        self.on_interrupt = on_interrupt
        self.reader, self.writer = socket.socketpair()
        self.writer.setblocking(False)  # set_wakeup_fd requires it; the reader blocks
        self.fd = self.writer.fileno()
        self.previous = signal.set_wakeup_fd(self.fd)  # ValueError off the main thread
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self.reader.recv(512)
            except OSError:
                break
            if not data:  # the writer was closed: unwatched
                break
            if self.previous != -1:
                _forward(self.previous, data)
            if int(signal.SIGINT) in data and _interrupts(signal.getsignal(signal.SIGINT)):
                try:
                    self.on_interrupt()
                except Exception as e:  # the interrupt itself goes on regardless
                    logger.warning("stopping the dataset downloads on an interrupt failed: %s", e)
        self.reader.close()

    def close(self) -> None:
        """Put the previous wakeup fd back (main thread only) and end the thread."""
        current = signal.set_wakeup_fd(self.previous)
        if current != self.fd:  # someone set theirs after ours: leave theirs in place
            signal.set_wakeup_fd(current)
        self.writer.close()  # the reader sees the end and the thread returns

    def abandon(self) -> None:
        """In a forked child: the thread does not exist here; put the previous fd back."""
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(self.previous)
        for sock in (self.reader, self.writer):
            with contextlib.suppress(OSError):
                sock.close()


_LOCK = threading.Lock()
_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()
_watch: _Watch | None = None


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _interrupt_watched() -> None:
    """Stop every watched feeder that still fetches (on the watch thread)."""
    with _LOCK:
        feeders = list(_WATCHED)
    for feeder in feeders:
        if feeder.pending():
            feeder.interrupt()


def watch_interrupts(feeder: Interruptible) -> bool:
    """Stop ``feeder`` on Ctrl-C / Kernel > Interrupt even while the main thread is blocked in
    C (a ``tf.data`` iterator). Call it on the main thread when a dataset that still has files
    to fetch is made; elsewhere (a thread, a worker) it does nothing. True when watched."""
    if not _on_main_thread():
        return False
    global _watch
    with _LOCK:
        _WATCHED.add(feeder)
        if _watch is None:
            try:
                _watch = _Watch(_interrupt_watched)
            except (ValueError, OSError) as e:  # no main interpreter, no sockets...
                logger.debug("interrupts are not watched: %s", e)
                _WATCHED.discard(feeder)
                return False
    release_idle()
    return True


def release_idle() -> None:
    """Put the previous wakeup fd back when no watched feeder has files left to fetch
    (main thread only; elsewhere this waits for the next call on the main thread)."""
    global _watch
    if not _on_main_thread():
        return
    with _LOCK:
        if _watch is None or any(f.pending() for f in _WATCHED):
            return
        watch, _watch = _watch, None
    watch.close()


def release() -> None:
    """Stop watching whatever is pending (interpreter exit; main thread only)."""
    global _watch
    if not _on_main_thread():
        return
    with _LOCK:
        watch, _watch = _watch, None
        _WATCHED.clear()
    if watch is not None:
        watch.close()


def watching() -> bool:
    """Whether the wakeup fd is ours now (for tests and diagnostics)."""
    return _watch is not None


def _after_fork_in_child() -> None:
    global _watch
    watch, _watch = _watch, None
    _WATCHED.clear()
    if watch is not None:
        watch.abandon()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


__all__ = ["THREAD_NAME", "Interruptible", "release", "release_idle", "watch_interrupts",
           "watching"]
