"""The transfer engine: parallel ranged downloads that retry, resume and verify.

A file is split into parts of ``config.chunk_bytes()``; up to ``config.connections()`` workers
each stream one part at a time through ``backend.open_range`` and write it at its offset in a
preallocated partial file (``os.pwrite``), so memory use does not depend on file size. Which
parts are complete is recorded next to the partial file (``<partial>.parts.json``), so a
download interrupted by an error, a kernel restart or ``kill -9`` continues where it stopped:
each part in flight resumes from its last checkpoint (every ``CHECKPOINT_BYTES``), so at most
that much per connection is fetched twice. The md5 is computed while the file arrives (a
thread follows the finished prefix), so verification costs almost nothing at the end.

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
from collections.abc import Callable
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
MIN_PART_BYTES = 1024 * 1024
CHECKPOINT_BYTES = 512 * 1024

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


def verify_file(path: Path, *, size: int | None, checksum: str | None,
                md5: str | None = None) -> None:
    """Check ``path`` against the size and ``md5:`` checksum a source reported.

    ``md5`` is the file's md5 when it is already known (computed while it downloaded);
    otherwise the file is read to compute it.

    Raises:
        IntegrityError: the size or the md5 differs.
    """
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise IntegrityError(f"{path.name}: expected {size} bytes, got {actual}")
    if checksum and checksum.startswith("md5:"):
        expected = checksum[4:].lower()
        got = md5 or file_md5(path)
        if got != expected:
            raise IntegrityError(f"{path.name}: md5 {got} does not match the source's {expected}")


class _PartState:
    """Which parts of a partial file are complete, and how far the others got; kept for resume.

    The record is rewritten (atomically) when a part finishes and every
    ``CHECKPOINT_BYTES`` within a part, so a process killed at any moment loses at most that
    much per connection. Bytes are written before the offset that covers them is recorded.
    """

    def __init__(self, path: Path, identity: str | None, size: int, part_bytes: int) -> None:
        self.path = path
        self.identity, self.size, self.part_bytes = identity, size, part_bytes
        self.done: set[int] = set()
        self.offsets: dict[int, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def resume(cls, path: Path, partial: Path, identity: str | None, size: int,
               part_bytes: int) -> _PartState:
        """The record left by an earlier attempt at the same content, or a fresh one.

        An earlier record keeps its own part size, so a changed configuration still resumes.
        """
        try:
            data = json.loads(path.read_text())
            usable = (identity is not None and data.get("identity") == identity
                      and data.get("size") == size and partial.exists()
                      and partial.stat().st_size == size)
        except (OSError, ValueError):
            usable = False
        if not usable:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return cls(path, identity, size, part_bytes)
        state = cls(path, identity, size, int(data["part_bytes"]))
        state.done = set(data.get("done", []))
        state.offsets = {int(k): int(v) for k, v in data.get("offsets", {}).items()}
        return state

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
        tmp.write_text(json.dumps({"identity": self.identity, "size": self.size,
                                   "part_bytes": self.part_bytes, "done": sorted(self.done),
                                   "offsets": {str(k): v for k, v in self.offsets.items()}}))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _PrefixHasher(threading.Thread):
    """md5 of the file while it downloads: follows the run of finished parts from the start.

    Parts finish out of order; this thread hashes each as soon as every part before it is
    done, reading it back from the page cache, so only the last parts remain at the end.
    """

    def __init__(self, fd: int, parts: list[tuple[int, int]], done: set[int]) -> None:
        super().__init__(name="colabmodels-md5", daemon=True)
        self.fd, self.parts = fd, parts
        self.done = set(done)
        self.next = 0
        self.digest = hashlib.md5(usedforsecurity=False)
        self.cond = threading.Condition()
        self.stopped = False

    def part_done(self, index: int) -> None:
        with self.cond:
            self.done.add(index)
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify()

    def run(self) -> None:
        while self.next < len(self.parts):
            with self.cond:
                while self.next not in self.done and not self.stopped:
                    self.cond.wait()
                if self.stopped:
                    return
            start, end = self.parts[self.next]
            pos = start
            while pos < end:
                block = os.pread(self.fd, min(WRITE_BLOCK, end - pos), pos)
                if not block:
                    return
                self.digest.update(block)
                pos += len(block)
            self.next += 1

    def hexdigest(self) -> str | None:
        """The md5 of the whole file, once every part was hashed (None if it stopped early)."""
        self.join()
        return self.digest.hexdigest() if self.next == len(self.parts) else None


def _parts(size: int, part_bytes: int) -> list[tuple[int, int]]:
    return [(start, min(start + part_bytes, size)) for start in range(0, size, part_bytes)]


def part_size(size: int, connections: int) -> int:
    """Parts of at most ``config.chunk_bytes()``, small enough to keep every connection busy."""
    per_connection = -(-size // max(1, connections))
    return max(MIN_PART_BYTES, min(config.chunk_bytes(), per_connection))


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
    connections = connections or config.connections()
    if not supports_ranges(stat):
        part_bytes, connections = max(size, 1), 1  # one stream; ranges would each restart at 0
    state = _PartState.resume(state_path(partial), partial, stat.identity, size,
                              part_bytes or part_size(size, connections))
    parts = _parts(size, state.part_bytes)
    has_md5 = verify and bool(stat.checksum and stat.checksum.startswith("md5:"))
    fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
    hasher = _PrefixHasher(fd, parts, state.done) if has_md5 else None
    try:
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
        already = sum(end - start for i, (start, end) in enumerate(parts) if i in state.done)
        already += sum(pos - parts[i][0] for i, pos in state.offsets.items() if i not in state.done)
        if already:
            logger.info("%s: resuming, %d of %d bytes already on disk", stat.name, already, size)
            report(already)
        todo = [i for i in range(len(parts)) if i not in state.done]
        workers = max(1, min(connections, len(todo)))
        cancelled = threading.Event()
        if hasher is not None:
            hasher.start()

        def fetch_part(index: int) -> None:
            start, end = parts[index]
            cursor = _Cursor(index, state.offsets.get(index, start))
            attempt = 0
            while cursor.pos < end:
                if cancelled.is_set():
                    return
                try:
                    _write_range(backend, stat, fd, cursor, end, report, cancelled, state)
                    if cancelled.is_set():
                        return
                    if cursor.pos < end:
                        raise RetryableError(
                            f"connection closed at byte {cursor.pos} of part {start}-{end}")
                except Exception as exc:
                    if not is_retryable(exc):
                        raise
                    state.mark(index, upto=cursor.pos)
                    attempt += 1
                    if attempt >= config.max_retries():
                        raise TransferError(
                            f"downloading {stat.name} failed after {attempt} attempts at byte "
                            f"{cursor.pos}: {exc}. What arrived is kept; call again to resume."
                        ) from exc
                    delay = backoff_delay(attempt - 1, getattr(exc, "retry_after", None))
                    logger.info("%s bytes %d-%d: %s; retry in %.2fs", stat.name, cursor.pos, end,
                                exc, delay)
                    cancelled.wait(delay)
            state.mark(index)
            if hasher is not None:
                hasher.part_done(index)

        try:
            if todo:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="colabmodels-dl") as pool:
                    futures = [pool.submit(fetch_part, i) for i in todo]
                    finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
                    failed = [f for f in finished if f.exception() is not None]
                    if failed:
                        cancelled.set()
                        wait(futures)
                        raise failed[0].exception()  # type: ignore[misc]
            digest = hasher.hexdigest() if hasher is not None else None
        finally:
            if hasher is not None:
                hasher.stop()
                hasher.join()
    finally:
        os.close(fd)
    if verify:
        try:
            verify_file(partial, size=size, checksum=stat.checksum, md5=digest)
        except IntegrityError:
            partial.unlink(missing_ok=True)
            state.remove()
            raise
    state.remove()


class _Cursor:
    """How far one part got (shared between its attempts)."""

    __slots__ = ("index", "pos")

    def __init__(self, index: int, pos: int) -> None:
        self.index, self.pos = index, pos


def _write_range(backend: StorageBackend, stat: RemoteStat, fd: int, cursor: _Cursor, end: int,
                 report: ProgressCallback, cancelled: threading.Event, state: _PartState) -> None:
    """Stream ``[cursor.pos, end)`` into ``fd`` at its offset, advancing the cursor as it goes."""
    checkpoint = cursor.pos + CHECKPOINT_BYTES
    for block in backend.open_range(stat.ref, cursor.pos, end):
        if cancelled.is_set():
            return
        if cursor.pos + len(block) > end:
            raise IntegrityError(
                f"{stat.name}: the source sent more bytes than asked for ({cursor.pos + len(block)} > {end})"
            )
        _pwrite_all(fd, block, cursor.pos)
        cursor.pos += len(block)
        report(len(block))
        if cursor.pos >= checkpoint and cursor.pos < end:
            state.mark(cursor.index, upto=cursor.pos)
            checkpoint = cursor.pos + CHECKPOINT_BYTES


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


def describe_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover
