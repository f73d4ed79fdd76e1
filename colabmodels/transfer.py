"""The transfer engine: parallel ranged downloads that retry, resume and verify.

A file is split into parts of ``config.chunk_bytes()``; up to ``config.connections()`` workers
each stream one part at a time through ``backend.open_range`` and write it at its offset in a
preallocated partial file (``os.pwrite``), so memory use does not depend on file size. Which
parts are complete is recorded next to the partial file (``<partial>.parts.json``), so a
download interrupted by an error, a kernel restart or ``kill -9`` continues where it stopped:
at most the parts that were in flight are fetched again, and those only from the last byte
written.

Transient failures (:class:`~colabmodels.storage.base.RetryableError`: 429, 5xx, rate-limit
403, dropped connections) are retried with exponential backoff and full jitter, honouring
``Retry-After``. Anything else (not found, no permission, download quota) stops the transfer at
once. The finished file is checked against the size and, where the source has one, the md5
the source reported; a mismatch discards it and raises
:class:`~colabmodels.errors.IntegrityError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from . import config
from .errors import IntegrityError, TransferError
from .storage.base import RetryableError

if TYPE_CHECKING:
    from .progress import ProgressCallback
    from .storage.base import RemoteStat, StorageBackend

logger = logging.getLogger("colabmodels")

BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 20.0
RETRY_AFTER_CAP_S = 120.0
WRITE_BLOCK = 1024 * 1024

T = TypeVar("T")


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1``: Retry-After if given, else full jitter."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, RETRY_AFTER_CAP_S)
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2**attempt)))


def is_retryable(exc: BaseException) -> bool:
    """Transient network trouble: worth another try."""
    from .errors import ColabModelsError

    if isinstance(exc, RetryableError):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError)) and not isinstance(exc, ColabModelsError)


def call_with_retries(fn: Callable[[], T], *, what: str, attempts: int | None = None,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``fn`` until it succeeds, retrying transient failures with backoff.

    Raises:
        TransferError: every attempt failed with a transient error.
    """
    attempts = attempts or config.max_retries()
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if attempt + 1 >= attempts:
                raise TransferError(
                    f"{what} failed after {attempts} attempts: {exc}. The source kept answering "
                    "with transient errors; try again later."
                ) from exc
            delay = backoff_delay(attempt, getattr(exc, "retry_after", None))
            logger.info("%s: %s; retrying in %.2fs (attempt %d/%d)", what, exc, delay,
                        attempt + 2, attempts)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(WRITE_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(WRITE_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, *, size: int | None, checksum: str | None) -> None:
    """Check ``path`` against the size and ``md5:`` checksum a source reported.

    Raises:
        IntegrityError: the size or the md5 differs.
    """
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise IntegrityError(f"{path.name}: expected {size} bytes, got {actual}")
    if checksum and checksum.startswith("md5:"):
        expected = checksum[4:].lower()
        got = file_md5(path)
        if got != expected:
            raise IntegrityError(f"{path.name}: md5 {got} does not match the source's {expected}")


class _PartState:
    """Which parts of a partial file are complete; persisted for resume."""

    def __init__(self, path: Path, identity: str | None, size: int, part_bytes: int) -> None:
        self.path = path
        self.key = {"identity": identity, "size": size, "part_bytes": part_bytes}
        self.done: set[int] = set()
        self.offsets: dict[int, int] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if {k: data.get(k) for k in self.key} == self.key and self.key["identity"] is not None:
            self.done = set(data.get("done", []))
            self.offsets = {int(k): int(v) for k, v in data.get("offsets", {}).items()}

    def mark(self, index: int, *, upto: int | None = None) -> None:
        with self._lock:
            if upto is None:
                self.done.add(index)
                self.offsets.pop(index, None)
            else:
                self.offsets[index] = upto
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({**self.key, "done": sorted(self.done),
                                   "offsets": {str(k): v for k, v in self.offsets.items()}}))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _parts(size: int, part_bytes: int) -> list[tuple[int, int]]:
    return [(start, min(start + part_bytes, size)) for start in range(0, size, part_bytes)]


def supports_ranges(stat: RemoteStat) -> bool:
    """Whether ranged reads work: HTTP servers must say ``Accept-Ranges: bytes``; APIs always do."""
    if stat.ref.source != "http":
        return True
    return "bytes" in stat.properties.get("accept-ranges", "").lower()


def state_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".parts.json")


def download_to(backend: StorageBackend, stat: RemoteStat, partial: Path, *,
                progress: ProgressCallback | None = None, connections: int | None = None,
                part_bytes: int | None = None, verify: bool = True) -> None:
    """Download the file ``stat`` describes into ``partial``, resuming what is already there.

    ``partial`` is left complete and verified on success. On failure it stays (with its part
    record) so the next call resumes, unless verification failed, which discards it.

    Raises:
        TransferError: transient errors outlasted every retry.
        IntegrityError: the finished file does not match the source's size or md5.
        NotFoundError, AuthError, QuotaError: as the backend raised them.
    """
    partial.parent.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda n: None)
    if stat.size is None:
        _stream_whole(backend, stat, partial, report)
        return
    size = stat.size
    part_bytes = part_bytes or config.chunk_bytes()
    if not supports_ranges(stat):
        part_bytes, connections = max(size, 1), 1  # one stream; ranges would each restart at 0
    state = _PartState(state_path(partial), stat.identity, size, part_bytes)
    if partial.exists() and partial.stat().st_size == size:
        state.load()
    else:
        state.remove()
    parts = _parts(size, part_bytes)
    fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
        already = sum(end - start for i, (start, end) in enumerate(parts) if i in state.done)
        already += sum(pos - parts[i][0] for i, pos in state.offsets.items() if i not in state.done)
        if already:
            logger.info("%s: resuming, %d of %d bytes already on disk", stat.name, already, size)
            report(already)
        todo = [i for i in range(len(parts)) if i not in state.done]
        workers = max(1, min(connections or config.connections(), len(todo)))
        cancelled = threading.Event()

        def fetch_part(index: int) -> None:
            start, end = parts[index]
            pos = state.offsets.get(index, start)
            attempt = 0
            while pos < end:
                if cancelled.is_set():
                    return
                try:
                    pos = _write_range(backend, stat, fd, pos, end, report, cancelled)
                    if pos < end:
                        raise RetryableError(f"connection closed at byte {pos} of part {start}-{end}")
                    break
                except Exception as exc:
                    if not is_retryable(exc):
                        raise
                    state.mark(index, upto=pos)
                    attempt += 1
                    if attempt >= config.max_retries():
                        raise TransferError(
                            f"downloading {stat.name} failed after {attempt} attempts at byte "
                            f"{pos}: {exc}. What arrived is kept; call again to resume."
                        ) from exc
                    delay = backoff_delay(attempt - 1, getattr(exc, "retry_after", None))
                    logger.info("%s bytes %d-%d: %s; retry in %.2fs", stat.name, pos, end, exc, delay)
                    cancelled.wait(delay)
            state.mark(index)

        if todo:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="colabmodels-dl") as pool:
                futures = [pool.submit(fetch_part, i) for i in todo]
                finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failed = [f for f in finished if f.exception() is not None]
                if failed:
                    cancelled.set()
                    wait(futures)
                    raise failed[0].exception()  # type: ignore[misc]
    finally:
        os.close(fd)
    if verify:
        try:
            verify_file(partial, size=size, checksum=stat.checksum)
        except IntegrityError:
            partial.unlink(missing_ok=True)
            state.remove()
            raise
    state.remove()


def _write_range(backend: StorageBackend, stat: RemoteStat, fd: int, pos: int, end: int,
                 report: ProgressCallback, cancelled: threading.Event) -> int:
    """Stream ``[pos, end)`` into ``fd`` at its offset; return how far it got."""
    for block in backend.open_range(stat.ref, pos, end):
        if cancelled.is_set():
            return pos
        if pos + len(block) > end:
            raise IntegrityError(
                f"{stat.name}: the source sent more bytes than asked for ({pos + len(block)} > {end})"
            )
        _pwrite_all(fd, block, pos)
        pos += len(block)
        report(len(block))
    return pos


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _stream_whole(backend: StorageBackend, stat: RemoteStat, partial: Path,
                  report: ProgressCallback) -> None:
    """A source that does not say its size: one stream, restarted from zero on failure."""

    def attempt() -> None:
        with open(partial, "wb") as fh:
            for block in backend.open_range(stat.ref, 0, None):
                fh.write(block)
                report(len(block))

    call_with_retries(attempt, what=f"downloading {stat.name}")
    verify_file(partial, size=None, checksum=stat.checksum)


def iter_file(path: Path, block: int = WRITE_BLOCK) -> Iterable[bytes]:
    with open(path, "rb") as fh:
        yield from iter(lambda: fh.read(block), b"")


def describe_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
