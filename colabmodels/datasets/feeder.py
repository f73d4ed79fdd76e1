"""Local files for a list of Drive files, fetched many at a time just ahead of their use.

A ``Feeder`` serves the readers of one list of files (the ``tf.data`` pipeline, the
Keras ``PyDataset``, the torch ``Dataset``): ``local(i)`` returns the cache path of file ``i``,
fetching it if needed, and keeps ``FETCH_WORKERS`` requests in flight
for the files that come next. Files go to disk (the cache), never into memory, so memory use
does not grow with the dataset; once fetched, a file's path is remembered, so the second
epoch reads local disk without a single request.

Broken files: a file that cannot be fetched, or is not a readable image, raises
``BrokenImageError`` (or the fetch's own error) naming its Drive path; with
``on_error="skip"`` it is skipped, one logged warning names its Drive path (never a cache
path), and it is added to ``skipped``.

Stopping: a KeyboardInterrupt (Ctrl-C, Kernel > Interrupt) while a caller waits for a file
stops the feeder: files not yet started are dropped, downloads under way stop at their next
block (what arrived is kept, and the next call resumes), and its fetch threads end before the
interrupt goes on. At interpreter exit every feeder is stopped before Python joins the fetch
threads, so nothing queued keeps a finished script alive (TensorFlow's Python-function ops
waiting on a fetch included).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ColabModelsError, IntegrityError
from ..transfer import O_BINARY, pread_at
from . import interrupts
from .listing import take
from .pixels import bomb_problem, declared_size, markers_complete, pixel_limit, size_problem

if TYPE_CHECKING:
    from ..bulk import BulkFetcher
    from ..storage.base import StorageBackend
    from .listing import DatasetFile

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")


class BrokenImageError(IntegrityError):
    """A dataset file is not a readable image (the message names its Drive path)."""


class FetchStopped(ColabModelsError):
    """The feeder was stopped (an interrupt, or interpreter exit) before this file arrived."""


def stand_in_image() -> bytes:
    """A 1x1 black PNG (decodable in every colour mode): what a stopped look-up hands
    TensorFlow in place of the images it was waiting for (``stand_ins_when_stopped``)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\0"))
            + chunk(b"IEND", b""))


_STAND_IN: dict[str, str] = {}
_STAND_IN_LOCK = threading.Lock()


def stand_in_path() -> str:
    """``stand_in_image`` as a file, in the cache's private ``partial/`` folder (a private
    temporary file, removed at exit, when the cache cannot be written)."""
    from ..cachestore import cache

    root = str(cache.root)
    with _STAND_IN_LOCK:
        found = _STAND_IN.get(root)
        if found is not None and os.path.exists(found):
            return found
        try:
            path = cache.private_dir("partial") / "interrupted-stand-in.png"
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_BINARY, 0o600)
            try:
                os.write(fd, stand_in_image())
            finally:
                os.close(fd)
            os.replace(tmp, path)
            made = str(path)
        except OSError as e:  # a read-only cache (a warm one still streams): anywhere private
            logger.debug("stand-in image outside the cache: %s", e)
            made = _private_temp_file(stand_in_image())
        _STAND_IN[root] = made
        return made


def _private_temp_file(data: bytes) -> str:
    """``data`` in a new file only this user can read, removed when the interpreter exits."""
    import atexit
    import tempfile

    fd, name = tempfile.mkstemp(prefix="colabmodels-stand-in-", suffix=".png")
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    atexit.register(_remove_quietly, name)
    return name


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def stand_ins_when_stopped(read: Callable[[Any], tuple[Any, Any]], *,
                           as_path: bool) -> Callable[[Any], tuple[Any, Any]]:
    """``read`` (a batch look-up TensorFlow calls through ``tf.numpy_function``), answering
    a batch the feeder was stopped for (Ctrl-C) with stand-in images instead of an error.

    Why not an error: the main thread waits in TensorFlow's iterator with the KeyboardInterrupt
    pending. An error reaching it there is turned into a Python exception while the pending
    signal handler runs (pybind11's normalisation runs Python code), and the cell then ends
    with "RuntimeError: pybind11::error_already_set: MISMATCH ... KeyboardInterrupt" instead
    of the KeyboardInterrupt (seen under load). A batch of stand-ins returns normally and the
    interrupt is raised as it should be; the stand-ins belong to the interrupted iterator
    only (a new iteration fetches again). Every other error goes through as it is.
    """
    import numpy as np

    def call(indices: Any) -> tuple[Any, Any]:
        try:
            return read(indices)
        except FetchStopped:
            n = len(indices)
            stand_in: object = stand_in_path().encode() if as_path else stand_in_image()
            logger.info("stopped: %d images of the interrupted iteration are stand-ins", n)
            return (np.array([stand_in] * n, dtype=object), np.ones(n, dtype=bool))

    return call


_LIVE: weakref.WeakSet[FeederBase] = weakref.WeakSet()
_SKIP_REPORT: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "colabmodels_skip_report", default=None)


@contextlib.contextmanager
def skips_reported_to(report: Callable[[str], None]) -> Iterator[None]:
    """Within this block (this thread), a skipped file is reported by ``report(message)``
    instead of a logged warning: a widget that lists the skipped files itself shows them once."""
    token = _SKIP_REPORT.set(report)
    try:
        yield
    finally:
        _SKIP_REPORT.reset(token)


_EXITING = threading.Event()
INTERRUPT_QUIET_S = 1.0
"""After an interrupt, the readers of the interrupted iterator (TensorFlow's threads) are
refused new fetches until none has asked for this long."""
_STOP_POLL_S = 0.05
_FETCHING = threading.local()  # .small: this fetch thread's file comes in one request


def stop_all() -> None:
    """Stop every live feeder (run at interpreter exit, before the fetch threads are joined);
    none starts fetching again after this. The interrupt watch gives the wakeup fd back."""
    _EXITING.set()
    interrupts.release()
    for feeder in list(_LIVE):
        try:
            feeder.stop()
        except Exception as e:  # exit must go on
            logger.debug("stopping a feeder at exit: %s", e)


def _stop_at_exit() -> None:
    """Register ``stop_all`` to run before ``concurrent.futures`` joins its workers at exit
    (threading's exit hooks run newest first; the executor registered its own on import)."""
    import atexit
    import concurrent.futures.thread  # noqa: F401  (its hook first, so ours runs before it)

    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(stop_all)
            return
    except RuntimeError:  # already shutting down
        return
    atexit.register(stop_all)


_stop_at_exit()


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f'on_error must be "raise" or "skip", received: {on_error!r}')


_TAIL = 4096


def _quick_verdict(path: str) -> bool:
    """True when the file's first and last bytes are those of a complete JPEG, PNG or GIF
    (``markers_complete``).

    A few microseconds per file (two small reads), so every file of a dataset can be checked
    as it arrives; anything else (other formats, a missing end marker) gets PIL's check.
    """
    fd = os.open(path, os.O_RDONLY | O_BINARY)
    try:  # the bare descriptor and two preads: a file object would add six system calls
        size = os.fstat(fd).st_size
        head = pread_at(fd, 16, 0)
        tail = head if size <= 16 else pread_at(fd, min(size, _TAIL), max(0, size - _TAIL))
    finally:
        os.close(fd)
    return markers_complete(head, tail)


_UNREAD: Any = object()


def image_problem(path: str, *, declared: Any = _UNREAD) -> str | None:
    """Why the file at ``path`` is not a readable image, or None (a cheap structural check).

    JPEG, PNG and GIF files pass on their start and end markers alone; anything else (BMP,
    and any file whose markers are missing) is opened by PIL, which reads the header and, for
    PNG, checks every chunk's CRC. Without PIL installed only the markers are checked.
    First of all, an image whose header declares more pixels than PIL allows (a decompression
    bomb, ``.pixels``) is refused, so no decoder ever allocates for it. ``declared``: the
    ``(width, height)`` its header declares (``pixels.declared_size``), when read already.
    """
    try:
        problem = bomb_problem(path) if declared is _UNREAD else size_problem(declared)
        if problem:
            return problem
        if _quick_verdict(path):
            return None
    except OSError as e:
        return f"cannot be read ({e})"
    return pil_problem(path, path)


def pil_problem(source: Any, path: str = "") -> str | None:
    """PIL's verdict on an image (a path or a binary file object) whose markers did not
    settle it: a JPEG is decoded whole, anything else verified. None without PIL. ``path``
    (a local cache path) is kept out of the message."""
    try:
        from PIL import Image, ImageFile
    except ImportError:  # pragma: no cover - PIL comes with keras/tf installs
        return None
    try:
        with Image.open(source) as img:
            if img.format == "JPEG":  # no end marker where it belongs: decode it all to be sure
                if getattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False):
                    return "a truncated JPEG (no end-of-image marker)"
                img.load()
            else:
                img.verify()
    except Image.DecompressionBombError as e:  # a format whose header pixels.py does not read
        return f"a possible decompression bomb ({e}); raise PIL.Image.MAX_IMAGE_PIXELS if you trust it"
    except (OSError, SyntaxError, ValueError) as e:
        if "truncated" in str(e).lower() or "premature" in str(e).lower():
            return "a truncated image (its data stops early)"
        text = _without_path(str(e), path) if path else str(e)
        return f"not a readable image ({type(e).__name__}: {text})"
    return None


def _without_path(text: str, path: str) -> str:
    """``text`` without the local (cache) path ``path`` in it: messages name Drive paths."""
    text = text.replace(repr(path), "").replace(f'"{path}"', "").replace(path, "")
    return re.sub(r"\s+", " ", text.replace("''", "")).strip(" :")


def _write_note(note: Path, most: int) -> None:
    """Note in the cache's ``checks`` that the entries behind ``note`` declare at most ``most``
    pixels (written whole: a reader sees the old note or the new one)."""
    from ..cachestore import cache

    try:
        tmp = note.with_name(f"{note.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        cache.write_private(cache.private_dir("checks") / tmp.name, str(most))
        os.replace(tmp, note)
    except OSError as e:  # a read-only cache: the headers are read again next time
        logger.debug("could not note the checked pixels: %s", e)


def _check_key(f: DatasetFile) -> str:
    from ..cachestore import identity_of, key_for

    return key_for(identity_of(f.stat))


def _remember_broken(f: DatasetFile) -> None:
    """Note in the cache that this file failed the image check (so no reader trusts it)."""
    from ..cachestore import cache

    try:
        cache.write_private(cache.private_dir("checks") / f"{_check_key(f)}.broken", "")
    except OSError as e:  # a read-only cache: the file is checked again next time anyway
        logger.debug("could not note a broken image: %s", e)


def keep_readable(feeder: FeederBase, labels: Any, *,
                  progress: bool = False) -> tuple[list[DatasetFile], Any]:
    """``on_error="skip"`` decided up front: fetch and check every file of ``feeder`` now and
    keep the good ones with their labels, so the dataset's length is known (a filter in the
    pipeline would make it unknown, and Keras' ``fit`` would then warn that the input ran out
    of data). The feeder is closed afterwards."""
    try:
        paths = feeder.fetch_all(progress=progress, desc="checking images")
    finally:
        feeder.close()
    return take(feeder.files, labels, [i for i, p in enumerate(paths) if p is not None])


class _Closable(Protocol):
    def close(self) -> None: ...


class FeederBase:
    """What every feeder shares: the paths handed out, the skip/raise rule for broken files
    (reported once, by the source path), fetching all with a bar that counts files, stopping,
    and pickling without connections. Subclasses say how a file is fetched (``Feeder``
    for folders, ``ZipFeeder`` for zip members).
    """

    #: what the error for a broken file suggests first
    fix_hint = "Replace or remove it"
    #: attributes that hold live objects (connections, threads): not pickled
    _unpicklable: tuple[str, ...] = ("_fetcher", "_lock", "on_all_local", "_stopped",
                                     "_stopping")
    _fetcher: _Closable | None = None

    def __init__(self, files: Sequence[DatasetFile], *, on_error: str, check_images: bool,
                 skipped: list[str] | None, lookahead: int) -> None:
        check_on_error(on_error)
        self.files = list(files)
        self.lookahead = lookahead
        self.on_error = on_error
        self.check_images = check_images
        self.skipped: list[str] = skipped if skipped is not None else []
        self._paths: list[str | None] = [None] * len(self.files)
        self._bad: dict[int, str] = {}
        self._asked = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._resolved = 0
        self._stopped = threading.Event()
        # held while a stop closes the fetcher: Ctrl-C stops a feeder from two threads (the
        # interrupt watch and the main thread's ``except KeyboardInterrupt``), and the one that
        # finds the fetcher already taken must still return only once its threads have ended
        self._stopping = threading.Lock()
        self.on_all_local: Callable[[list[str]], None] | None = None
        _LIVE.add(self)

    def __len__(self) -> int:
        return len(self.files)

    def paths(self) -> list[str]:
        """The local path of every file ("" for files not (yet) local)."""
        return [p or "" for p in self._paths]

    # -- what a subclass provides ---------------------------------------------------------------
    def local(self, index: int) -> str | None:
        raise NotImplementedError

    def start_all(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    #: when the last fetch was refused after an interrupt (None: not interrupted)
    _interrupted_at: float | None = None

    def interrupt(self) -> None:
        """Ctrl-C while a reader may be blocked in C (``.interrupts``): stop now. Readers on
        other threads (TensorFlow's, still running for the interrupted iterator) get
        ``FetchStopped`` at once and start no fetch until they have been quiet for
        ``INTERRUPT_QUIET_S`` (the interrupted iterator is gone); the main thread, or a
        new iteration after that, resumes."""
        self._interrupted_at = time.monotonic()
        self.stop()

    def pending(self) -> bool:
        """Whether some file is neither local nor skipped yet (fetching may still be needed)."""
        return self._resolved + len(self._bad) < len(self.files)

    def _refuse_when_exiting(self) -> None:
        """No new fetches once the interpreter is exiting (``stop_all`` has run), nor from
        the readers of an interrupted iterator (``interrupt``)."""
        if _EXITING.is_set():
            raise FetchStopped("the interpreter is exiting")
        since = self._interrupted_at
        if since is None:
            return
        now = time.monotonic()
        if threading.current_thread() is threading.main_thread() or now - since >= INTERRUPT_QUIET_S:
            self._interrupted_at = None  # a new run: resume
            return
        self._interrupted_at = now  # the interrupted iterator's readers are still asking
        raise FetchStopped("stopped by an interrupt; ask again to resume")

    def _wait(self, fut: Future[str]) -> str:
        """``fut``'s result; off the main thread, ``FetchStopped`` as soon as the feeder
        is stopped (a download under way is not waited for). On the main thread a plain wait,
        which a KeyboardInterrupt reaches at once."""
        if threading.current_thread() is threading.main_thread():
            return fut.result()
        while True:
            try:
                return fut.result(timeout=_STOP_POLL_S)
            except FutureTimeout:
                if self._stopped.is_set():
                    raise FetchStopped("stopped") from None

    def _record(self, index: int, path: str) -> None:
        """File ``index`` is local at ``path``; once every file is, tell ``on_all_local``."""
        with self._lock:
            first = self._paths[index] is None
            if first:
                self._resolved += 1
            self._paths[index] = path
            complete = self._resolved == len(self.files)
        if complete and first:
            self._all_local()
        if complete and self.on_all_local is not None:
            # every file is local: let the reader stop asking (e.g. pure TF lookups)
            threading.Thread(target=self.on_all_local, args=(self.paths(),), daemon=True,
                             name="colabmodels-all-local").start()

    def _all_local(self) -> None:
        """Every file has just become local (once; a subclass notes what it checked)."""

    def _failed(self, index: int, exc: Exception) -> None:
        f = self.files[index]
        message = str(exc) if isinstance(exc, BrokenImageError) else f"{f.path}: {exc}"
        from ..cachestore import cache

        message = re.sub(re.escape(str(cache.root)) + r"[^\s'\"]*", "(cached copy)", message)
        if self.on_error == "skip":
            with self._lock:
                first = index not in self._bad
                if first:
                    self._bad[index] = message
                    self.skipped.append(f.path)
            if first:  # once, by its Drive path
                report = _SKIP_REPORT.get()
                if report is not None:
                    report(f"skipped {message}")
                else:
                    logger.warning("skipped %s", message)
            return None
        if isinstance(exc, BrokenImageError):
            raise BrokenImageError(f'{message}. {self.fix_hint}, or pass on_error="skip" '
                                   "to leave such files out.") from exc
        if isinstance(exc, ColabModelsError):
            exc.args = (message, *exc.args[1:])
            raise exc
        raise BrokenImageError(message) from exc

    def fetch_all(self, *, progress: bool = False, desc: str = "") -> list[str | None]:
        """Every file's path (fetching all of them, many at a time); None for skipped files.

        ``progress``: a bar that counts files (those already in the cache count at once), not
        bytes: Drive's sizes are unknown for some files, and a byte bar of a partly cached
        folder shows nothing useful.
        """
        try:
            return self._fetch_all(progress, desc)
        except KeyboardInterrupt:
            self.stop()
            raise

    def _fetch_all(self, progress: bool, desc: str) -> list[str | None]:
        self.start_all()
        n = len(self.files)
        if not progress or n == 0:
            return [self.local(i) for i in range(n)]
        from tqdm.auto import tqdm

        ready = sum(1 for p in self._paths if p is not None)
        out: list[str | None] = []
        with tqdm(total=n, initial=ready, desc=desc or "fetching", unit="file", leave=False,
                  dynamic_ncols=True, mininterval=0.2) as bar:
            for i in range(n):
                cached = self._paths[i] is not None
                out.append(self.local(i))
                if not cached:
                    bar.update(1)
        return out

    def close(self) -> None:
        if self._fetcher is not None and self._pid == os.getpid():
            self._fetcher.close()
        self._fetcher = None

    def __getstate__(self) -> dict[str, object]:
        """Pickled (torch DataLoader workers under spawn): no pool, no live connections."""
        state = self.__dict__.copy()
        for name in self._unpicklable:
            state[name] = {} if name == "_futures" else None
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._stopping = threading.Lock()
        _LIVE.add(self)


class Feeder(FeederBase):
    """Cache paths of ``files``, fetched ahead of use. Thread-safe; not shared across processes.

    Args:
        backend: the source's backend.
        files: the dataset's files (from ``index_drive_folder``).
        lookahead: how many files past the ones already asked for are fetched ahead.
        workers: requests in flight.
        on_error: ``"raise"`` or ``"skip"``.
        check_images: check that each file is a readable image before handing it out.
        skipped: the list that collects skipped Drive paths (shared with the dataset object).
    """

    _unpicklable = (*FeederBase._unpicklable, "_futures", "backend")
    _fetcher: BulkFetcher | None

    def __init__(self, backend: StorageBackend, files: Sequence[DatasetFile], *,
                 lookahead: int = 512, workers: int | None = None, on_error: str = "raise",
                 check_images: bool = True, skipped: list[str] | None = None) -> None:
        from ..bulk import FETCH_WORKERS

        super().__init__(files, on_error=on_error, check_images=check_images, skipped=skipped,
                         lookahead=lookahead)
        self.backend: StorageBackend | None = backend
        self.workers = workers or FETCH_WORKERS
        self._futures: dict[int, Future[str]] = {}
        self._next = 0  # the next position in ``_order`` to fetch ahead
        self._order: Sequence[int] = range(len(self.files))  # ``fetch_in_order``
        self._fetcher: BulkFetcher | None = None
        self._keys: list[str] | None = None  # the files' cache keys (``find_cached``)
        self._most_pixels = 0  # the most pixels a checked file declares

    def find_cached(self) -> int:
        """Take every file that is already in the cache (one ``stat`` each); returns how many.

        Files found this way are trusted (cache entries appear complete, at once) once their
        header declares no more pixels than PIL allows (``.pixels``: a few bytes read, so
        no decoder ever allocates for a decompression bomb that another route cached); files
        that failed the image check before are left to ``local``, which reports them by
        their Drive path again. The most pixels that a set of cache entries declares is noted
        in the cache (``checks/<digest of their keys>.pixels``; an entry's bytes never change
        under its key), so the next kernel on the same files reads one small file instead of
        every header, and checks each header again when the limit is now lower.
        """
        from ..cachestore import cache, identity_of, key_for

        try:
            broken = {name[:-len(".broken")] for name in os.listdir(cache.root / "checks")}
        except OSError:
            broken = set()
        keys = [key_for(identity_of(f.stat)) for f in self.files]  # also ``_check_key``
        self._keys = keys
        paths = cache.file_path_strings([(key, f.stat.name, f.stat.size)
                                         for key, f in zip(keys, self.files, strict=True)])
        limit = pixel_limit() if self.check_images else None  # read once, not per file
        present = [i for i, (key, path) in enumerate(zip(keys, paths, strict=True))
                   if path is not None and key not in broken]  # broken: reported when asked for
        note = None
        if limit is not None and present:
            note = self._pixels_note([keys[i] for i in present])
            try:
                noted = int(note.read_text())
                if noted <= limit:  # every header was read before: none over
                    limit, note = None, None
                    self._most_pixels = noted
            except (OSError, ValueError):
                pass
        most = 0
        found = 0
        for i in present:
            path = paths[i]
            assert path is not None
            if limit is not None:  # bomb_problem(path) is None, with the limit read once
                size = declared_size(path)
                pixels = size[0] * size[1] if size is not None else 0
                most = max(most, pixels)
                if pixels > limit:
                    continue
            self._paths[i] = path
            found += 1
        self._most_pixels = max(self._most_pixels, most)
        if note is not None:
            _write_note(note, most)
        self._resolved = found
        return found

    @staticmethod
    def _pixels_note(keys: Sequence[str]) -> Path:
        """Where the most pixels that the cache entries ``keys`` declare is noted."""
        import hashlib

        from ..cachestore import cache

        digest = hashlib.sha256("\n".join(sorted(keys)).encode())
        return cache.root / "checks" / f"{digest.hexdigest()[:40]}.pixels"

    def _all_local(self) -> None:
        """Every file is local and was checked on its way in (or found checked): note the
        most pixels they declare, so the next kernel on the same files reads no header."""
        if not self.check_images or self._bad or self._keys is None:
            return
        _write_note(self._pixels_note(self._keys), self._most_pixels)

    # -- fetching ------------------------------------------------------------------------------
    def _pool(self) -> BulkFetcher:
        from ..bulk import BulkFetcher

        if self.backend is None:  # unpickled in a worker process: sign in there
            from ..storage import backend_for

            self.backend = backend_for(self.files[0].stat.ref)
        self._refuse_when_exiting()
        if self._fetcher is None or self._pid != os.getpid() or self._stopped.is_set():
            if self._stopped.is_set():  # used again after a stop: start over (resumes)
                self._stopped.clear()
                self._next = 0
            self._fetcher = BulkFetcher(self.backend, workers=self.workers,
                                        progress=self._check_stopped)
            self._pid = os.getpid()
            self._futures.clear()
        return self._fetcher

    def _check_stopped(self, _: int = 0) -> None:
        """The fetcher's progress callback: a download under way ends at its next block once
        the feeder is stopped (what arrived is kept for the next call). A small file (one
        request) reports once, when all of it has arrived: it is kept, not thrown away."""
        if self._stopped.is_set() and not getattr(_FETCHING, "small", False):
            raise FetchStopped("stopped")

    def stop(self) -> None:
        """Stop fetching: drop what has not started, end downloads under way at their next
        block, and wait for the fetch threads to end (a second or so). Asking for a file
        afterwards starts again, resuming what was cut short."""
        self._stopped.set()
        with self._stopping:
            with self._lock:
                futures, self._futures = list(self._futures.values()), {}
                fetcher, self._fetcher = self._fetcher, None
            for fut in futures:
                fut.cancel()
            if fetcher is not None and self._pid == os.getpid():
                fetcher.close()

    def _fetch_and_check(self, index: int, fetcher: BulkFetcher) -> str:
        from ..bulk import SMALL_FILE_BYTES

        f = self.files[index]
        self._check_stopped()
        _FETCHING.small = f.stat.size is not None and f.stat.size <= SMALL_FILE_BYTES
        path = str(fetcher.fetch(f.stat))
        if self.check_images:
            size = declared_size(path)
            pixels = size[0] * size[1] if size is not None else 0
            with self._lock:
                self._most_pixels = max(self._most_pixels, pixels)
            problem = image_problem(path, declared=size)
            if problem:
                _remember_broken(f)
                raise BrokenImageError(f"{f.path}: {problem}")
        return path

    def _submit(self, index: int) -> None:
        """Start fetching file ``index`` (caller holds the lock)."""
        if self._paths[index] is None and index not in self._futures and index not in self._bad:
            fetcher = self._pool()
            self._futures[index] = fetcher.run(self._fetch_and_check, index, fetcher)

    def prefetch(self, indices: Sequence[int]) -> None:
        """Start fetching these files now (e.g. the next batches of a sequence)."""
        with self._lock:
            for i in indices:
                self._submit(i)

    def fetch_in_order(self, order: Sequence[int]) -> None:
        """Fetch ahead in ``order`` (indices into ``files``: the order in which they will be
        asked for, e.g. a shuffled dataset's first epoch, ``first_epoch_order``) instead of
        the order of ``files``. Only before anything is fetched ahead.

        Raises:
            ValueError: ``order`` does not hold every index once.
            RuntimeError: fetching ahead has started.
        """
        if sorted(order) != list(range(len(self.files))):
            raise ValueError("order must hold each index of files once")
        with self._lock:
            if self._next:
                raise RuntimeError("fetch_in_order: fetching ahead has started")
            self._order = order

    def read_ahead_now(self) -> None:
        """Start fetching the first ``lookahead`` files now, before any is asked for (a dataset
        being made: its first batches come from them while TensorFlow builds the pipeline)."""
        with self._lock:
            self._read_ahead()

    def _read_ahead(self) -> None:
        n = len(self.files)
        limit = min(n, self._asked + self.lookahead)
        while self._next < limit:
            self._submit(self._order[self._next])
            self._next += 1

    def local(self, index: int) -> str | None:
        """The cache path of file ``index`` (None when it is skipped with ``on_error="skip"``).

        Raises:
            BrokenImageError: the file is not a readable image.
            NotFoundError, AuthError, TransferError, IntegrityError: fetching failed (the
                message names the Drive path).
        """
        path = self._paths[index]
        if path is not None and os.path.exists(path):
            return path
        if index in self._bad:
            return None
        with self._lock:
            if self._pid != os.getpid():
                self._pool()
            self._asked += 1
            self._submit(index)
            self._read_ahead()
            fut = self._futures[index]
        try:
            path = self._wait(fut)
        except KeyboardInterrupt:
            self.stop()
            raise
        except (CancelledError, FetchStopped) as exc:
            raise FetchStopped(f"{self.files[index].path}: not fetched, the feeder was "
                               "stopped (an interrupt); ask again to resume") from exc
        except Exception as exc:
            with self._lock:
                self._futures.pop(index, None)
            self._failed(index, exc)
            return None
        with self._lock:
            self._futures.pop(index, None)
        self._record(index, path)
        return path

    def start_all(self) -> None:
        """Start fetching every file (``workers`` at a time)."""
        with self._lock:
            self._asked = len(self.files)
            self._read_ahead()

