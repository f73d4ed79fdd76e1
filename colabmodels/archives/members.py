"""Zip members read by byte ranges, each into its own cache entry.

``ZipArchive`` is one zip in any backend: its central directory (read in at most three
ranged requests by ``read_directory``, then kept in the cache,
so a new kernel sends no ranged request to list it again) and its members.

``MemberFetcher`` brings members into the cache. The members asked for are sorted by where
they sit in the archive and *neighbours are coalesced*: members whose spans touch (or are
separated by at most ``MAX_GAP`` bytes of members nobody asked for) become one block, read
with one ``Range: bytes=a-b`` request of up to ``BLOCK_BYTES`` (Drive honours one range per
request: no multi-range). Blocks are read ``WORKERS`` at a time, in the order their members
are first needed (a member asked for now jumps the queue); a block larger than
``ENGINE_BYTES`` (a single big member) goes through the parallel, resuming transfer engine
instead. Retries follow the one retry policy.

Each member is decoded (stored or deflate) straight into its cache entry's staging folder:
writing stops at its declared size, its CRC-32 is checked against the central directory, and
the entry appears only complete (``Cache.store``), so nothing half-written is ever an entry.
The entry's key is the archive's content identity plus the member's offset: a changed archive
gets new entries, and a second epoch or a new kernel finds every member on local disk.

With ``MemberFetcher(blobs=True)`` (what ``image_dataset_from_drive`` uses) a block is kept
as it sits in the archive, one cache file per block, and ``ZipArchive.member_bytes``
decodes a member from it when asked (CRC-32 checked on every read): one file creation per
block instead of one per member.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from ..cachestore import CacheEntry, cache, identity_of, key_for, sanitize_name
from ..errors import IntegrityError, TransferError, UnknownFormatError
from ..transfer import call_with_retries
from . import limits
from .zipdir import (
    LOCAL_HEADER,
    LOCAL_SIG,
    STORED,
    ZipDirectory,
    ZipMember,
    parse_directory,
    read_directory,
)

if TYPE_CHECKING:
    from ..storage.base import RemoteStat, StorageBackend

__all__ = [
    "BLOCK_BYTES",
    "MAX_GAP",
    "WORKERS",
    "MemberFetcher",
    "ZipArchive",
    "copy_member",
    "plan_blocks",
]

logger = logging.getLogger(__name__)
_Got = TypeVar("_Got")  # what the cache holds for a member: a file, or (block file, start)

BLOCK_BYTES = 4 * 1024 * 1024
"""Largest coalesced range (bigger blocks: fewer requests; smaller: an earlier first batch)."""
MIN_BLOCK_BYTES = 512 * 1024
"""Smallest coalesced range a fetcher plans (when the members it reads are few)."""
MAX_GAP = 64 * 1024
"""Bytes of unwanted members a block may read through to join two wanted ones."""
ENGINE_BYTES = 16 * 1024 * 1024
"""A block this large (one big member) is downloaded by the parallel ranged transfer engine."""
WORKERS = 16
"""Blocks read at the same time."""
_OUT_BLOCK = 1024 * 1024
_DIR_FORMAT = "colabmodels.zipdir/1"


def display(stat: RemoteStat) -> str:
    """How errors and warnings name the archive: its path, else its name."""
    return (stat.ref.path or stat.name or str(stat.ref)).rstrip("/")


def copy_member(src: IO[bytes], member: ZipMember, out: IO[bytes], *, where: str,
                digest: bool = True) -> str:
    """Decode one member from ``src`` (positioned at its local header) into ``out``.

    Writes at most ``member.size`` bytes and checks the CRC-32 against the central directory.

    Returns:
        The md5 of what was written ("" with ``digest=False``: a reader that keeps no copy).

    Raises:
        UnknownFormatError: the member is encrypted or uses an unsupported compression method.
        UnsafeArchiveError: its data expands past its declared size.
        IntegrityError: a damaged local header, truncated data, or a CRC mismatch.
    """
    what = f"{where}: member {member.name!r}"
    check_readable(member, where=where)
    header = src.read(LOCAL_HEADER.size)
    if len(header) < LOCAL_HEADER.size or header[:4] != LOCAL_SIG:
        raise IntegrityError(f"{what}: no local header where the directory says it starts; the "
                             "archive is corrupt or changed while it was read")
    fields = LOCAL_HEADER.unpack(header)
    skip = fields[9] + fields[10]
    if len(src.read(skip)) != skip:
        raise IntegrityError(f"{what}: truncated local header")
    md5 = hashlib.md5(usedforsecurity=False) if digest else None
    crc = 0
    written = 0

    def emit(chunk: bytes) -> None:
        nonlocal crc, written
        if not chunk:
            return
        if written + len(chunk) > member.size:
            from ..errors import UnsafeArchiveError

            raise UnsafeArchiveError(f"{what} expands past its declared {member.size} bytes; "
                                     "refusing it (a zip bomb or a corrupt archive)")
        out.write(chunk)
        if md5 is not None:
            md5.update(chunk)
        crc = zlib.crc32(chunk, crc)
        written += len(chunk)

    remaining = member.compressed_size
    try:
        if member.method == STORED:
            while remaining:
                chunk = src.read(min(_OUT_BLOCK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                emit(chunk)
        else:
            inflater = zlib.decompressobj(-15)
            buf = b""
            while not inflater.eof:
                if not buf:
                    if not remaining:
                        break
                    buf = src.read(min(_OUT_BLOCK, remaining))
                    if not buf:
                        break
                    remaining -= len(buf)
                emit(inflater.decompress(buf, _OUT_BLOCK))
                buf = inflater.unconsumed_tail
            if not inflater.eof:
                remaining = max(remaining, 1)
    except zlib.error as e:
        raise IntegrityError(f"{what}: corrupt compressed data ({e})") from e
    if remaining or written != member.size:
        raise IntegrityError(f"{what}: truncated ({written} of {member.size} bytes); the archive "
                             "is damaged or incomplete")
    if crc != member.crc:
        raise IntegrityError(f"{what}: CRC-32 {crc:08x} does not match the archive's "
                             f"{member.crc:08x}; the archive is corrupt")
    return md5.hexdigest() if md5 is not None else ""


def check_readable(member: ZipMember, *, where: str) -> None:
    """Raise for a member that cannot be read: encrypted, or an unsupported method.

    Raises:
        UnknownFormatError: naming the archive and the member.
    """
    if member.encrypted:
        raise UnknownFormatError(
            f"{where}: member {member.name!r} is encrypted (password-protected); colabmodels "
            "reads only unencrypted archives. Re-create the zip without a password.")
    if not member.supported:
        raise UnknownFormatError(
            f"{where}: member {member.name!r} is compressed with {member.method_name}; only "
            "stored and deflate members can be read. Re-create the zip with deflate.")


@dataclass
class Block:
    """Members read with one ranged request ``[start, end)``."""

    start: int
    end: int
    members: list[ZipMember] = field(default_factory=list)


def plan_blocks(members: Iterable[ZipMember], *, block_bytes: int = BLOCK_BYTES,
                max_gap: int = MAX_GAP) -> list[Block]:
    """Coalesce members that are neighbours in the archive into blocks, in archive order."""
    blocks: list[Block] = []
    for m in sorted(set(members), key=lambda m: m.header_offset):
        last = blocks[-1] if blocks else None
        if (last is not None and m.header_offset - last.end <= max_gap
                and m.span_end - last.start <= block_bytes and m.header_offset >= last.end):
            last.end = m.span_end
            last.members.append(m)
        else:
            blocks.append(Block(m.header_offset, m.span_end, [m]))
    return blocks


class ZipArchive:
    """One zip archive in a backend: its members, read by range into the cache.

    Attributes:
        backend, stat: where it lives and what the source says about it.
        directory: the parsed central directory.
        where: how messages name it (its path).
    """

    def __init__(self, backend: StorageBackend, stat: RemoteStat, directory: ZipDirectory) -> None:
        self._backend: StorageBackend | None = backend
        self.stat = stat
        self.directory = directory
        self.where = display(stat)
        self.identity = identity_of(stat)

    @property
    def backend(self) -> StorageBackend:
        """The source's backend (signed in again after unpickling in a worker process)."""
        if self._backend is None:
            from ..storage import backend_for

            self._backend = backend_for(self.stat.ref)
        return self._backend

    def __getstate__(self) -> dict[str, object]:
        """Pickled (torch DataLoader workers under spawn) without a connection or session."""
        return {**self.__dict__, "_backend": None, "_entries": {}}

    @property
    def members(self) -> list[ZipMember]:
        return self.directory.members

    @classmethod
    def open(cls, backend: StorageBackend, stat: RemoteStat) -> ZipArchive:
        """The archive ``stat`` describes, its directory read by range (or from the cache).

        Raises:
            UnknownFormatError: not a zip archive.
            IntegrityError: a truncated or corrupt directory.
            and the backend's errors.
        """
        where = display(stat)
        if stat.size is None:
            raise UnknownFormatError(f"{where}: the source does not say its size, so it cannot be "
                                     "read as a zip by ranges; use cm.fetch(..., extract=True)")
        identity = identity_of(stat)
        key = key_for("zip-directory:" + identity)
        entry = cache.entry(key)
        if entry is not None:
            try:
                info = entry.extra
                raw = entry.path.read_bytes()
                directory = parse_directory(raw, size=stat.size, cd_start=info["cd_start"],
                                            cd_size=info["cd_size"], entries=info["entries"],
                                            shift=info["shift"], where=where)
                cache.touch(entry)
                return cls(backend, stat, directory)
            except (OSError, KeyError, TypeError, IntegrityError):
                cache.remove(entry)

        def read(start: int, end: int) -> bytes:
            return _read_exact(backend, stat, start, end)

        directory, raw = read_directory(read, stat.size, where=where)
        with cache.lock(key):
            if cache.entry(key) is None:
                def fill(target: Path) -> None:
                    target.write_bytes(raw)

                cache.store(key, identity="zip-directory:" + identity,
                            source=f"{stat.ref} (zip directory)", name="central-directory",
                            kind="file", fill=fill,
                            extra={"format": _DIR_FORMAT, "cd_start": directory.cd_offset,
                                   "cd_size": directory.cd_size, "shift": directory.shift,
                                   "entries": len(directory.members)})
        logger.info("%s: %d members listed with %d ranged requests (%d bytes)", where,
                    len(directory.members), directory.requests, directory.bytes_read)
        return cls(backend, stat, directory)

    # -- the cache -----------------------------------------------------------------------------
    # One cache entry per block read (a tree of its members, each named ``<offset>-<name>``),
    # so a block of hundreds of small members costs one entry, not hundreds; which entry holds
    # which member is remembered per archive (``zip-members:<identity>``), so a new kernel
    # finds them with one small read.

    def _members_alias(self) -> str:
        return f"zip-members:{self.identity}"

    def _index(self) -> dict[str, list[str]]:
        """``{header offset: [key of the block entry holding it, its name there]}``."""
        with _INDEX_LOCK:
            found = getattr(self, "_known", None)
            if found is None:
                recalled = cache.recall(self._members_alias()) or {}
                members = recalled.get("members")
                found = self._known = dict(members) if isinstance(members, dict) else {}
            return found

    def _remember(self, paths: dict[int, list[str]]) -> None:
        with _INDEX_LOCK:
            known = self._index()
            known.update({str(k): v for k, v in paths.items()})
            try:
                cache.remember_info(self._members_alias(), {"members": known})
            except OSError as e:  # a read-only cache: found again by reading next time
                logger.debug("could not remember the members of %s: %s", self.where, e)

    def member_name(self, member: ZipMember) -> str:
        base = member.name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or "member"
        return sanitize_name(f"{member.header_offset}-{base}")

    def _entry(self, key: str) -> CacheEntry | None:
        """The block entry ``key`` (looked up once per archive object, then remembered)."""
        entries: dict[str, CacheEntry | None] = self.__dict__.setdefault("_entries", {})
        if key not in entries:
            entries[key] = cache.entry(key)
        return entries[key]

    def cached_path(self, member: ZipMember) -> Path | None:
        """The member's cache file when it is already there (one ``stat``; no full check)."""
        found = self._index().get(str(member.header_offset))
        if not isinstance(found, list) or len(found) != 2:
            return None
        key, name = found
        entry = self._entry(key)
        if entry is None or name != sanitize_name(name):
            return None
        path = entry.path / name
        try:
            if os.stat(path).st_size == member.size:
                return path
        except OSError:
            pass
        self.__dict__.get("_entries", {}).pop(key, None)  # looked up again next time
        return None

    def store_members(self, members: Sequence[ZipMember], src: Callable[[ZipMember], IO[bytes]],
                      *, block: tuple[int, int]) -> dict[ZipMember, Path | BaseException]:
        """Decode ``members`` (``src(m)`` is a stream at its local header) into one cache entry.

        A member that fails (CRC, truncated, a bomb) is left out of the entry and reported.
        """
        ident = f"zip-block:{self.identity}:{block[0]}-{block[1]}:" + ",".join(
            str(m.header_offset) for m in members)
        key = key_for(ident)
        out: dict[ZipMember, Path | BaseException] = {}
        known: dict[str, str] = {}

        def fill(target: Path) -> None:
            target.mkdir()
            for m in members:
                name = self.member_name(m)
                dest = target / name
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    with open(fd, "wb") as fh:
                        known[name] = copy_member(src(m), m, fh, where=self.where)
                except Exception as e:
                    dest.unlink(missing_ok=True)  # never a half-written member in the entry
                    out[m] = e

        entry, _ = cache.get_or_store(key, identity=ident, source=f"{self.stat.ref} (zip members)",
                                      name="members", kind="tree", fill=fill, known_md5=known)
        self.__dict__.setdefault("_entries", {})[key] = entry
        paths: dict[int, list[str]] = {}
        for m in members:
            if m in out:
                continue
            path = entry.path / self.member_name(m)
            if path.is_file():
                out[m] = path
                paths[m.header_offset] = [key, self.member_name(m)]
            else:
                out[m] = IntegrityError(f"{self.where}: member {m.name!r} is missing from its "
                                        "cache entry; it will be read again")
        if paths:
            self._remember(paths)
        return out

    def _still_to_read(self, block: Block, cached: Callable[[ZipMember], _Got | None]
                       ) -> tuple[dict[ZipMember, _Got | BaseException], list[ZipMember]]:
        """Sort ``block``'s members: ``({member: what the cache has, or why it is refused},
        the members to read)``."""
        out: dict[ZipMember, _Got | BaseException] = {}
        wanted = []
        for m in block.members:
            found = cached(m)
            if found is not None:
                out[m] = found
                continue
            try:
                check_readable(m, where=self.where)
                limits.check_member(m.name, m.size, m.compressed_size, where=self.where)
            except Exception as e:  # reported per member
                out[m] = e
                continue
            wanted.append(m)
        return out, wanted

    def fetch_block(self, block: Block, cancel: threading.Event | None = None) -> dict[ZipMember, Path | BaseException]:
        """Read one block and store its members: ``{member: path or the error}``."""
        out, wanted = self._still_to_read(block, self.cached_path)
        if not wanted:
            return out
        start, end = wanted[0].header_offset, wanted[-1].span_end
        if end - start > ENGINE_BYTES:
            return {**out, **self._fetch_big(wanted, start, end, cancel)}
        data = memoryview(_read_exact(self.backend, self.stat, start, end))

        def src(m: ZipMember) -> IO[bytes]:
            return io.BytesIO(data[m.header_offset - start:m.span_end - start])

        return {**out, **self.store_members(wanted, src, block=(start, end))}

    # -- blocks kept whole: one cache file per block (the bytes as they sit in the archive) ----
    # What image_dataset_from_drive reads: a member's bytes are decoded from its block's file
    # when asked for (CRC-32 checked each time), so a block of hundreds of members costs one
    # file creation, not hundreds.

    def _blobs_alias(self) -> str:
        return f"zip-blobs:{self.identity}"

    def _blob_index(self) -> dict[str, list[Any]]:
        """``{header offset: [key of the block's file entry, the block's start]}``."""
        with _INDEX_LOCK:
            found = self.__dict__.get("_known_blobs")
            if found is None:
                recalled = cache.recall(self._blobs_alias()) or {}
                members = recalled.get("members")
                found = self.__dict__["_known_blobs"] = dict(members) if isinstance(members, dict) else {}
            return found

    def blob_of(self, member: ZipMember) -> tuple[Path, int] | None:
        """``(file, its start in the archive)`` of the cached block holding ``member``, if any."""
        found = self._blob_index().get(str(member.header_offset))
        if not isinstance(found, list) or len(found) != 2 or not isinstance(found[1], int):
            return None
        key, start = found
        entry = self._entry(key)
        if entry is None:
            return None
        path = entry.path
        end = member.span_end - start
        try:
            if start <= member.header_offset and os.stat(path).st_size >= end:
                return path, start
        except OSError:
            pass
        self.__dict__.get("_entries", {}).pop(key, None)
        return None

    def fetch_blob(self, block: Block, cancel: threading.Event | None = None) -> dict[ZipMember, tuple[Path, int] | BaseException]:
        """Read one block into a cache file of its own: ``{member: (file, start) or the error}``."""
        out, wanted = self._still_to_read(block, self.blob_of)
        if not wanted:
            return out
        start, end = wanted[0].header_offset, wanted[-1].span_end
        ident = f"zip-blob:{self.identity}:{start}-{end}"
        key = key_for(ident)
        partial = cache.partial_path(key)

        def fill(target: Path) -> None:
            if end - start > ENGINE_BYTES:  # one big member: parallel ranged parts, resumable
                from ..transfer import download_to

                view = RangeView(self.backend, self.stat, start, end)
                download_to(view, view.stat, partial, cancel=cancel)  # type: ignore[arg-type]
                os.replace(partial, target)
            else:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with open(fd, "wb") as fh:
                    fh.write(_read_exact(self.backend, self.stat, start, end))

        cache.ensure_space(end - start)
        entry, _ = cache.get_or_store(key, identity=ident, source=f"{self.stat.ref} (zip block)",
                                      name="block", kind="file", fill=fill)
        self.__dict__.setdefault("_entries", {})[key] = entry
        with _INDEX_LOCK:
            self._blob_index().update({str(m.header_offset): [key, start] for m in wanted})
            self.__dict__["_blobs_dirty"] = True
            if time.monotonic() - self.__dict__.get("_blobs_saved", 0.0) >= _SAVE_EVERY_S:
                self.save_blob_index()
        for m in wanted:
            out[m] = (entry.path, start)
        return out

    def save_blob_index(self) -> None:
        """Write which blocks hold which members (for a new kernel), if anything changed. At
        most every ``_SAVE_EVERY_S`` while blocks arrive, and when a reader goes idle or
        closes: rewriting it after every block would cost more than reading the block."""
        with _INDEX_LOCK:
            if not self.__dict__.get("_blobs_dirty"):
                return
            self.__dict__["_blobs_dirty"] = False
            self.__dict__["_blobs_saved"] = time.monotonic()
            try:
                cache.remember_info(self._blobs_alias(), {"members": self._blob_index()})
            except OSError as e:  # a read-only cache: read again next time
                logger.debug("could not remember the blocks of %s: %s", self.where, e)

    def member_bytes(self, member: ZipMember, blob: tuple[Path, int]) -> bytes:
        """``member``'s decoded bytes, from its block's cache file (CRC-32 checked).

        Raises:
            IntegrityError, UnsafeArchiveError, UnknownFormatError: as ``copy_member``.
        """
        from ..transfer import open_private, pread_at

        path, start = blob
        n = member.span_end - member.header_offset
        fd = open_private(path, os.O_RDONLY)
        try:
            raw = pread_at(fd, n, member.header_offset - start)
        finally:
            os.close(fd)
        out = io.BytesIO()
        copy_member(io.BytesIO(raw), member, out, where=self.where, digest=False)
        return out.getvalue()

    def _fetch_big(self, members: list[ZipMember], start: int, end: int,
                   cancel: threading.Event | None) -> dict[ZipMember, Path | BaseException]:
        """A large range through the parallel, resuming transfer engine, then decoded from disk."""
        from ..transfer import download_to

        key = key_for(f"zip-range:{self.identity}:{start}:{end}")
        partial = cache.partial_path(key)
        with cache.lock(key):
            cache.ensure_space(end - start + sum(m.size for m in members))
            view = RangeView(self.backend, self.stat, start, end)
            download_to(view, view.stat, partial, cancel=cancel)  # type: ignore[arg-type]
            try:
                with open(partial, "rb") as fh:
                    def src(m: ZipMember) -> IO[bytes]:
                        fh.seek(m.header_offset - start)
                        return fh

                    return self.store_members(members, src, block=(start, end))
            finally:
                partial.unlink(missing_ok=True)


_INDEX_LOCK = threading.RLock()
_SAVE_EVERY_S = 1.0
"""How often, at most, the blocks a reader stored are written down while it reads."""
_NOW = 10 ** 15
"""Subtracted from a queue position: blocks needed now go before those read ahead."""


class RangeView:
    """``[start, end)`` of a remote file, seen by the transfer engine as a file of its own."""

    source = "range"

    def __init__(self, backend: StorageBackend, stat: RemoteStat, start: int, end: int) -> None:
        from dataclasses import replace

        self.backend, self.base = backend, stat
        self.start, self.end = start, end
        self.stat = replace(stat, size=end - start, checksum=None,
                            identity=f"{identity_of(stat)}:range={start}-{end}")

    def check_downloadable(self, stat: RemoteStat) -> None:
        self.backend.check_downloadable(self.base)

    def open_range(self, ref: Any, start: int, end: int | None) -> Iterator[bytes]:
        stop = self.end if end is None else self.start + end
        return self.backend.open_range(self.base.ref, self.start + start, stop)


def _read_exact(backend: StorageBackend, stat: RemoteStat, start: int, end: int) -> bytes:
    """The bytes ``[start, end)`` in one ranged request (retried under the one policy)."""
    where = display(stat)

    def attempt() -> bytes:
        data = backend.read_range(stat.ref, start, end)
        if len(data) != end - start:
            from ..errors import RetryableError

            if len(data) < end - start and start + len(data) < (stat.size or 0):
                raise RetryableError(f"{where}: connection closed after {len(data)} of "
                                     f"{end - start} bytes")
            raise IntegrityError(f"{where}: asked for bytes {start}-{end}, got {len(data)}; the "
                                 "archive is truncated or changed while it was read")
        return data

    return call_with_retries(attempt, what=f"reading {where}")


class MemberFetcher:
    """Members of one archive into the cache: coalesced blocks, read in order of need.

    ``want(members)`` queues their blocks (in the order given); ``path(member)`` moves its block
    to the front and waits for it. Thread-safe. Workers are threads of this process; a fetcher
    is re-made after a fork.

    Args:
        archive: the archive.
        members: every member this fetcher may be asked for (the blocks are planned over them).
        workers: blocks read at the same time.
    """

    def __init__(self, archive: ZipArchive, members: Sequence[ZipMember], *,
                 workers: int = WORKERS, block_bytes: int = BLOCK_BYTES,
                 max_gap: int = MAX_GAP, blobs: bool = False) -> None:
        self.archive = archive
        self.blobs = blobs
        self.workers = workers
        # Blocks small enough that every connection has work from the start (an early first
        # batch), large enough that latency is paid rarely.
        span = sum(m.span_end - m.header_offset for m in set(members))
        block_bytes = max(MIN_BLOCK_BYTES, min(block_bytes, span // max(1, 2 * workers)))
        self._blocks = plan_blocks(members, block_bytes=block_bytes, max_gap=max_gap)
        self._block_of: dict[ZipMember, int] = {}
        for i, block in enumerate(self._blocks):
            for m in block.members:
                self._block_of[m] = i
        self._results: dict[int, Future[dict[ZipMember, Any]]] = {}
        self._queue: list[tuple[int, int]] = []  # (priority, block index)
        self._counter = 0
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._cancel = threading.Event()
        self.requests = 0

    @property
    def blocks(self) -> list[Block]:
        return self._blocks

    def _queue_block(self, index: int, priority: int) -> Future[dict[ZipMember, Any]]:
        with self._cond:
            fut = self._results.get(index)
            if fut is None:
                fut = self._results[index] = Future()
            if self._closed:
                if not (fut.running() or fut.done()) and fut.set_running_or_notify_cancel():
                    fut.set_exception(TransferError(f"reading {self.archive.where} was stopped "
                                                    "(its reader was closed)"))
                return fut
            if not fut.running() and not fut.done():
                heapq.heappush(self._queue, (priority, index))
                self._cond.notify()
            if len(self._threads) < self.workers and self._queue:
                t = threading.Thread(target=self._work, daemon=True, name="colabmodels-zip")
                self._threads.append(t)
                t.start()
        return fut

    def want(self, members: Iterable[ZipMember], *, now: bool = False) -> None:
        """Queue the blocks of ``members`` (earlier ones first).

        ``now``: they are needed at once (a batch being made): their blocks go ahead of
        everything queued for later, in the order given; otherwise a block already queued
        keeps its place.
        """
        seen: set[int] = set()
        for m in members:
            index = self._block_of[m]
            if index in seen:
                continue
            seen.add(index)
            with self._cond:
                queued = index in self._results
                self._counter += 1
                order = self._counter
            if now:
                self._queue_block(index, order - _NOW)
            elif not queued:
                self._queue_block(index, order)

    def future(self, member: ZipMember) -> Future[dict[ZipMember, Any]]:
        """The future of ``member``'s block, moved to the front of the queue."""
        with self._cond:
            self._counter += 1
            order = self._counter
        return self._queue_block(self._block_of[member], order - _NOW)

    def path(self, member: ZipMember) -> Path:
        """The member's cache path, read now if needed (its block jumps the queue).

        Raises:
            the member's own error (encrypted, corrupt, CRC...), or the block's read error.
        """
        cached = self.archive.cached_path(member)
        if cached is not None:
            return cached
        return self._wait_for(member)

    def blob(self, member: ZipMember) -> tuple[Path, int]:
        """(``blobs`` mode) the cached block file holding ``member`` and its start, read now
        if needed (its block jumps the queue).

        Raises:
            the member's own error (encrypted, a bomb...), or the block's read error.
        """
        cached = self.archive.blob_of(member)
        if cached is not None:
            return cached
        return self._wait_for(member)

    def _wait_for(self, member: ZipMember) -> Any:
        """What reading ``member``'s block gave for it (its block jumps the queue); its error
        raised."""
        result = self.future(member).result()[member]
        if isinstance(result, BaseException):
            raise result
        return result

    def _work(self) -> None:
        while True:
            if self.blobs and not self._queue:
                self.archive.save_blob_index()  # idle: what arrived is written down
            with self._cond:
                while not self._queue and not self._closed:
                    if not self._cond.wait(timeout=5.0) and not self._queue:
                        self._threads.remove(threading.current_thread())
                        return
                if self._closed:
                    return
                _, index = heapq.heappop(self._queue)
                fut = self._results[index]
                if fut.running() or fut.done() or not fut.set_running_or_notify_cancel():
                    continue  # a block queued twice (moved to the front): already taken
                self.requests += 1
            try:
                read = self.archive.fetch_blob if self.blobs else self.archive.fetch_block
                fut.set_result(read(self._blocks[index], self._cancel))
            except BaseException as e:
                fut.set_exception(e)

    def close(self) -> None:
        """Stop reading: blocks not started are dropped (whoever waits for one gets an error)."""
        if self.blobs:
            self.archive.save_blob_index()
        with self._cond:
            self._closed = True
            self._cancel.set()
            self._queue.clear()
            self._cond.notify_all()
            waiting = [f for f in self._results.values() if not f.running() and not f.done()]
        for fut in waiting:
            if fut.set_running_or_notify_cancel():
                fut.set_exception(TransferError(f"reading {self.archive.where} was stopped "
                                                "(its reader was closed)"))


def read_member_bytes(archive: ZipArchive, member: ZipMember) -> bytes:
    """One member's bytes, read with one ranged request and decoded in memory (no cache).

    For small members read once (the dataset panel's thumbnails)."""
    check_readable(member, where=archive.where)
    limits.check_member(member.name, member.size, member.compressed_size, where=archive.where)
    data = _read_exact(archive.backend, archive.stat, member.header_offset, member.span_end)
    out = io.BytesIO()
    copy_member(io.BytesIO(data), member, out, where=archive.where)
    return out.getvalue()

