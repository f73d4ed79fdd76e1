"""One retry policy for every request colabmodels sends (the bottom layer: imports only
``config`` and ``errors``).

Transient failures (``RetryableError``: 429, 5xx, rate-limit 403,
dropped connections; and plain ``ConnectionError``/``TimeoutError`` from libraries) are retried
with exponential backoff and full jitter, honouring ``Retry-After``, up to
``config.max_retries()`` attempts; then ``TransferError``.

A network that is down (connection refused, DNS failure, no route to the host) is not
transient in that sense: waiting seconds per attempt only delays the answer. It raises
``NetworkDownError`` at once, so callers can serve the cache instead.

Waits can be cut short by a ``threading.Event`` (the transfer engine's cancel flag), so an
interrupted download does not sleep out its backoff.

    >>> retry = Retry("reading x")
    >>> while True:
    ...     try:
    ...         result = request()
    ...         break
    ...     except Exception as exc:
    ...         if not retry.again(exc):
    ...             raise
"""

from __future__ import annotations

import errno
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from . import config
from .errors import ColabModelsError, NetworkDownError, RetryableError, TransferError

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "RETRY_AFTER_CAP_S",
    "Retry",
    "backoff_delay",
    "call_with_retries",
    "is_retryable",
    "network_down_cause",
    "network_down_error",
]

logger = logging.getLogger("colabmodels.transfer")

BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 20.0
RETRY_AFTER_CAP_S = 120.0

T = TypeVar("T")

_DOWN_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH,
                          errno.ENETDOWN, errno.EHOSTDOWN})
_DNS_FAILURES = frozenset({"NameResolutionError", "ServerNotFoundError"})  # urllib3 2, httplib2


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``: Retry-After if given, else full jitter."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, RETRY_AFTER_CAP_S)
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2**attempt)))


def is_retryable(exc: BaseException) -> bool:
    """Transient trouble worth another try (never a network that is down)."""
    if isinstance(exc, RetryableError):
        return network_down_cause(exc) is None
    if isinstance(exc, (ConnectionError, TimeoutError)) and not isinstance(exc, ColabModelsError):
        return network_down_cause(exc) is None
    return False


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, urllib3's ``reason``, exception args."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        err = todo.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        yield err
        linked = [err.__cause__, err.__context__, getattr(err, "reason", None), *err.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))


def network_down_cause(exc: BaseException) -> BaseException | None:
    """The error in ``exc``'s chain that says the host cannot be reached at all, or None.

    Connection refused, no route to the host or network, DNS failure. A connection that was
    reset or dropped mid-response is not one of them (that is transient).
    """
    for err in _causes(exc):
        if isinstance(err, NetworkDownError):
            return err
        if isinstance(err, socket.gaierror) or type(err).__name__ in _DNS_FAILURES:
            return err
        if isinstance(err, OSError) and err.errno in _DOWN_ERRNOS:
            return err
    return None


def network_down_error(exc: BaseException, what: str) -> NetworkDownError | None:
    """A ``NetworkDownError`` for ``exc`` when the network is down, else None."""
    cause = network_down_cause(exc)
    if cause is None:
        return None
    if isinstance(cause, NetworkDownError):  # a fresh one when wrapped: raising it from exc
        return cause if cause is exc else NetworkDownError(str(cause))  # makes no loop
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
    return NetworkDownError(
        f"{what}: cannot reach the server ({reason or type(cause).__name__}). The network or the "
        "server is down; check the connection. Files already in the cache load with "
        "COLABMODELS_OFFLINE=1 (or offline=True)."
    )


class Retry:
    """The attempts of one operation under the one policy.

    Args:
        what: what is being done, for messages (``"downloading x.bin"``).
        attempts: tries in all (default ``config.max_retries()``).
        cancel: an event that, once set, ends a wait early (the caller then checks it).
        hint: appended to the message when the attempts are used up.
        sleep: the wait function when there is no ``cancel`` event (tests).
    """

    def __init__(self, what: str, *, attempts: int | None = None,
                 cancel: threading.Event | None = None, hint: str = "",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.what = what
        self.attempts = attempts or config.max_retries()
        self.cancel = cancel
        self.hint = hint or "The source kept answering with transient errors; try again later."
        self.sleep = sleep
        self.failures = 0

    def reset(self) -> None:
        """Progress was made: the next failure starts the backoff afresh."""
        self.failures = 0

    def again(self, exc: BaseException) -> bool:
        """Decide after a failure: False when ``exc`` is not transient (re-raise it), else wait
        the backoff and return True.

        Raises:
            NetworkDownError: the network or host is down (at once, no retries).
            TransferError: ``exc`` was transient but the attempts are used up.
        """
        down = network_down_error(exc, self.what)
        if down is exc:
            return False
        if down is not None:
            raise down from exc
        if not is_retryable(exc):
            return False
        self.failures += 1
        if self.failures >= self.attempts:
            raise TransferError(f"{self.what} failed after {self.failures} attempts: {exc}. "
                                f"{self.hint}") from exc
        delay = backoff_delay(self.failures - 1, getattr(exc, "retry_after", None))
        logger.info("%s: %s; retrying in %.2fs (attempt %d/%d)", self.what, exc, delay,
                    self.failures + 1, self.attempts)
        if self.cancel is not None:
            self.cancel.wait(delay)
        else:
            self.sleep(delay)
        return True


def call_with_retries(fn: Callable[[], T], *, what: str, attempts: int | None = None,
                      cancel: threading.Event | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn`` until it succeeds, retrying transient failures (see ``Retry``).

    Raises:
        NetworkDownError: the network or host is down.
        TransferError: every attempt failed with a transient error.
        and whatever non-transient error ``fn`` raised.
    """
    retry = Retry(what, attempts=attempts, cancel=cancel, sleep=sleep)
    while True:
        try:
            return fn()
        except Exception as exc:
            if not retry.again(exc):
                raise
