"""Whole archives extracted into the cache: ``cm.fetch(ref, extract=True)``.

One cache entry per archive content (key: the archive's identity), of kind ``tree``: the
extraction root is the entry's ``data/<archive name without its extension>`` folder, and the
entry's metadata (``meta.json``) sits beside it, never inside. A second call finds the entry
(one metadata request online, none offline) and sends no media request.

- **zip**: the archive is downloaded by the parallel, resuming transfer engine into the cache's
  ``partial/`` folder, its central directory read, the expansion rule checked
  (``colabmodels.archives.limits``), then every member decoded (stored or deflate, capped at
  its declared size, CRC-32 checked) and the download removed.
- **tar, tar.gz/.tgz** (also ``.tar.bz2``/``.tar.xz``): streamed in one pass from a single
  request (gzip cannot be read by ranges); a dropped connection is resumed with a ranged request
  from the byte where it stopped. Expansion is held to the same numbers as it arrives.

Names follow ``colabmodels.archives.limits``: kept as the archive has them; absolute, drive
letter and ``..`` names, links and devices are left out with a warning that names them (and
listed in the entry's ``extra["left_out"]``); ``__MACOSX/`` is left out quietly. The entry
appears only complete (``Cache.store``): an error half-way leaves nothing that looks extracted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..cachestore import CacheEntry, cache, identity_of, key_for
from ..errors import IntegrityError, RetryableError, UnknownFormatError, UnsafeArchiveError
from ..retry import Retry
from . import limits
from .members import copy_member, display
from .zipdir import read_directory

if TYPE_CHECKING:
    from ..progress import ProgressCallback
    from ..storage.base import RemoteStat, StorageBackend

__all__ = ["archive_kind", "extract_entry", "extracted_name", "sniff_kind"]

logger = logging.getLogger(__name__)

_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")
_BLOCK = 1024 * 1024


def archive_kind(name: str) -> str | None:
    """``"zip"`` or ``"tar"`` from a name's extension (None: not an archive name)."""
    low = name.lower()
    if low.endswith(".zip"):
        return "zip"
    if low.endswith(_SUFFIXES):
        return "tar"
    return None


def sniff_kind(head: bytes) -> str | None:
    """``"zip"`` or ``"tar"`` from an archive's first bytes (512 are enough), or None."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return "tar"  # compressed: a tar inside is what extract handles
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def extracted_name(name: str) -> str:
    """The extraction root's name: the archive's name without its archive extension."""
    low = name.lower()
    for suffix in _SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return name + ".extracted"


def extract_key(stat: RemoteStat) -> str:
    return key_for("extracted:" + identity_of(stat))


def extract_entry(backend: StorageBackend, stat: RemoteStat, *,
                  progress: ProgressCallback | None = None) -> CacheEntry:
    """The cache entry holding ``stat``'s archive extracted, made if missing.

    Raises:
        UnknownFormatError: not a zip or tar archive; an encrypted zip member or an
            unsupported compression method (naming the member).
        UnsafeArchiveError: the expansion rule is broken, or a member expands past its
            declared size.
        IntegrityError: a truncated or corrupt archive, or a CRC mismatch (naming the member).
        and the backend's and transfer engine's errors.
    """
    key = extract_key(stat)
    where = display(stat)
    known: dict[str, str] = {}
    left_out: list[str] = []
    macosx = [0]
    extra: dict[str, Any] = {"left_out": left_out}

    def fill(target: Path) -> None:
        head = backend.read_range(stat.ref, 0, min(512, stat.size or 512)) if stat.size != 0 else b""
        kind = sniff_kind(head) or archive_kind(stat.name)
        if kind is None:
            raise UnknownFormatError(f"{where} is not a zip or tar archive (by its first bytes); "
                                     "extract=True reads .zip, .tar, .tar.gz and .tgz")
        extra["archive"] = kind
        target.mkdir()
        if kind == "zip":
            _extract_zip(backend, stat, key, target, known, left_out, macosx, progress)
        else:
            _extract_tar(backend, stat, target, known, left_out, macosx, progress)
        extra["macosx_left_out"] = macosx[0]

    entry, made = cache.get_or_store(key, identity="extracted:" + identity_of(stat),
                                     source=str(stat.ref), name=extracted_name(stat.name),
                                     kind="tree", fill=fill, known_md5=known, extra=extra)
    if not made:
        return entry
    logger.info("%s: extracted %d files to %s", where, len(entry.files), entry.path)
    return entry


def _target_path(root: Path, rel: str) -> Path:
    dest = root.joinpath(*rel.split("/"))
    if os.path.commonpath([root, dest]) != str(root):  # limits.member_relpath already refuses
        raise UnsafeArchiveError(f"{rel!r} would land outside {root}")
    return dest


def _place(where: str, name: str, rel: str | None, why: str | None, left_out: list[str],
           macosx: list[int]) -> bool:
    """Whether a member with this verdict is written; notes the ones left out."""
    if rel is not None:
        return True
    if why is None:
        if name.replace("\\", "/").lstrip("/").startswith(limits.MACOSX + "/"):
            macosx[0] += 1
        return False
    limits.warn_refused(where, name, why)
    left_out.append(name)
    return False


def _extract_zip(backend: StorageBackend, stat: RemoteStat, key: str, target: Path,
                 known: dict[str, str], left_out: list[str], macosx: list[int],
                 progress: ProgressCallback | None) -> None:
    from ..transfer import download_to
    from .members import check_readable

    where = display(stat)
    partial = cache.partial_path(key_for("archive:" + identity_of(stat)))
    if stat.size is not None:
        cache.ensure_space(stat.size)
    download_to(backend, stat, partial, progress=progress)
    try:
        size = partial.stat().st_size
        with open(partial, "rb") as fh:
            def read(start: int, end: int) -> bytes:
                fh.seek(start)
                return fh.read(end - start)

            directory, _ = read_directory(read, size, where=where)
            plan = []
            for m in directory.members:
                rel, why = limits.member_relpath(m.name)
                if rel is not None and (m.is_symlink or m.is_special):
                    rel, why = None, "a symbolic link" if m.is_symlink else "a device or FIFO entry"
                if not _place(where, m.name, rel, why, left_out, macosx):
                    continue
                assert rel is not None
                if not m.is_dir:
                    check_readable(m, where=where)
                plan.append((m, rel))
            total = limits.check_expansion(((m.name, m.size, m.compressed_size) for m, _ in plan
                                            if not m.is_dir), size, where=where)
            cache.ensure_space(total)
            for m, rel in plan:
                dest = _target_path(target, rel)
                if m.is_dir:
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                try:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                except (FileExistsError, NotADirectoryError) as e:
                    raise IntegrityError(f"{where}: member {m.name!r} sits below a member that "
                                         "is a file; the archive is inconsistent") from e
                fh.seek(m.header_offset)
                with open(dest, "wb") as out:
                    known[rel] = copy_member(fh, m, out, where=where)
    finally:
        partial.unlink(missing_ok=True)


class RangeStream(io.RawIOBase):
    """A remote file as one forward stream; a dropped connection resumes with a ranged request."""

    def __init__(self, backend: StorageBackend, stat: RemoteStat,
                 progress: ProgressCallback | None = None) -> None:
        super().__init__()
        self.backend, self.stat = backend, stat
        self.pos = 0
        self.progress = progress
        self._it: Iterator[bytes] | None = None
        self._buf = b""
        self._retry = Retry(f"reading {display(stat)}",
                            hint="Call again: extraction starts over.")

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes:
        while True:
            try:
                if self._it is None:
                    if self.stat.size is not None and self.pos >= self.stat.size:
                        return b""
                    self._it = iter(self.backend.open_range(self.stat.ref, self.pos, None))
                return next(self._it, b"")
            except Exception as exc:
                self._close_it()
                if not isinstance(exc, (RetryableError, ConnectionError, TimeoutError)) \
                        or not self._retry.again(exc):
                    raise

    def _close_it(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
        self._it = None

    def readinto(self, b: Any) -> int:
        if not self._buf:
            self._buf = self._next()
            if not self._buf:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self.pos += n
        if self.progress is not None:
            self.progress(n)
        return n

    def close(self) -> None:
        self._close_it()
        super().close()


def _extract_tar(backend: StorageBackend, stat: RemoteStat, target: Path, known: dict[str, str],
                 left_out: list[str], macosx: list[int], progress: ProgressCallback | None) -> None:
    where = display(stat)
    budget = limits.expansion_budget(stat.size or 0)
    total = 0
    current = ""
    stream = io.BufferedReader(RangeStream(backend, stat, progress), buffer_size=_BLOCK)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for ti in tar:
                current = ti.name
                rel, why = limits.member_relpath(ti.name)
                if rel is not None and not (ti.isfile() or ti.isdir()):
                    rel, why = None, ("a link" if ti.issym() or ti.islnk()
                                      else "a device or FIFO entry")
                if not _place(where, ti.name, rel, why, left_out, macosx):
                    continue
                assert rel is not None
                dest = _target_path(target, rel)
                if ti.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                total += ti.size
                if total > budget:
                    raise UnsafeArchiveError(
                        f"{where}: member {ti.name!r} takes the extracted size past "
                        f"{budget} bytes (any ratio up to {limits.FREE_EXPANSION} bytes, then at "
                        f"most {limits.MAX_RATIO}:1 of the archive's size); refusing it as a "
                        "likely archive bomb")
                cache.ensure_space(ti.size)
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(ti)
                assert src is not None
                known[rel] = _copy_capped(src, dest, ti.size, where, ti.name)
    except tarfile.TarError as e:
        raise IntegrityError(f"{where}: not a readable tar archive"
                             + (f" (at member {current!r})" if current else "")
                             + f": {e}") from e
    except (EOFError, OSError) as e:
        if isinstance(e, (UnsafeArchiveError, IntegrityError)) or getattr(e, "errno", None):
            raise
        raise IntegrityError(f"{where}: truncated or corrupt archive"
                             + (f" at member {current!r}" if current else "") + f": {e}") from e
    finally:
        stream.close()


def _copy_capped(src: IO[bytes], dest: Path, size: int, where: str, name: str) -> str:
    """Copy exactly ``size`` bytes (the declared size) from ``src``; the md5 of them."""
    digest = hashlib.md5(usedforsecurity=False)
    left = size
    with open(dest, "wb") as out:
        while left:
            block = src.read(min(_BLOCK, left))
            if not block:
                raise IntegrityError(f"{where}: member {name!r} is truncated "
                                     f"({size - left} of {size} bytes)")
            out.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()
