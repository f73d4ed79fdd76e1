"""The transfer engine: parallel ranged downloads that retry, resume and verify.

A file is split into parts of ``config.chunk_bytes()``; up to ``config.connections()`` workers
each stream one part at a time through ``backend.open_range`` and write it at its offset in a
preallocated partial file (``os.pwrite``, or a seek and a write where the OS has none), so
memory use does not depend on file size. Which parts are complete is recorded next to the
partial file (``<partial>.parts.json``), so a download interrupted by an error, a kernel
restart or ``kill -9`` continues where it stopped: each part in flight resumes from its last
checkpoint (every ``CHECKPOINT_BYTES``), so at most that much per connection is fetched
twice. The md5 is computed while the file arrives (a thread follows the finished prefix), so
verification costs almost nothing at the end.

Transient failures (``RetryableError``: 429, 5xx, rate-limit 403,
dropped connections) are retried under the one policy of ``colabmodels.retry``
(exponential backoff, full jitter, ``Retry-After``); a host that cannot be reached at all
fails at once with ``NetworkDownError``. Anything else (not found, no
permission, download quota, a Google Doc) stops the transfer at once. The finished file is
checked against the size and, where the source has one, the md5 the source reported; a
mismatch discards it and raises ``IntegrityError``.

Stopping: a ``KeyboardInterrupt`` (the notebook's Stop button) in the calling thread sets a
cancel flag that every worker checks between blocks (256 KiB for HTTP and Drive) and while it
waits to retry; the caller waits for them (about a second at most), records how far each part
got, and re-raises. The partial file stays and the next call resumes it. A caller that runs
the engine in its own worker threads passes ``cancel=`` to stop it the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from pathlib import Path
from typing import TYPE_CHECKING

from . import config
from .errors import IntegrityError, RetryableError, TransferError
from .progress import ProgressCallback, describe_bytes
from .retry import Retry, call_with_retries
from .workers import Workers

if TYPE_CHECKING:
    from .refs import Ref
    from .storage.base import RemoteStat, StorageBackend

__all__ = [
    "CHECKPOINT_BYTES",
    "call_with_retries",
    "describe_bytes",
    "download",
    "download_to",
    "file_md5",
    "file_sha256",
    "open_private",
    "part_size",
    "pread_at",
    "pwrite_at",
    "state_path",
    "supports_ranges",
    "verify_file",
]

logger = logging.getLogger("colabmodels.transfer")

WRITE_BLOCK = 1024 * 1024
MIN_PART_BYTES = 1024 * 1024
CHECKPOINT_BYTES = 512 * 1024
WAIT_SLICE_S = 0.1
"""How often the calling thread wakes while workers download (so Ctrl-C is seen at once)."""


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


_SEEK_LOCK = threading.Lock()


def pread_at(fd: int, n: int, offset: int) -> bytes:
    """``os.pread`` where the OS has it; elsewhere (Windows) a seek and a read under one lock."""
    pread = getattr(os, "pread", None)
    if pread is not None:
        return bytes(pread(fd, n, offset))
    with _SEEK_LOCK:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, n)


def pwrite_at(fd: int, data: memoryview | bytes, offset: int) -> int:
    """``os.pwrite`` where the OS has it; elsewhere (Windows) a seek and a write under one lock."""
    pwrite = getattr(os, "pwrite", None)
    if pwrite is not None:
        return int(pwrite(fd, data, offset))
    with _SEEK_LOCK:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.write(fd, data)


O_BINARY = getattr(os, "O_BINARY", 0)
"""No newline translation in ``os.read``/``os.write`` (Windows; 0 elsewhere)."""
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""Opening a path whose last component is a symbolic link fails (0 where the OS has no such flag)."""
PRIVATE_FILE_MODE = 0o600


def open_private(path: Path | str, flags: int) -> int:
    """Open ``path`` for writing as a ``0600`` file of ours, never through a symbolic link.

    A link found at ``path`` (colabmodels never makes one in the cache: someone planted it) is
    removed, not followed, so a download cannot overwrite the file it points to; one that
    reappears at once makes the open fail.

    Raises:
        TransferError: ``path`` is still a symbolic link.
    """
    if os.path.islink(path):
        logger.warning("%s was a symbolic link (colabmodels makes none there); it was removed, "
                       "not followed", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    try:
        fd = os.open(path, flags | os.O_CREAT | O_NOFOLLOW | O_BINARY, PRIVATE_FILE_MODE)
    except OSError as e:
        if os.path.islink(path):
            raise TransferError(
                f"{path} is a symbolic link that keeps coming back: someone else can write to "
                "this folder. Point COLABMODELS_CACHE_DIR at a folder only you can write to."
            ) from e
        raise
    if hasattr(os, "fchmod"):  # POSIX (whatever the umask); Windows has no such modes
        with contextlib.suppress(OSError):
            os.fchmod(fd, PRIVATE_FILE_MODE)
    return fd


def _read_record(path: Path) -> str:
    """The text of a part record, never read through a symbolic link."""
    fd = os.open(path, os.O_RDONLY | O_NOFOLLOW)
    with os.fdopen(fd, encoding="utf-8") as fh:
        return fh.read()


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
            data = json.loads(_read_record(path))
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
        text = json.dumps({"identity": self.identity, "size": self.size,
                           "part_bytes": self.part_bytes, "done": sorted(self.done),
                           "offsets": {str(k): v for k, v in self.offsets.items()}})
        # A fresh name, created exclusively: a planted file or link there is never written.
        tmp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW, PRIVATE_FILE_MODE)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

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
                block = pread_at(self.fd, min(WRITE_BLOCK, end - pos), pos)
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


def download(backend: StorageBackend, ref: Ref, dest: Path, *,
             progress: ProgressCallback | None = None,
             cancel: threading.Event | None = None) -> RemoteStat:
    """Download one file to ``dest`` (no cache involved): ``stat`` it, then ``download_to``.

    Raises:
        RefError: ``ref`` is a folder.
        and the errors of ``download_to``.
    """
    from .errors import RefError

    st = backend.stat(ref)
    if st.is_dir:
        raise RefError(f"{ref.raw or ref} is a folder; download its files one by one")
    download_to(backend, st, dest, progress=progress, cancel=cancel)
    return st


def download_to(backend: StorageBackend, stat: RemoteStat, partial: Path, *,
                progress: ProgressCallback | None = None, connections: int | None = None,
                part_bytes: int | None = None, verify: bool = True,
                cancel: threading.Event | None = None) -> None:
    """Download the file ``stat`` describes into ``partial``, resuming what is already there.

    ``partial`` is left complete and verified on success. On failure or interruption it stays
    (with its part record) so the next call resumes, unless verification failed, which
    discards it.

    Args:
        cancel: set it (from another thread) to stop the download within about a second;
            the call then raises ``TransferError``. A ``KeyboardInterrupt`` in the
            calling thread stops it the same way and is re-raised.

    Raises:
        KeyboardInterrupt: as received, once every worker stopped.
        NotDownloadableError: the source has no bytes for this file (a Google Doc).
        NetworkDownError: the host cannot be reached at all.
        TransferError: transient errors outlasted every retry, or ``cancel`` was set.
        IntegrityError: the finished file does not match the source's size or md5.
        NotFoundError, AuthError, QuotaError: as the backend raised them.
    """
    backend.check_downloadable(stat)
    partial.parent.mkdir(parents=True, exist_ok=True)
    report = progress or _ignore
    cancelled = threading.Event()

    def stopped() -> bool:
        if cancel is not None and cancel.is_set():
            cancelled.set()
        return cancelled.is_set()

    if stat.size is None:
        _stream_whole(backend, stat, partial, report, stopped)
        return
    size = stat.size
    connections = connections or config.connections()
    if not supports_ranges(stat):
        part_bytes, connections = max(size, 1), 1  # one stream; ranges would each restart at 0
    state = _PartState.resume(state_path(partial), partial, stat.identity, size,
                              part_bytes or part_size(size, connections))
    parts = _parts(size, state.part_bytes)
    has_md5 = verify and bool(stat.checksum and stat.checksum.startswith("md5:"))
    fd = open_private(partial, os.O_RDWR)
    hasher = _PrefixHasher(fd, parts, state.done) if has_md5 else None
    digest: str | None = None
    try:
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
        already = sum(end - start for i, (start, end) in enumerate(parts) if i in state.done)
        already += sum(pos - parts[i][0] for i, pos in state.offsets.items() if i not in state.done)
        if already:
            logger.info("%s: resuming, %d of %d bytes already on disk", stat.name, already, size)
            report(already)
        todo = [i for i in range(len(parts)) if i not in state.done]
        if hasher is not None:
            hasher.start()

        def fetch_part(index: int) -> None:
            start, end = parts[index]
            cursor = _Cursor(index, state.offsets.get(index, start))
            retry = Retry(f"downloading {stat.name}", cancel=cancelled,
                          hint="What arrived is kept; call again to resume.")
            while cursor.pos < end:
                if stopped():
                    state.mark(index, upto=cursor.pos)
                    return
                try:
                    _write_range(backend, stat, fd, cursor, end, report, stopped, state)
                    if stopped():
                        state.mark(index, upto=cursor.pos)
                        return
                    if cursor.pos < end:
                        raise RetryableError(
                            f"connection closed at byte {cursor.pos} of part {start}-{end}")
                except Exception as exc:
                    state.mark(index, upto=cursor.pos)
                    if not retry.again(exc):
                        raise
            state.mark(index)
            if hasher is not None:
                hasher.part_done(index)

        try:
            if todo:
                _run_parts(fetch_part, todo, max(1, min(connections, len(todo))), cancelled,
                           stopped)
            if cancel is not None and cancel.is_set():
                raise TransferError(f"downloading {stat.name} was cancelled; what arrived is "
                                    "kept and the next call resumes it")
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


def _ignore(_: int) -> None:
    return None


def _run_parts(fetch_part: Callable[[int], None], todo: list[int], workers: int,
               cancelled: threading.Event, stopped: Callable[[], bool]) -> None:
    """Run ``fetch_part`` for every index in ``todo`` on ``workers`` threads.

    The calling thread waits in short slices, so a KeyboardInterrupt reaches it at once; then
    (or when a part fails, or ``stopped()``) ``cancelled`` is set, parts not yet started are
    dropped, and the call returns or raises only once every worker has stopped (each checks
    the flag between blocks): nothing writes to the file after this returns.
    """
    pool = Workers(workers, "colabmodels-dl")  # waits for every worker, also a hidden one
    try:
        pending: set[Future[None]] = {pool.submit(fetch_part, i) for i in todo}
        while pending:
            done, pending = wait(pending, timeout=WAIT_SLICE_S, return_when=FIRST_EXCEPTION)
            for future in done:
                error = future.exception()
                if error is not None:
                    raise error
            if stopped():
                break
    except BaseException:
        cancelled.set()
        raise
    finally:
        while True:  # every worker stops within one block; none may outlive the file handle
            try:
                pool.shutdown(wait=True, cancel_futures=True)
                break
            except KeyboardInterrupt:  # pressed again while they stop: keep waiting
                cancelled.set()


class _Cursor:
    """How far one part got (shared between its attempts)."""

    __slots__ = ("index", "pos")

    def __init__(self, index: int, pos: int) -> None:
        self.index, self.pos = index, pos


def _write_range(backend: StorageBackend, stat: RemoteStat, fd: int, cursor: _Cursor, end: int,
                 report: ProgressCallback, stopped: Callable[[], bool], state: _PartState) -> None:
    """Stream ``[cursor.pos, end)`` into ``fd`` at its offset, advancing the cursor as it goes.

    Returns early (closing the connection) once ``stopped()``.
    """
    checkpoint = cursor.pos + CHECKPOINT_BYTES
    stream = backend.open_range(stat.ref, cursor.pos, end)
    try:
        for block in stream:
            if stopped():
                return
            if cursor.pos + len(block) > end:
                raise IntegrityError(
                    f"{stat.name}: the source sent more bytes than asked for "
                    f"({cursor.pos + len(block)} > {end})")
            _pwrite_all(fd, block, cursor.pos)
            cursor.pos += len(block)
            report(len(block))
            if cursor.pos >= checkpoint and cursor.pos < end:
                state.mark(cursor.index, upto=cursor.pos)
                checkpoint = cursor.pos + CHECKPOINT_BYTES
    finally:
        _close(stream)


def _close(stream: object) -> None:
    """Close a stream that has a ``close`` (so an abandoned connection is dropped now)."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = pwrite_at(fd, view, offset)
        view = view[written:]
        offset += written


def _stream_whole(backend: StorageBackend, stat: RemoteStat, partial: Path,
                  report: ProgressCallback, stopped: Callable[[], bool]) -> None:
    """A source that does not say its size: one stream, restarted from zero on failure."""
    def attempt() -> None:
        with os.fdopen(open_private(partial, os.O_WRONLY | os.O_TRUNC), "wb") as fh:
            stream = backend.open_range(stat.ref, 0, None)
            try:
                for block in stream:
                    if stopped():
                        raise TransferError(f"downloading {stat.name} was cancelled")
                    fh.write(block)
                    report(len(block))
            finally:
                _close(stream)

    call_with_retries(attempt, what=f"downloading {stat.name}")
    verify_file(partial, size=None, checksum=stat.checksum)
