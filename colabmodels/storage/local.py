"""Local disk (and anything mounted there, such as ``/content/drive``) as a storage backend.

``Ref.path`` is an absolute path. Descriptions and properties have nowhere to live in a plain
file system, so they are kept in a hidden sidecar next to the file,
``.<name>.colabmodels-meta.json``; ``list()`` does not show sidecars, and ``upload``/``delete``
replace/remove them with their file (an overwritten file starts with fresh metadata, as an
overwritten S3 or GCS object does).

The content identity is ``local:<path>:<size>:<mtime_ns>``: cheap, and it changes whenever the
file is rewritten (unless a same-size rewrite lands within the file system's timestamp
granularity, a few milliseconds, which only matters for files changed that quickly).
"""

from __future__ import annotations

import contextlib
import errno
import json
import mimetypes
import os
import stat as statmod
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import AuthError, NotFoundError, RefError, TransferError
from ..progress import ProgressCallback
from ..refs import Ref
from .base import RemoteStat, StorageBackend

__all__ = ["CHUNK", "LocalBackend", "iso_utc"]

CHUNK = 1024 * 1024
_META_SUFFIX = ".colabmodels-meta.json"
_TEMP_SUFFIX = ".colabmodels-incomplete"


def iso_utc(timestamp: float | datetime | None) -> str | None:
    """ISO-8601 in UTC (``2024-05-01T12:00:00.123456+00:00``) from seconds or a datetime."""
    if timestamp is None:
        return None
    if isinstance(timestamp, datetime):
        dt = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=timezone.utc)
        return dt.astimezone(timezone.utc).isoformat()
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat()


def _is_hidden_helper(name: str) -> bool:
    return name.startswith(".") and (name.endswith(_META_SUFFIX) or name.endswith(_TEMP_SUFFIX))


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}{_META_SUFFIX}")


def _translate(e: OSError, path: str | os.PathLike[str]) -> Exception:
    if isinstance(e, FileNotFoundError) or e.errno == errno.ENOENT:
        return NotFoundError(f"no such file or folder: {os.fspath(path)}")
    if isinstance(e, PermissionError):
        return AuthError(f"no permission to access {os.fspath(path)}: {e.strerror or e}")
    return TransferError(e.errno or errno.EIO, f"{e.strerror or e}: {os.fspath(path)}")


class LocalBackend(StorageBackend):
    """Files on this machine. ``Ref.path`` is an absolute path (``~`` is expanded)."""

    source = "local"

    def __init__(self, **_options: Any) -> None:
        pass

    # -- paths -------------------------------------------------------------------------------

    @staticmethod
    def _path(ref: Ref) -> Path:
        if ref.path is None:
            raise RefError(f"{ref.raw or ref!s} names no local path")
        return Path(os.path.abspath(os.path.expanduser(ref.path)))

    @staticmethod
    def _ref(path: Path) -> Ref:
        return Ref("local", path=str(path), raw=str(path))

    # -- metadata sidecar --------------------------------------------------------------------

    @staticmethod
    def _read_meta(path: Path) -> dict[str, Any]:
        try:
            with open(_sidecar(path), encoding="utf-8") as f:
                data = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except (OSError, ValueError):  # unreadable or corrupt: behave as if there were none
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _write_meta(path: Path, meta: dict[str, Any]) -> None:
        side = _sidecar(path)
        if not meta.get("description") and not meta.get("properties"):
            with contextlib.suppress(FileNotFoundError):
                side.unlink()
            return
        tmp = side.with_name(f"{side.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(meta, f, ensure_ascii=False, indent=1, sort_keys=True)
            os.replace(tmp, side)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    # -- contract ----------------------------------------------------------------------------

    def _stat_path(self, path: Path, st: os.stat_result | None = None) -> RemoteStat:
        if st is None:
            try:
                st = path.stat()
            except OSError as e:
                raise _translate(e, path) from e
        ref = self._ref(path)
        if statmod.S_ISDIR(st.st_mode):
            return RemoteStat(ref=ref, name=path.name or str(path), size=None, is_dir=True,
                              modified=iso_utc(st.st_mtime_ns / 1e9))
        meta = self._read_meta(path)
        props = meta.get("properties") or {}
        return RemoteStat(
            ref=ref,
            name=path.name,
            size=st.st_size,
            is_dir=False,
            checksum=None,
            identity=f"local:{path}:{st.st_size}:{st.st_mtime_ns}",
            mime=mimetypes.guess_type(path.name)[0],
            modified=iso_utc(st.st_mtime_ns / 1e9),
            description=meta.get("description"),
            properties={str(k): str(v) for k, v in props.items()},
        )

    def stat(self, ref: Ref) -> RemoteStat:
        return self._stat_path(self._path(ref))

    def list(self, ref: Ref, *, page_size: int = 1000) -> Iterator[RemoteStat]:
        """The folder's entries (sidecars hidden), read lazily with ``os.scandir``.

        Raises:
            NotFoundError: the folder does not exist.
            RefError: the path is a file, not a folder.
        """
        path = self._path(ref)
        try:
            it = os.scandir(path)
        except NotADirectoryError:
            raise RefError(f"{path} is a file, not a folder") from None
        except OSError as e:
            raise _translate(e, path) from e
        return self._iter_entries(path, it)

    def _iter_entries(self, path: Path, it: Iterator[os.DirEntry[str]]) -> Iterator[RemoteStat]:
        with it:  # type: ignore[attr-defined]
            for entry in it:
                if _is_hidden_helper(entry.name):
                    continue
                try:
                    st = entry.stat()  # follows symlinks, like stat()
                except FileNotFoundError:  # removed meanwhile, or a dangling symlink
                    continue
                except OSError as e:
                    raise _translate(e, entry.path) from e
                yield self._stat_path(path / entry.name, st)

    def open_range(self, ref: Ref, start: int, end: int | None) -> Iterator[bytes]:
        path = self._path(ref)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range [{start}, {end})")
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except IsADirectoryError:
            raise RefError(f"{path} is a folder, not a file") from None
        except OSError as e:
            raise _translate(e, path) from e
        return self._read_chunks(f, start, end)

    @staticmethod
    def _read_chunks(f: Any, start: int, end: int | None) -> Iterator[bytes]:
        with f:
            f.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                chunk = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def upload(self, src: Path, dest: Ref, *, metadata: dict[str, Any] | None = None,
               progress: ProgressCallback | None = None) -> RemoteStat:
        """Copy ``src`` to ``dest`` atomically (a temporary file, then ``os.replace``)."""
        target = self._path(dest)
        src = Path(src)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _translate(e, target.parent) from e
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                while True:
                    chunk = fin.read(CHUNK)
                    if not chunk:
                        break
                    fout.write(chunk)
                    if progress is not None:
                        progress(len(chunk))
                fout.flush()
                os.fsync(fout.fileno())
            os.replace(tmp, target)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _translate(e, e.filename or target) from e
        meta = metadata or {}
        self._write_meta(target, {
            "description": meta.get("description"),
            "properties": {str(k): str(v) for k, v in (meta.get("properties") or {}).items()},
        })
        return self._stat_path(target)

    def set_metadata(self, ref: Ref, *, description: str | None = None,
                     properties: dict[str, str] | None = None) -> RemoteStat:
        path = self._path(ref)
        current = self._stat_path(path)  # raises NotFoundError
        if current.is_dir:
            raise RefError(f"{path} is a folder; metadata is kept for files only")
        meta = self._read_meta(path)
        if description is not None:
            meta["description"] = description
        props = dict(meta.get("properties") or {})
        props.update({str(k): str(v) for k, v in (properties or {}).items()})
        meta["properties"] = props
        try:
            self._write_meta(path, meta)
        except OSError as e:
            raise _translate(e, path) from e
        return self._stat_path(path)

    def makedirs(self, ref: Ref) -> RemoteStat | None:
        path = self._path(ref)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _translate(e, path) from e
        return self._stat_path(path)

    def delete(self, ref: Ref) -> None:
        """Remove a file (with its sidecar) or an empty folder."""
        path = self._path(ref)
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
        except OSError as e:
            raise _translate(e, path) from e
        with contextlib.suppress(OSError):
            _sidecar(path).unlink()

