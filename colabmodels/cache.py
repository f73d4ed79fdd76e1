"""The per-runtime, content-addressed download cache.

Layout under ``config.cache_dir()``::

    entries/<key>/meta.json         what the entry is: identity, source, files with size/mtime/md5
    entries/<key>/data/<name>       the file (or folder tree) under its sanitised remote name
    entries/<key>/used              its mtime is the entry's last use (LRU)
    entries/<key>/inuse.lock        shared-locked while a loader reads the entry
    partial/<key>.incomplete        a download in progress (+ .parts.json: which parts are done)
    partial/<key>.<uuid>.stage/     an entry being assembled, renamed into entries/ at once
    locks/<key>.lock                the cross-process lock of one key
    aliases/<hash>.json             what a reference resolved to last time (for offline use)

A key is a hash of the source's own content identity (Drive file id + md5Checksum, GCS
generation, S3 ETag, HTTP ETag + URL), never of the string the user typed, so one file reached
through five link shapes is stored once and a changed remote file gets a new entry.

Only the process holding ``locks/<key>.lock`` writes a key; others wait and then find the
entry. A download killed half-way leaves ``partial/<key>.incomplete`` and its part record;
the next process to take the lock resumes it. Entries appear by one ``os.replace`` of a
complete directory, so a reader never sees half an entry.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config
from .errors import IntegrityError, TransferError
from .transfer import describe_bytes, file_md5

logger = logging.getLogger("colabmodels")

_META = "meta.json"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
SPACE_MARGIN_BYTES = 64 * 1024 * 1024


def sanitize_name(name: str) -> str:
    """A remote name made safe as one path component (no separators, no ``..``, no control chars)."""
    cleaned = _UNSAFE.sub("_", name).strip().strip(".")
    cleaned = cleaned[:200]
    return cleaned or "file"


def safe_relpath(rel: str) -> Path:
    """A remote relative path made safe: every component sanitised, never escaping the root."""
    parts = [sanitize_name(p) for p in rel.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if not parts:
        raise IntegrityError(f"remote path {rel!r} has no usable name")
    return Path(*parts)


def key_for(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:40]


@dataclass
class CacheEntry:
    """One cached file or folder tree."""

    key: str
    identity: str
    source: str
    name: str
    kind: str  # "file" | "tree"
    size: int
    created: float
    files: list[dict[str, Any]] = field(default_factory=list)  # path, size, mtime_ns, md5
    root: Path = Path()
    last_used: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.root / "entries" / self.key

    @property
    def path(self) -> Path:
        """The cached file, or the folder holding the tree."""
        return self.dir / "data" / self.name

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("root", "last_used")}

    def _file(self, f: dict[str, Any]) -> Path:
        return self.path / f["path"] if self.kind == "tree" else self.path

    def quick_check(self) -> str | None:
        """Cheap verification (sizes and mtimes recorded at write): a problem, or None."""
        for f in self.files:
            p = self._file(f)
            try:
                st = p.stat()
            except OSError:
                return f"{p.name} is missing"
            if st.st_size != f["size"] or st.st_mtime_ns != f["mtime_ns"]:
                return f"{p.name} changed on disk since it was cached"
        return None

    def full_check(self) -> str | None:
        """Hash every file against the md5 recorded when it was verified at download."""
        problem = self.quick_check()
        if problem:
            return problem
        for f in self.files:
            p = self._file(f)
            if f.get("md5") and file_md5(p) != f["md5"]:
                return f"{p.name}: contents do not match the md5 recorded at download"
        return None


class Cache:
    """The cache of this runtime. ``root=None`` follows ``COLABMODELS_CACHE_DIR`` at call time."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root = Path(root) if root is not None else None

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else config.cache_dir()

    def _dir(self, name: str) -> Path:
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    # -- reading ----------------------------------------------------------------------------
    def entry(self, key: str) -> CacheEntry | None:
        """The entry stored under ``key`` if present and cheaply verified (a bad one is removed)."""
        meta = self.root / "entries" / key / _META
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        entry = CacheEntry(**data, root=self.root)
        with contextlib.suppress(OSError):
            entry.last_used = (entry.dir / "used").stat().st_mtime
        problem = entry.quick_check()
        if problem:
            logger.warning("cache entry %s (%s) is damaged: %s; it will be fetched again",
                           entry.name, entry.source, problem)
            self.remove(entry)
            return None
        return entry

    def entries(self) -> list[CacheEntry]:
        """Every entry, most recently used first."""
        base = self.root / "entries"
        if not base.is_dir():
            return []
        found = []
        for d in base.iterdir():
            try:
                data = json.loads((d / _META).read_text())
            except (OSError, ValueError):
                continue
            e = CacheEntry(**data, root=self.root)
            with contextlib.suppress(OSError):
                e.last_used = (d / "used").stat().st_mtime
            found.append(e)
        return sorted(found, key=lambda e: e.last_used, reverse=True)

    def touch(self, entry: CacheEntry) -> None:
        with contextlib.suppress(OSError):
            os.utime(entry.dir / "used")

    # -- aliases: what a reference meant last time -----------------------------------------
    def _alias_path(self, alias: str) -> Path:
        return self._dir("aliases") / (hashlib.sha256(alias.encode()).hexdigest()[:32] + ".json")

    def remember(self, alias: str, entry: CacheEntry, **info: Any) -> None:
        self.remember_info(alias, {"key": entry.key, **info})

    def remember_info(self, alias: str, info: dict[str, Any]) -> None:
        """Remember facts about a reference that are not an entry (e.g. its saved versions)."""
        path = self._alias_path(alias)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"alias": alias, **info}))
        os.replace(tmp, path)

    def recall(self, alias: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._alias_path(alias).read_text())
        except (OSError, ValueError):
            return None

    # -- writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, key: str, *, timeout: float = -1) -> Iterator[None]:
        """The cross-process lock of one key (released by the OS if the holder dies)."""
        from filelock import FileLock

        lock = FileLock(str(self._dir("locks") / f"{key}.lock"))
        try:
            lock.acquire(timeout=0.05)
        except Exception:
            logger.info("waiting for another process that is fetching the same file")
            lock.acquire(timeout=timeout)
        try:
            yield
        finally:
            lock.release()

    def partial_path(self, key: str) -> Path:
        return self._dir("partial") / f"{key}.incomplete"

    def ensure_space(self, needed: int) -> None:
        """Raise before a download that cannot fit on the cache's disk.

        Raises:
            TransferError: (errno ENOSPC) not enough free space.
        """
        free = shutil.disk_usage(self._dir("partial")).free
        if needed + SPACE_MARGIN_BYTES > free:
            err = TransferError(
                f"not enough disk space for {describe_bytes(needed)} in {self.root} "
                f"({describe_bytes(free)} free). Free some space, run `colabmodels cache prune`, "
                "or point COLABMODELS_CACHE_DIR at a larger disk."
            )
            err.errno = errno.ENOSPC
            raise err

    def store(self, key: str, *, identity: str, source: str, name: str, kind: str,
              fill: Callable[[Path], None], extra: dict[str, Any] | None = None,
              known_md5: dict[str, str] | None = None) -> CacheEntry:
        """Create the entry ``key`` by calling ``fill(path)`` to produce the file or tree.

        The caller must hold :meth:`lock` for ``key``. ``fill`` writes the file (or a folder)
        at the path it is given; what it leaves is moved into place atomically. ``known_md5``
        maps relative paths (``""`` for a file entry) to md5s already verified against the
        source, so they are not hashed a second time.
        """
        name = sanitize_name(name)
        stage = self._dir("partial") / f"{key}.{uuid.uuid4().hex}.stage"
        (stage / "data").mkdir(parents=True)
        try:
            target = stage / "data" / name
            fill(target)
            files = _describe(target, kind, known_md5 or {})
            entry = CacheEntry(key=key, identity=identity, source=source, name=name, kind=kind,
                               size=sum(f["size"] for f in files), created=time.time(),
                               files=files, root=self.root, extra=extra or {})
            (stage / "used").touch()
            (stage / "inuse.lock").touch()
            (stage / _META).write_text(json.dumps(entry.to_json(), indent=1))
            final = self._dir("entries") / key
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            os.replace(stage, final)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        entry.last_used = time.time()
        return entry

    # -- maintenance -------------------------------------------------------------------------
    @contextlib.contextmanager
    def in_use(self, entry: CacheEntry) -> Iterator[CacheEntry]:
        """Hold a shared lock on ``entry`` so :meth:`prune` leaves it alone."""
        import fcntl

        try:
            fh = open(entry.dir / "inuse.lock", "a+b")  # noqa: SIM115
        except OSError:
            yield entry
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_SH)
            self.touch(entry)
            yield entry

    def _try_exclusive(self, entry: CacheEntry) -> Any:
        import fcntl

        try:
            fh = open(entry.dir / "inuse.lock", "a+b")  # noqa: SIM115
        except OSError:
            return None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        return fh

    def remove(self, entry: CacheEntry) -> None:
        doomed = entry.dir.with_name(f"{entry.key}.{uuid.uuid4().hex}.deleting")
        try:
            os.replace(entry.dir, doomed)
        except OSError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries())

    def prune(self, max_bytes: int | None = None, *, keep: set[str] | None = None) -> list[CacheEntry]:
        """Evict least-recently-used entries until the cache fits ``max_bytes``.

        ``max_bytes=None`` uses ``COLABMODELS_CACHE_MAX_BYTES`` (no cap: only leftovers of
        interrupted downloads older than a day are removed). Entries in use are never evicted.
        Returns the removed entries.
        """
        self._clean_stale_partials()
        limit = config.cache_max_bytes() if max_bytes is None else max_bytes
        if limit is None:
            return []
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed = []
        for entry in sorted(entries, key=lambda e: e.last_used):
            if total <= limit:
                break
            if keep and entry.key in keep:
                continue
            fh = self._try_exclusive(entry)
            if fh is None:
                logger.info("not evicting %s: in use", entry.name)
                continue
            try:
                self.remove(entry)
            finally:
                fh.close()
            total -= entry.size
            removed.append(entry)
        return removed

    def _clean_stale_partials(self, older_than_s: float = 86400) -> None:
        base = self.root / "partial"
        if not base.is_dir():
            return
        now = time.time()
        for p in base.iterdir():
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > older_than_s:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()

    def verify(self) -> list[CacheEntry]:
        """Hash every entry; return the bad ones (they are removed, so the next use refetches)."""
        bad = []
        for entry in self.entries():
            problem = entry.full_check()
            if problem:
                logger.warning("cache entry %s is bad: %s", entry.name, problem)
                entry.extra["problem"] = problem
                bad.append(entry)
                self.remove(entry)
        return bad

    def clear(self) -> None:
        """Remove every entry, alias and partial download."""
        for name in ("entries", "partial", "aliases"):
            shutil.rmtree(self.root / name, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<colabmodels cache at {self.root}>"


def _describe(target: Path, kind: str, known_md5: dict[str, str]) -> list[dict[str, Any]]:
    paths = [("", target)] if kind == "file" else [
        (p.relative_to(target).as_posix(), p) for p in sorted(target.rglob("*")) if p.is_file()
    ]
    out = []
    for rel, p in paths:
        st = p.stat()
        out.append({"path": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                    "md5": known_md5.get(rel) or file_md5(p)})
    return out


cache = Cache()
"""The runtime's cache (``cm.cache``)."""
