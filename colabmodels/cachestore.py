"""The per-runtime, content-addressed download cache (``cm.cache`` is its ``cache``).

The module is called ``cachestore`` so that ``colabmodels.cache`` always means the cache object,
never this module.

Layout under ``config.cache_dir()``::

    entries/<key>/meta.json         what the entry is: identity, source, files with size/mtime/md5;
                                    its mtime is the entry's last use (LRU)
    entries/<key>/data/<name>       the file (or folder tree) under its sanitised remote name
    entries/<key>/used              (entries stored before meta.json's mtime took its place)
    entries/<key>/inuse.lock        shared-locked while a loader reads the entry (made by the
                                    first reader, not with the entry: one file less per entry)
    partial/<key>.incomplete        a download in progress (+ .parts.json: which parts are done)
    partial/<key>.<uuid>.stage/     an entry being assembled, renamed into entries/ at once
    locks/<key>.lock                the cross-process lock of one key
    aliases/<hash>.json             what a reference resolved to last time (for offline use)
    by-md5/<md5>                    a hard link to the meta.json of a file entry with those bytes
                                    (older caches: a small file holding its key): a file whose md5 is
                                    cached under another id or version is linked, not fetched

A key is a hash of the source's own content identity (Drive file id + md5Checksum, GCS
generation, S3 ETag, HTTP ETag + URL), never of the string the user typed, so one file reached
through five link shapes is stored once and a changed remote file gets a new entry.

Only the process holding ``locks/<key>.lock`` writes a key; others wait and then find the
entry. A download killed half-way leaves ``partial/<key>.incomplete`` and its part record;
the next process to take the lock resumes it. Entries appear by one ``os.replace`` of a
complete directory, so a reader never sees half an entry. Every store takes the key's lock,
small files too: two processes that want one file (torch DataLoader workers reading ahead)
fetch it once, the second finds the first's entry.

The cache is private to the user whatever the umask: its folders are made ``0700`` and the
files of an entry, its metadata and aliases ``0600``. Nothing stored here holds a secret: URLs
are kept without their signing query (``strip_signing``). Damaged or
unknown metadata is treated as a missing entry (fetched again), never raised.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import stat as stat_mod
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .errors import ConfigError, IntegrityError, TransferError
from .refs import strip_signing_in
from .transfer import O_BINARY, O_NOFOLLOW, describe_bytes, file_md5

if TYPE_CHECKING:
    from .storage.base import RemoteStat

__all__ = [
    "SPACE_MARGIN_BYTES",
    "Cache",
    "CacheEntry",
    "cache",
    "identity_of",
    "key_for",
    "md5_of",
    "safe_relpath",
    "sanitize_name",
    "unique_names",
]

logger = logging.getLogger("colabmodels")

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

_META = "meta.json"
_MD5_RE = re.compile(r"[0-9a-f]{32}")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
_RESERVED = re.compile(r"(?i)^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\.|$)")
MAX_NAME_BYTES = 200
"""Longest local name (UTF-8 bytes): below every common file system's 255, with room for suffixes."""
SPACE_MARGIN_BYTES = 64 * 1024 * 1024


def sanitize_name(name: str) -> str:
    """A remote name made safe as one path component on any common file system.

    Separators, control characters and characters Windows forbids become ``_``; ``.`` and
    ``..`` and Windows device names (``CON``, ``nul.txt``...) get a ``_`` prefix; trailing
    dots and spaces (which Windows drops) become ``_``; names longer than
    ``MAX_NAME_BYTES`` are shortened, keeping the extension. A name that is already safe
    is returned unchanged, a leading dot included (``.ipynb_checkpoints`` stays).
    """
    cleaned = _UNSAFE.sub("_", name)
    if cleaned in ("", ".", ".."):
        cleaned = "_" + cleaned if cleaned else "file"
    if _RESERVED.match(cleaned):
        cleaned = "_" + cleaned
    if cleaned[-1] in ". ":
        cleaned = cleaned[:-1] + "_"
    return _shorten(cleaned, MAX_NAME_BYTES)


def _shorten(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` UTF-8 bytes at a character boundary, keeping a short extension."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) > 16:
        stem, ext = name, ""
    tail = f".{ext}" if ext else ""
    room = limit - len(tail.encode())
    cut = stem.encode()[:room].decode("utf-8", "ignore")
    return cut + tail


def safe_relpath(rel: str) -> Path:
    """A remote relative path made safe: every component sanitised, never escaping the root.

    Empty components are dropped; ``.`` and ``..`` components are sanitised like any other
    name (``..`` becomes ``_..``), so the result is always below the root it is joined to.
    """
    parts = [sanitize_name(p) for p in rel.replace("\\", "/").split("/") if p != ""]
    if not parts:
        raise IntegrityError(f"remote path {rel!r} has no usable name")
    return Path(*parts)


def unique_names(children: list[tuple[str, str]]) -> dict[str, str]:
    """Distinct local names for the children of one remote folder: ``{child id: local name}``.

    ``children`` holds ``(id, remote name)`` pairs. Drive lets two children share a title,
    and two titles can sanitise to one name (``b:c.jpg`` and ``b_c.jpg``); every child gets
    its own name. A child whose name needs no change keeps it when it can (titles that are
    already safe win over sanitised ones, and among equals the smaller id wins); the others
    get ``~`` and the start of their id before the extension (``b_c~1AbCdEfG.jpg``). The
    result depends only on the set of children, not their order.
    """
    wanted = {cid: sanitize_name(name) for cid, name in children}
    exact = {cid for cid, name in children if wanted[cid] == name}
    order = sorted(wanted, key=lambda cid: (cid not in exact, cid))
    taken: set[str] = set()
    out: dict[str, str] = {}
    clashing: list[str] = []
    for cid in order:
        if wanted[cid] in taken:
            clashing.append(cid)
        else:
            taken.add(wanted[cid])
            out[cid] = wanted[cid]
    for cid in clashing:
        stem, dot, ext = wanted[cid].rpartition(".")
        if not dot or not stem:
            stem, ext = wanted[cid], ""
        tail = f".{ext}" if ext else ""
        safe_id = _UNSAFE.sub("_", cid)
        stem = _shorten(stem, MAX_NAME_BYTES - len(tail.encode()))
        for width in (8, 16, len(safe_id)):
            candidate = f"{stem}~{safe_id[:width]}{tail}"
            if candidate not in taken:
                break
        n = 2
        while candidate in taken:
            candidate = f"{stem}~{safe_id}~{n}{tail}"
            n += 1
        taken.add(candidate)
        out[cid] = candidate
    return out


def key_for(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:40]


def identity_of(stat: RemoteStat) -> str:
    """The cache identity of one remote file or folder: the source's own content identity,
    with no URL signing query in it (the same for ``cm.fetch``, folders and datasets)."""
    return strip_signing_in(stat.identity or f"{stat.ref}:size={stat.size}:modified={stat.modified}")


def md5_of(stat: RemoteStat) -> str | None:
    """The md5 the source reports for ``stat`` (``checksum="md5:..."``), if any."""
    return stat.checksum[4:] if stat.checksum and stat.checksum.startswith("md5:") else None


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

    def __repr__(self) -> str:
        return (f"<CacheEntry {self.name!r} {self.kind} {self.size} bytes "
                f"from {strip_signing_in(self.source)} key={self.key}>")

    @classmethod
    def from_json(cls, data: Any, root: Path) -> CacheEntry | None:
        """An entry from its ``meta.json`` contents; None when they are damaged or unknown."""
        if not isinstance(data, dict):
            return None
        try:
            entry = cls(key=data["key"], identity=data["identity"], source=data["source"],
                        name=data["name"], kind=data["kind"], size=data["size"],
                        created=data["created"], files=data.get("files") or [], root=root,
                        extra=data.get("extra") or {})
        except (KeyError, TypeError):
            return None
        texts = (entry.key, entry.identity, entry.source, entry.name)
        if not all(isinstance(t, str) for t in texts) or entry.kind not in ("file", "tree") \
                or not isinstance(entry.size, int) or not isinstance(entry.created, (int, float)) \
                or not isinstance(entry.files, list) or not isinstance(entry.extra, dict) \
                or entry.name in ("", ".", "..") or "/" in entry.name or "\0" in entry.name:
            return None
        entry.source = strip_signing_in(entry.source)  # entries written before it was stripped
        entry.identity = strip_signing_in(entry.identity)
        for f in entry.files:
            if not isinstance(f, dict) or not isinstance(f.get("path"), str) \
                    or not isinstance(f.get("size"), int) or not isinstance(f.get("mtime_ns"), int) \
                    or not isinstance(f.get("md5"), (str, type(None))):
                return None
            rel = f["path"]
            if entry.kind == "tree" and (rel.startswith("/") or "\0" in rel
                                         or ".." in rel.replace("\\", "/").split("/")):
                return None
        return entry

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
        self._private: set[Path] = set()
        self._private_at: dict[Path, float] = {}
        self._env_root: tuple[tuple[str | None, ...], Path] | None = None
        self._fast: dict[str, tuple[Path, float, str]] = {}

    @property
    def root(self) -> Path:
        if self._root is not None:
            return self._root
        # config.cache_dir() once per value of the variables it reads (not several times per
        # cached file): the same Path object while they stay the same
        env = os.environ
        raw = env.get("COLABMODELS_CACHE_DIR")
        seen = (raw,) if raw and raw[0] != "~" else (raw, env.get("XDG_CACHE_HOME"),
                                                      env.get("HOME"))
        found = self._env_root
        if found is None or found[0] != seen:
            found = self._env_root = (seen, config.cache_dir())
        return found[1]

    def _private_dir(self, d: Path, *, fast: bool = False) -> Path:
        """Make ``d`` (and missing parents) and make it ``0700``, whatever the umask.

        ``fast``: a folder made or checked less than a second ago is not looked at again (the
        per-file paths of ``store`` and ``lock``, which a dataset epoch runs thousands
        of times; they make the folder again if it was removed meanwhile)."""
        checked = self._private_at.get(d)
        if fast and checked is not None and time.monotonic() - checked < 1.0:
            return d
        if d in self._private and d.is_dir():
            self._private_at[d] = time.monotonic()
            return d
        d.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        _check_own_folder(d, self.root)
        with contextlib.suppress(OSError):
            if d.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
                os.chmod(d, PRIVATE_DIR_MODE)
        self._private.add(d)
        self._private_at[d] = time.monotonic()
        return d

    def _forget_folders(self) -> None:
        """Check every folder again (one was removed under us, e.g. a cache clear)."""
        self._private.clear()
        self._private_at.clear()
        self._fast.clear()

    def _fast_dir(self, name: str) -> str:
        """``_dir(name, fast=True)`` as a string, with no path object made while the folder
        was made or checked less than a second ago (the per-file paths of ``store``,
        ``lock`` and the by-md5 index)."""
        root = self.root
        hit = self._fast.get(name)
        now = time.monotonic()
        if hit is not None and hit[0] is root and now - hit[1] < 1.0:
            return hit[2]
        path = str(self._dir(name, fast=True))
        self._fast[name] = (root, now, path)
        return path

    def _dir(self, name: str, *, fast: bool = False) -> Path:
        root = self.root
        self._private_dir(root, fast=fast)
        return self._private_dir(root / name, fast=fast)

    def private_dir(self, name: str) -> Path:
        """The folder ``name`` under the cache root, made ``0700`` (for other parts of
        colabmodels that keep files in the cache, e.g. remembered listings)."""
        return self._dir(name)

    @staticmethod
    def write_private(path: Path, text: str) -> None:
        """Write ``path`` as a ``0600`` file whatever the umask (then ``os.replace`` it in)."""
        _write_private(path, text)

    # -- reading ----------------------------------------------------------------------------
    def entry(self, key: str) -> CacheEntry | None:
        """The entry stored under ``key`` if present and cheaply verified (a bad one is removed)."""
        if not isinstance(key, str) or not re.fullmatch(r"[0-9a-f]{8,64}", key):
            return None
        meta = os.path.join(self.root, "entries", key, _META)
        mtime = 0.0
        try:
            with open(meta, "rb") as fh:
                mtime = os.fstat(fh.fileno()).st_mtime
                data = json.loads(fh.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            data = None
        entry = CacheEntry.from_json(data, self.root)
        if entry is None or entry.key != key:
            logger.warning("cache entry %s has damaged metadata; it will be fetched again", key)
            self._discard(self.root / "entries" / key)
            return None
        entry.last_used = _last_used(str(entry.dir), mtime)
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
            e = CacheEntry.from_json(data, self.root)
            if e is None or e.key != d.name:
                continue
            with contextlib.suppress(OSError):
                e.last_used = _last_used(str(d), (d / _META).stat().st_mtime)
            found.append(e)
        return sorted(found, key=lambda e: e.last_used, reverse=True)

    def touch(self, entry: CacheEntry) -> None:
        """Mark ``entry`` as used now (the mtime of its ``meta.json``)."""
        with contextlib.suppress(OSError):
            os.utime(entry.dir / _META)

    # -- aliases: what a reference meant last time -----------------------------------------
    def _alias_path(self, alias: str) -> Path:
        alias = strip_signing_in(alias)
        return self._dir("aliases") / (hashlib.sha256(alias.encode()).hexdigest()[:32] + ".json")

    def remember(self, alias: str, entry: CacheEntry, **info: Any) -> None:
        self.remember_info(alias, {"key": entry.key, **info})

    def remember_info(self, alias: str, info: dict[str, Any]) -> None:
        """Remember facts about a reference that are not an entry (e.g. its saved versions)."""
        path = self._alias_path(alias)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        _write_private(tmp, json.dumps({"alias": strip_signing_in(alias), **info}))
        os.replace(tmp, path)

    def recall(self, alias: str) -> dict[str, Any] | None:
        """What ``remember_info`` stored for ``alias`` (None if nothing, or damaged)."""
        try:
            found = json.loads(self._alias_path(alias).read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    # -- writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, key: str, *, timeout: float = -1) -> Iterator[None]:
        """The cross-process lock of one key (released by the OS if the holder dies).

        An exclusive ``flock`` on ``locks/<key>.lock`` (the lock ``filelock`` takes on POSIX),
        taken with one open and one system call when nobody else holds it: this runs once per
        file of a dataset, so it stays cheap. Where there is no ``fcntl`` (Windows) it is
        ``filelock``'s lock on the same file. ``timeout`` < 0 waits as long as it takes.

        Raises:
            TransferError: ``timeout`` seconds passed and another process still holds it.
        """
        fcntl = _fcntl()
        path = os.path.join(self._fast_dir("locks"), f"{key}.lock")
        if fcntl is None:
            with _portable_lock(path, timeout, key):
                yield
            return
        # Read-only is enough for flock, and opens even if an odd umask took the write bit.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE_MODE)
        except FileNotFoundError:  # locks/ was removed a moment ago: make it again
            self._forget_folders()
            path = os.path.join(self._dir("locks"), f"{key}.lock")
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            _wait_for_flock(fd, fcntl, timeout, key)
            try:
                yield
            finally:
                # LOCK_UN first: a process forked meanwhile shares this open file (and so the
                # lock); unlocking frees it for everyone, closing alone would not.
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def get_or_store(self, key: str, *, identity: str, source: str, name: str, kind: str,
                     fill: Callable[[Path], None], extra: dict[str, Any] | None = None,
                     known_md5: dict[str, str] | None = None) -> tuple[CacheEntry, bool]:
        """The entry ``key``, made by ``store`` when it is missing: look up, lock, look
        again (another process may have finished it while this one waited), store.

        The arguments are ``store``'s; ``fill`` runs only when the entry is made, under the
        key's lock. Returns ``(entry, made now)``.
        """
        entry = self.entry(key)
        if entry is not None:
            return entry, False
        with self.lock(key):
            entry = self.entry(key)
            if entry is not None:
                return entry, False
            return self.store(key, identity=identity, source=source, name=name, kind=kind,
                              fill=fill, extra=extra, known_md5=known_md5), True

    def file_paths(self, wanted: list[tuple[str, str, int | None]]) -> list[Path | None]:
        """Where files already sit in the cache, found without reading their entries.

        ``wanted`` holds ``(key, remote name, size or None)`` of file entries. One directory
        listing finds the entries that exist, then one ``stat`` each checks the file has the
        size the source reports (a file renamed at the source keeps its entry under the old
        name, so it is not found here and is looked up the full way, ``entry``). On a
        local disk that is a few microseconds per file.
        """
        return [None if p is None else Path(p) for p in self.file_path_strings(wanted)]

    def file_path_strings(self, wanted: list[tuple[str, str, int | None]]) -> list[str | None]:
        """``file_paths`` as strings (for thousands of files at once: no ``Path`` objects)."""
        base = os.path.join(self.root, "entries")
        try:
            present = set(os.listdir(base))
        except OSError:
            return [None] * len(wanted)
        out: list[str | None] = [None] * len(wanted)
        stat_, sep = os.stat, os.sep
        for i, (key, name, size) in enumerate(wanted):
            if key not in present:
                continue
            path = f"{base}{sep}{key}{sep}data{sep}{sanitize_name(name)}"
            try:
                ok = size is None or stat_(path).st_size == size
            except OSError:
                ok = False
            if ok:
                out[i] = path
        return out

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

        The caller must hold ``lock`` for ``key``. ``fill`` writes the file (or a folder) at the path
        it is given; what it leaves is moved into place atomically. ``known_md5`` maps relative
        paths (``""`` for a file entry) to md5s already verified against the source, so they
        are not hashed a second time.
        """
        name = sanitize_name(name)
        stage = os.path.join(self._fast_dir("partial"), f"{key}.{uuid.uuid4().hex}.stage")
        data_dir = os.path.join(stage, "data")
        moved = False
        try:
            try:
                _mkdir_private(stage)
            except FileNotFoundError:  # partial/ was removed a moment ago: make it again
                self._forget_folders()
                stage = os.path.join(self._dir("partial"), os.path.basename(stage))
                data_dir = os.path.join(stage, "data")
                _mkdir_private(stage)
            _mkdir_private(data_dir)
            target = Path(data_dir, name)
            md5 = (known_md5 or {}).get("") if kind == "file" else None
            if not (md5 and self._reuse_same_content(md5, target)):
                fill(target)
            modes: list[int] = []
            files = _describe(target, kind, known_md5 or {}, modes)
            entry = CacheEntry(key=key, identity=strip_signing_in(identity),
                               source=strip_signing_in(source), name=name, kind=kind,
                               size=sum(f["size"] for f in files), created=time.time(),
                               files=files, root=self.root, extra=extra or {})
            # meta.json's mtime is the entry's last use (no separate marker file)
            _create_private(os.path.join(stage, _META),  # compact: the C encoder, not the Python one
                            json.dumps(entry.to_json(), separators=(",", ":")).encode())
            if kind == "file" and modes and stat_mod.S_ISREG(modes[0]):
                if modes[0] & 0o777 != PRIVATE_FILE_MODE:  # whatever mode ``fill`` made it with
                    os.chmod(target, PRIVATE_FILE_MODE)
            else:
                _make_private(Path(stage))
            final = os.path.join(self._fast_dir("entries"), key)
            try:
                os.replace(stage, final)
            except OSError:
                if not os.path.isdir(os.path.dirname(final)):  # entries/ removed meanwhile
                    self._forget_folders()
                    final = os.path.join(self._dir("entries"), key)
                elif not os.path.lexists(final):
                    raise
                else:
                    self._discard(Path(final))  # an older copy of the same key: aside, then in
                os.replace(stage, final)
            moved = True
        finally:
            if not moved:
                shutil.rmtree(stage, ignore_errors=True)
        entry.last_used = time.time()
        if kind == "file" and files and files[0].get("md5"):
            self._index_content(files[0]["md5"], key)
        return entry

    # -- the same bytes under another identity: never fetched twice ---------------------------
    def _content_path(self, md5: str) -> str:
        return os.path.join(self._fast_dir("by-md5"), md5)

    def _index_content(self, md5: str, key: str) -> None:
        """Remember that the file entry ``key`` holds bytes whose md5 is ``md5``: ``by-md5/<md5>``
        is made a hard link to the entry's ``meta.json`` (which names the key): a name, not a
        new file, so a cold dataset epoch allocates one inode less per image. Where links are
        refused, a small private file holding the key, made with one exclusive create (a reader
        that finds it empty or half-written simply finds nothing to reuse)."""
        if not _MD5_RE.fullmatch(md5):
            return
        with contextlib.suppress(OSError):
            path = self._content_path(md5)
            meta = os.path.join(self.root, "entries", key, _META)
            try:
                os.link(meta, path, follow_symlinks=False)
                return
            except FileExistsError:
                if _read_key(path) != key:  # an older entry's: point at the newest
                    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
                    os.link(meta, tmp, follow_symlinks=False)
                    os.replace(tmp, path)
                return
            except OSError as e:
                logger.debug("no hard link for the by-md5 index (%s): a file instead", e)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW,
                             PRIVATE_FILE_MODE)
            except FileExistsError:
                if _read_key(path) != key:  # an older entry's: point at the newest
                    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
                    _write_private(tmp, key)
                    os.replace(tmp, path)
                return
            try:
                os.write(fd, key.encode())
            finally:
                os.close(fd)

    def with_content(self, md5: str) -> CacheEntry | None:
        """A verified file entry whose bytes have the md5 ``md5`` (another file id, another
        version of a saved model, another source), or None."""
        if not isinstance(md5, str) or not _MD5_RE.fullmatch(md5):
            return None
        key = _read_key(self._content_path(md5))
        if key is None:
            return None
        entry = self.entry(key)
        if entry is None or entry.kind != "file" or len(entry.files) != 1 \
                or entry.files[0].get("md5") != md5:
            return None
        return entry

    def _reuse_same_content(self, md5: str, target: Path) -> bool:
        """Put a cached file with the md5 ``md5`` at ``target`` (a hard link, or a copy on
        another file system) instead of downloading it; False when there is none."""
        found = self.with_content(md5)
        if found is None:
            return False
        src = found.path
        try:
            if not stat_mod.S_ISREG(os.lstat(src).st_mode):
                return False
            try:
                os.link(src, target, follow_symlinks=False)
            except OSError:
                shutil.copyfile(src, target, follow_symlinks=False)
        except OSError as e:
            logger.info("could not reuse %s for md5 %s: %s", src, md5, e)
            with contextlib.suppress(OSError):
                os.unlink(target)
            return False
        logger.debug("md5 %s already cached as %s; not fetched again", md5, found.key)
        return True

    # -- maintenance -------------------------------------------------------------------------
    @contextlib.contextmanager
    def in_use(self, entry: CacheEntry) -> Iterator[CacheEntry]:
        """Hold a shared lock on ``entry`` so ``prune`` leaves it alone.

        Without ``fcntl`` (Windows) there is no shared lock: the entry is only marked as used
        now (the least recently used go first), and Windows itself refuses to move a folder
        whose files are open.
        """
        fcntl = _fcntl()
        if fcntl is None:
            self.touch(entry)
            yield entry
            return
        try:
            fh = _open_inuse(entry)
        except OSError:
            yield entry
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_SH)
            self.touch(entry)
            yield entry

    def _try_exclusive(self, entry: CacheEntry) -> Any:
        fcntl = _fcntl()
        if fcntl is None:
            return io.BytesIO()  # nothing to take (see in_use); closing it releases nothing
        try:
            fh = _open_inuse(entry)
        except OSError:
            return None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return None
        return fh

    def remove(self, entry: CacheEntry) -> None:
        self._discard(entry.dir)

    def _discard(self, directory: Path) -> None:
        """Remove an entry folder: renamed aside first, so no reader sees it half-deleted."""
        doomed = directory.with_name(f"{directory.name}.{uuid.uuid4().hex}.deleting")
        try:
            os.replace(directory, doomed)
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
        bad.extend(self._damaged_metadata())
        return bad

    def _damaged_metadata(self) -> list[CacheEntry]:
        """Entry folders whose ``meta.json`` is missing or damaged: removed, and reported."""
        base = self.root / "entries"
        if not base.is_dir():
            return []
        found = []
        for d in base.iterdir():
            if not d.is_dir() or not re.fullmatch(r"[0-9a-f]{8,64}", d.name):
                continue
            try:
                data = json.loads((d / _META).read_text())
            except (OSError, ValueError):
                data = None
            if data is not None and CacheEntry.from_json(data, self.root) is not None:
                continue
            problem = "its metadata (meta.json) is missing or damaged"
            logger.warning("cache entry %s is bad: %s", d.name, problem)
            found.append(CacheEntry(key=d.name, identity="", source="", name=d.name, kind="file",
                                    size=0, created=0.0, root=self.root,
                                    extra={"problem": problem}))
            self._discard(d)
        return found

    def clear(self) -> None:
        """Remove every entry, alias and partial download."""
        for name in ("entries", "partial", "aliases", "by-md5"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        self._forget_folders()

    def __repr__(self) -> str:
        return f"<colabmodels cache at {self.root}>"


def _fcntl() -> Any:
    """The ``fcntl`` module where the OS has it (POSIX), else None (Windows)."""
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


def _busy(key: str, waited: float) -> TransferError:
    return TransferError(f"another process has been fetching the same file (cache key {key}) for "
                         f"{waited:.0f} s. Wait for it to finish, or stop it and try again.")


@contextlib.contextmanager
def _portable_lock(path: str, timeout: float, key: str) -> Iterator[None]:
    """``filelock``'s exclusive lock on ``path`` (where there is no ``fcntl``): released by the
    OS if the holder dies, polled so Ctrl-C and ``timeout`` work while waiting."""
    from filelock import FileLock, Timeout

    lock = FileLock(path, mode=PRIVATE_FILE_MODE)
    start = time.monotonic()
    try:
        lock.acquire(timeout=0.05, poll_interval=0.01)
    except Timeout:
        logger.info("waiting for another process that is fetching the same file")
        rest = -1.0 if timeout < 0 else max(0.0, timeout - (time.monotonic() - start))
        try:
            lock.acquire(timeout=rest, poll_interval=0.05)
        except Timeout:
            raise _busy(key, time.monotonic() - start) from None
    try:
        yield
    finally:
        lock.release()


def _wait_for_flock(fd: int, fcntl: Any, timeout: float, key: str) -> None:
    """Take an exclusive ``flock`` on ``fd``: polled, so Ctrl-C and ``timeout`` work while waiting."""
    start = time.monotonic()
    said = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - start
        if not said and waited >= 0.05:
            logger.info("waiting for another process that is fetching the same file")
            said = True
        if 0 <= timeout <= waited:
            raise _busy(key, waited)
        time.sleep(0.01 if waited < 0.05 else 0.05)


def _check_own_folder(d: Path, root: Path) -> None:
    """Refuse a cache folder that another user owns, or (if in use) that others can write.

    Whoever can write the cache can replace what colabmodels downloads (and plant links that
    make it overwrite the user's files). A folder of ours that others can write is tightened
    to ``0700`` only while it is still empty; once it holds something, the user decides.

    Raises:
        ConfigError: saying how to fix it.
    """
    if not hasattr(os, "getuid"):  # Windows: folders under the profile are private already
        return
    st = d.stat()
    fix = ("Point COLABMODELS_CACHE_DIR at a folder of your own (unset, the cache is "
           "~/.cache/colabmodels).")
    if st.st_uid != os.getuid():
        raise ConfigError(
            f"the colabmodels cache folder {d} belongs to another user (uid {st.st_uid}), who "
            f"could replace what is downloaded there. {fix}")
    if st.st_mode & 0o022 and os.listdir(d):
        where = "the colabmodels cache folder" if d == root else f"{d.name} in the cache folder"
        raise ConfigError(
            f"{where} {d} can be written by other users (mode {st.st_mode & 0o7777:o}), who "
            f"could replace what is downloaded there. If only you have used it, run `chmod 700 "
            f"{d}`; otherwise {fix[0].lower()}{fix[1:]}")


def _open_inuse(entry: CacheEntry) -> Any:
    """``entry``'s ``inuse.lock``, made (private, never through a planted link) if missing."""
    fd = os.open(entry.dir / "inuse.lock", os.O_RDWR | os.O_CREAT | O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        return os.fdopen(fd, "a+b")
    except BaseException:
        os.close(fd)
        raise


def _read_key(path: Path | str) -> str | None:
    """The key a ``by-md5`` file names (never through a planted link), or None: a link to an
    entry's ``meta.json`` names it in its ``key`` field, an older index file holds the key."""
    try:
        fd = os.open(path, os.O_RDONLY | O_NOFOLLOW)
    except OSError:
        return None
    try:
        data = os.read(fd, 1 << 16)
    except OSError:
        return None
    finally:
        os.close(fd)
    if data.startswith(b"{"):
        try:
            found = json.loads(data)
        except ValueError:
            return None
        key = found.get("key") if isinstance(found, dict) else None
        return key if isinstance(key, str) else None
    return data.decode("ascii", "replace").strip()


def _write_private(path: Path | str, text: str) -> None:
    """Write ``path`` (created ``0600`` whatever the umask; a symbolic link there is not followed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_NOFOLLOW | O_BINARY,
                 PRIVATE_FILE_MODE)
    try:
        if hasattr(os, "fchmod"):  # not on Windows (and no such modes there)
            os.fchmod(fd, PRIVATE_FILE_MODE)
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def _create_private(path: str, data: bytes) -> None:
    """Create the new file ``path`` (``O_EXCL``: never an existing file or a planted link)
    holding ``data``, ``0600`` from its creation (a chmod only if the umask took bits off)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_BINARY,
                 PRIVATE_FILE_MODE)
    try:
        if hasattr(os, "fchmod") and _umask_strips(PRIVATE_FILE_MODE):
            os.fchmod(fd, PRIVATE_FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _mkdir_private(path: str) -> None:
    """Make the folder ``path`` (its parent exists), ``0700`` whatever the umask."""
    os.mkdir(path, PRIVATE_DIR_MODE)
    if _umask_strips(PRIVATE_DIR_MODE):
        os.chmod(path, PRIVATE_DIR_MODE)


_UMASK: list[int | None] = []


def _umask_strips(mode: int) -> bool:
    """Whether the process umask takes bits off ``mode`` (then a chmod must put them back).

    A umask can only take bits away, so a file or folder created ``0600``/``0700`` is never
    less private than that; only a umask that strips the owner's own bits needs the chmod.
    The umask is read once from ``/proc/self/status`` (Linux); elsewhere, or if it cannot be
    read, every file and folder is chmod-ed as before.
    """
    if not _UMASK:
        found = None
        with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    found = int(line.split()[1], 8)
                    break
        _UMASK.append(found)
    umask = _UMASK[0]
    return umask is None or bool(umask & mode)


def _make_private(top: Path) -> None:
    """Folders ``0700`` and files ``0600`` below ``top`` (links are not followed)."""
    for dirpath, dirnames, filenames in os.walk(top):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, PRIVATE_DIR_MODE)
        for name in filenames:
            p = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if not os.path.islink(p) and os.stat(p).st_mode & 0o777 != PRIVATE_FILE_MODE:
                    os.chmod(p, PRIVATE_FILE_MODE)
        del dirnames  # os.walk does not follow links into folders by default


def _describe(target: Path, kind: str, known_md5: dict[str, str],
              modes: list[int] | None = None) -> list[dict[str, Any]]:
    """Path, size, mtime and md5 of the entry's files (``modes``: their ``st_mode`` values,
    links not followed, so the caller needs no second stat)."""
    paths = [("", target)] if kind == "file" else [
        (p.relative_to(target).as_posix(), p) for p in sorted(target.rglob("*")) if p.is_file()
    ]
    out = []
    for rel, p in paths:
        st = os.lstat(p) if kind == "file" else p.stat()
        if kind == "file" and stat_mod.S_ISLNK(st.st_mode):
            st = p.stat()
            st_mode = stat_mod.S_IFLNK
        else:
            st_mode = st.st_mode
        if modes is not None:
            modes.append(st_mode)
        out.append({"path": rel, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                    "md5": known_md5.get(rel) or file_md5(p)})
    return out


def _last_used(entry_dir: str, meta_mtime: float) -> float:
    """An entry's last use: its ``meta.json``'s mtime, or the ``used`` marker's of an entry
    stored before that (whichever is later)."""
    try:
        return max(meta_mtime, os.stat(os.path.join(entry_dir, "used")).st_mtime)
    except OSError:
        return meta_mtime


cache = Cache()
"""The runtime's cache (``cm.cache``)."""
