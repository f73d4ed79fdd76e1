"""Traffic shaping and fault injection for the Drive emulator.

* ``TokenBucket`` limits bytes per second. The server keeps one per
  connection and one shared by all connections (the total cap), and every body
  chunk it sends or reads takes tokens from both.
* ``FaultPlan`` decides, per request, whether to fail it and how. Random
  faults come from a dedicated ``random.Random(seed)`` that draws the same
  number of values for every eligible request, so the same seed and the same
  sequence of requests give the same faults. Scripted faults
  (``FaultPlan.fail_next``) hit the next request whose path contains a
  given string, before any random choice.

Fault kinds:

============== ==============================================================
``503``        503 ``backendError``
``500``        500 ``backendError``
``429``        429 ``rateLimitExceeded`` with ``Retry-After``
``403-rate``   403 ``rateLimitExceeded`` or ``userRateLimitExceeded`` (seeded)
``403-user-rate`` 403 ``userRateLimitExceeded`` (scripted only)
``quota``      403 ``downloadQuotaExceeded``; applies to media downloads only
``drop``       the socket is reset mid-body: for uploads with a body, after part
               of the request body was read (nothing is stored); otherwise the
               request is processed and the response is cut after its headers
               and part of its body
``401``        401 ``authError`` (scripted only; makes clients refresh)
============== ==============================================================
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["FAULT_KINDS", "MIX_KINDS", "Fault", "FaultPlan", "TokenBucket"]

MIX_KINDS: tuple[str, ...] = ("503", "500", "429", "403-rate", "drop")
"""Kinds that ``{"rate": p}`` spreads its probability over, equally."""

FAULT_KINDS: tuple[str, ...] = (*MIX_KINDS, "quota", "403-user-rate", "401")
"""Every kind ``FaultPlan.fail_next`` accepts."""

_RANDOM_KINDS: tuple[str, ...] = ("503", "500", "429", "403-rate", "quota", "drop")


class TokenBucket:
    """A thread-safe byte-rate limiter.

    ``take(n)`` reserves ``n`` bytes and sleeps until the bucket's rate allows
    them; a debt model keeps several threads sharing one bucket fair and the
    long-run rate exact.

    Args:
        rate: bytes per second.
        burst: how many bytes may go out at once after idling (default: 1/20 s
            worth, at least 16 KiB).
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(rate / 20.0, 16 * 1024.0)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()

    def reserve(self, n: int) -> float:
        """Reserve ``n`` bytes; return how long to wait before sending them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            return max(0.0, -self._tokens / self.rate)

    def take(self, n: int) -> None:
        """Reserve ``n`` bytes and sleep as long as needed."""
        wait = self.reserve(n)
        if wait > 0:
            self._sleep(wait)

    def chunk_size(self, default: int) -> int:
        """A chunk size that keeps output smooth at this rate (about 1/20 s of data)."""
        return max(1024, min(default, int(self.rate / 20)))


@dataclass
class Fault:
    """One fault to inject into one request.

    Attributes:
        kind: one of ``FAULT_KINDS``.
        user_rate: for ``403-rate``: ``userRateLimitExceeded`` instead of
            ``rateLimitExceeded``.
        drop_fraction: for ``drop``: the share of the response body sent
            before the reset (request bodies: the share read).
        drop_after_bytes: for ``drop``: an exact number of body bytes instead.
    """

    kind: str
    user_rate: bool = False
    drop_fraction: float = 0.5
    drop_after_bytes: int | None = None

    def cut_at(self, body_len: int) -> int:
        """How many of ``body_len`` bytes to send before dropping."""
        if self.drop_after_bytes is not None:
            return max(0, min(body_len, self.drop_after_bytes))
        return max(0, min(body_len - 1, int(body_len * self.drop_fraction)))


@dataclass
class _Scripted:
    fault: Fault
    path_contains: str | None
    method: str | None
    remaining: int


class FaultPlan:
    """Seeded random faults plus scripted ones.

    Args:
        faults: ``{"rate": p}`` (spread equally over ``MIX_KINDS``) and/or
            per-kind probabilities such as ``{"503": 0.05, "quota": 0.01}``.
        seed: seeds the dedicated random generator.
    """

    def __init__(self, faults: Mapping[str, float] | None = None, *, seed: int = 0) -> None:
        self.seed = seed
        self.rates = self._expand(faults or {})
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._scripted: list[_Scripted] = []
        self.counter = 0

    @staticmethod
    def _expand(faults: Mapping[str, float]) -> dict[str, float]:
        rates: dict[str, float] = dict.fromkeys(_RANDOM_KINDS, 0.0)
        for kind, p in faults.items():
            p = float(p)
            if p < 0:
                raise ValueError(f"fault probability for {kind!r} is negative")
            if kind == "rate":
                for k in MIX_KINDS:
                    rates[k] += p / len(MIX_KINDS)
            elif kind in rates:
                rates[kind] += p
            else:
                raise ValueError(f"unknown fault kind {kind!r}; use 'rate' or one of {_RANDOM_KINDS}")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities add up to more than 1")
        return rates

    def fail_next(
        self,
        kind: str,
        path_contains: str | None = None,
        *,
        method: str | None = None,
        count: int = 1,
        drop_after_bytes: int | None = None,
    ) -> None:
        """Fail the next ``count`` requests whose path+query contains ``path_contains``.

        Args:
            kind: one of ``FAULT_KINDS``.
            path_contains: substring of the request target (path and query);
                None matches any eligible request.
            method: only requests with this HTTP method (after
                ``X-HTTP-Method-Override``).
            count: how many matching requests to fail.
            drop_after_bytes: for ``drop``: send exactly this many body bytes.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        fault = Fault(kind=kind, user_rate=kind == "403-user-rate", drop_after_bytes=drop_after_bytes)
        if kind == "403-user-rate":
            fault.kind = "403-rate"
        with self._lock:
            self._scripted.append(_Scripted(fault, path_contains, method.upper() if method else None, count))

    def pending_scripted(self) -> int:
        """How many scripted faults have not fired yet."""
        with self._lock:
            return sum(s.remaining for s in self._scripted)

    def clear(self) -> None:
        """Drop all scripted faults."""
        with self._lock:
            self._scripted.clear()

    def decide(self, method: str, target: str, *, is_download: bool) -> Fault | None:
        """The fault for this request, or None.

        Args:
            method: effective HTTP method.
            target: path and query of the request.
            is_download: True for media downloads (the only ones ``quota`` hits).
        """
        with self._lock:
            for s in self._scripted:
                if s.path_contains is not None and s.path_contains not in target:
                    continue
                if s.method is not None and s.method != method:
                    continue
                if s.fault.kind == "quota" and not is_download:
                    continue
                s.remaining -= 1
                if s.remaining <= 0:
                    self._scripted.remove(s)
                return Fault(
                    kind=s.fault.kind,
                    user_rate=s.fault.user_rate,
                    drop_fraction=s.fault.drop_fraction,
                    drop_after_bytes=s.fault.drop_after_bytes,
                )
            self.counter += 1
            # Always three draws, so one request's outcome never shifts the next one's.
            pick, flavour, cut = self._rng.random(), self._rng.random(), self._rng.random()
        acc = 0.0
        for kind in _RANDOM_KINDS:
            p = self.rates[kind]
            if p <= 0:
                continue
            acc += p
            if pick < acc:
                if kind == "quota" and not is_download:
                    return None
                return Fault(kind=kind, user_rate=flavour < 0.5, drop_fraction=0.1 + 0.8 * cut)
        return None
