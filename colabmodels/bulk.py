"""Many files at once: a many-in-flight fetch into the cache, for any source.

``BulkFetcher`` brings many files into the cache with many requests in flight (64 by
default). Every file becomes its own cache entry keyed by its content identity
(``colabmodels.cachestore.identity_of``; Drive: id + md5Checksum), exactly the entry
``cm.fetch`` of that file would use, so datasets, folder fetches and single-file fetches share
what is already downloaded. Small files are streamed in one request each (md5 computed while
they arrive); large ones go through the ranged, resuming transfer engine. Memory stays bounded:
bytes go straight to disk. ``fetch_tree`` makes a folder one cache entry from the per-file
entries of a listed tree (``colabmodels.tree.walk_tree``).

The fetch loop is ``BulkFetcher.fetch`` (one file, on the calling thread) run by the
fetcher's thread pool (``BulkFetcher.submit``); ``BulkFetcher.fetch_all`` waits for
many and cancels the rest on the first failure.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .cachestore import CacheEntry, cache, identity_of, key_for, md5_of
from .errors import NotFoundError
from .progress import progress_bar
from .storage.drive import DriveBackend
from .transfer import O_BINARY
from .tree import walk_tree
from .workers import Workers

if TYPE_CHECKING:
    from .storage.base import RemoteStat, StorageBackend

logger = logging.getLogger(__name__)

FETCH_WORKERS = 64
"""Files requested at the same time by ``BulkFetcher``."""
SMALL_FILE_BYTES = 4 * 1024 * 1024
"""Files up to this size are fetched in one request; larger ones in parallel ranged parts."""


# -- fetching many files ---------------------------------------------------------------------

def cached_path(stat: RemoteStat) -> Path | None:
    """Where ``stat``'s file already sits in the cache, found without reading the entry
    (``Cache.file_paths``)."""
    return cached_paths([stat])[0]


def cached_paths(stats: list[RemoteStat]) -> list[Path | None]:
    """``cached_path`` for many files: one directory listing and one ``stat`` each, on
    this thread (on a local disk a few microseconds, less than handing it to a pool)."""
    return cache.file_paths([(key_for(identity_of(s)), s.name, s.size) for s in stats])


def _download_small(backend: StorageBackend, stat: RemoteStat, dest: Path) -> str:
    """One request for the whole file, md5 computed as it arrives, written to ``dest``
    (created ``0600``); retried from zero. ``dest`` is removed if the file does not verify."""
    from .transfer import call_with_retries, verify_file

    def attempt() -> str:
        digest = hashlib.md5(usedforsecurity=False)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_BINARY, 0o600)
        try:  # the bare descriptor: a file object would add three system calls per file
            if stat.size != 0:
                for block in backend.open_range(stat.ref, 0, stat.size):
                    digest.update(block)
                    view = memoryview(block)
                    while view:
                        view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        return digest.hexdigest()

    try:
        md5 = call_with_retries(attempt, what=f"downloading {stat.ref.path or stat.name}")
        verify_file(dest, size=stat.size, checksum=stat.checksum, md5=md5)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return md5


def fetch_file_entry(backend: StorageBackend, stat: RemoteStat,
                     report: Callable[[int], None] | None = None) -> CacheEntry:
    """The cache entry of one file, downloading it when it is missing (one entry per file).

    The same key and entry as ``cm.fetch`` of that file; the key's cross-process lock is held
    while it is created, so processes that want one file fetch it once.
    """
    return _file_entry(backend, stat, report)[0]


def _file_entry(backend: StorageBackend, stat: RemoteStat,
                report: Callable[[int], None] | None) -> tuple[CacheEntry, bool]:
    """``(entry, downloaded now)``."""
    identity = identity_of(stat)
    key = key_for(identity)

    small = stat.size is not None and stat.size <= SMALL_FILE_BYTES

    def fill(target: Path) -> None:
        if small:
            # Straight into the entry's staging folder (private, invisible until the
            # entry is renamed into place): a small file is fetched again from zero anyway.
            _download_small(backend, stat, target)
            if report and stat.size:
                report(stat.size)
            return
        from .transfer import download_to

        partial = cache.partial_path(key)  # a big file resumes from here after a crash
        download_to(backend, stat, partial, progress=report)
        os.replace(partial, target)

    md5 = md5_of(stat)
    return cache.get_or_store(key, identity=identity, source=str(stat.ref), name=stat.name,
                              kind="file", fill=fill, known_md5={"": md5} if md5 else None)


_FAST_BACKENDS: weakref.WeakKeyDictionary[Any, tuple[int, StorageBackend]] = weakref.WeakKeyDictionary()
_FAST_LOCK = threading.Lock()


def bulk_backend(backend: StorageBackend, connections: int) -> StorageBackend:
    """A backend whose connection pool holds ``connections`` (Drive keeps one per session)."""
    session = backend.session if isinstance(backend, DriveBackend) else None
    if session is None:
        return backend
    with _FAST_LOCK:
        found = _FAST_BACKENDS.get(session)
        if found is None or found[0] != os.getpid():  # a forked child never shares sockets
            found = _FAST_BACKENDS[session] = (os.getpid(),
                                               DriveBackend(session, connections=connections))
        return found[1]


class BulkFetcher:
    """Fetches many files into the cache, ``workers`` requests in flight.

    ``submit(stat)`` returns a future of the file's local path in the cache; the same file
    submitted twice is fetched once. Use as a context manager (or call ``close``).
    """

    def __init__(self, backend: StorageBackend, *, workers: int = FETCH_WORKERS,
                 progress: Callable[[int], None] | None = None) -> None:
        self.backend = bulk_backend(backend, workers + 8)
        self.workers = workers
        self._pool = Workers(workers, "colabmodels-bulk")
        self._futures: dict[str, Future[Path]] = {}
        self._lock = threading.Lock()
        self._progress = progress
        self.keys: set[str] = set()
        self.downloaded = 0

    def fetch(self, stat: RemoteStat) -> Path:
        """Fetch one file now, on the calling thread; its cache path."""
        entry, downloaded = _file_entry(self.backend, stat, self._progress)
        if downloaded:
            with self._lock:
                self.downloaded += 1
        elif self._progress and stat.size:
            self._progress(stat.size)
        return entry.path

    def submit(self, stat: RemoteStat) -> Future[Path]:
        key = key_for(identity_of(stat))
        with self._lock:
            fut = self._futures.get(key)
            if fut is None or (fut.done() and fut.exception() is not None):
                fut = self._futures[key] = self._pool.submit(self.fetch, stat)
                self.keys.add(key)
            return fut

    def run(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on one of the fetcher's workers (it may call ``fetch``)."""
        return self._pool.submit(fn, *args)

    def forget(self, stat: RemoteStat) -> None:
        """Drop the finished future of ``stat`` (bounds memory on very long runs)."""
        with self._lock:
            self._futures.pop(key_for(identity_of(stat)), None)

    def fetch_all(self, stats: Iterable[RemoteStat]) -> list[Path]:
        """Every file's cache path, in order; the first failure is raised after the rest stop."""
        futures = [self.submit(s) for s in stats]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def close(self) -> None:
        """Drop what has not started and wait for every worker to end (also one that a
        KeyboardInterrupt hid from the pool: ``colabmodels.workers``)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if config.cache_max_bytes() is not None:
            cache.prune(keep=self.keys)

    def __enter__(self) -> BulkFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- a folder as one cache entry (cm.fetch) ----------------------------------------------------

def fetch_tree(backend: StorageBackend, root: RemoteStat, *, progress: bool = True,
               workers: int = FETCH_WORKERS) -> CacheEntry:
    """A folder (SavedModel, gensim with sidecars, sharded checkpoint...) as one cache entry.

    The tree is listed with ``walk_tree`` (remembered), each file is fetched into its own
    entry by ``BulkFetcher``, and the folder entry is assembled from hard links to them
    (a copy where links are not possible), so a folder that changed re-downloads only the
    files that changed. Google Docs (no bytes) and unreadable shortcuts are left out, with a
    warning.

    Raises:
        NotFoundError: the folder holds no files.
    """
    tree = walk_tree(backend, root)
    files = []
    for node in tree.file_nodes():
        if node.problem or node.is_google_doc:
            logger.warning("%s: left out of %s: %s", node.rel, root.name,
                           node.problem or "a Google Docs file has no bytes to download")
            continue
        files.append(node)
    if not files:
        raise NotFoundError(f"folder {root.ref.path or root.ref.id} is empty")
    digest = hashlib.sha256()
    for node in sorted(files, key=lambda n: n.local):
        digest.update(f"{node.local}\0{identity_of(node.stat)}\n".encode())
    identity = f"tree:{root.ref.source}:{digest.hexdigest()}"
    key = key_for(identity)
    entry = cache.entry(key)
    if entry is not None:
        return entry
    total = sum(n.stat.size or 0 for n in files)
    with progress_bar(total, root.name, enabled=progress) as report, \
            BulkFetcher(backend, workers=workers, progress=report) as fetcher:
        cache.ensure_space(total)
        paths = fetcher.fetch_all(n.stat for n in files)

    def fill(target: Path) -> None:
        for node, src in zip(files, paths, strict=True):
            dest = target / node.local
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dest)
            except OSError:
                shutil.copy2(src, dest)

    known = {n.local: md5 for n in files if (md5 := md5_of(n.stat))}
    entry, _ = cache.get_or_store(key, identity=identity, source=str(root.ref), name=root.name,
                                  kind="tree", fill=fill, known_md5=known)
    if config.cache_max_bytes() is not None:
        cache.prune(keep={entry.key, *fetcher.keys})
    return entry


__all__ = ["FETCH_WORKERS", "SMALL_FILE_BYTES", "BulkFetcher", "bulk_backend", "cached_path",
           "cached_paths", "fetch_file_entry", "fetch_tree"]
