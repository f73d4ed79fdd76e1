"""``gdrive://``: Google Drive as an fsspec filesystem, on colabmodels' Drive engine.

Registered through the ``fsspec.specs`` entry point, so any tool that opens paths through fsspec
(pandas, PyTorch Lightning, Ray Data through pyarrow, Dask, webdataset...) reads and writes Drive
without importing colabmodels first::

    import pandas as pd
    df = pd.read_csv("gdrive://MyDrive/data/train.csv")
    df.to_parquet("gdrive://MyDrive/data/train.parquet")

Paths (``gdrive://`` is optional for the filesystem's own methods):

- ``MyDrive/...`` and ``Shareddrives/NAME/...``: the same forms ``cm.fetch`` takes (``My Drive``,
  ``Shared drives`` and a leading ``/content/drive/`` are accepted too);
- ``SharedWithMe/NAME/...``: an item shared with you directly, found by its title;
  ``ls("SharedWithMe")`` lists them (Drive only shows what was shared with *you*, not
  items you reached through a shared folder);
- ``ID`` or ``ID/child/...``: a file or folder by its Drive id (a bare id as the first
  component, e.g. from a share link). Id paths are for reading; write through a ``MyDrive/``,
  ``Shareddrives/`` or ``SharedWithMe/`` path;
- ``""`` (the root) lists ``MyDrive``, ``Shareddrives`` and ``SharedWithMe``.

Signing in follows the chain of ``cm.mount()``: with no options the filesystem uses the
current session (``cm.mount()``, Colab, ``GOOGLE_APPLICATION_CREDENTIALS``, a saved login);
``service_account="key.json"`` and ``endpoint=`` (a Drive-compatible endpoint such as the
emulator) make a session of its own. Credentials only go where they were issued. The
filesystem pickles as its options (a key *file path* and an endpoint), never a token or a key.

Semantics follow fsspec's reference implementations, with these Drive specifics:

- **Two items with one title in one folder** (Drive allows it): ``ls`` shows both (same
  ``name``, different ``id``); ``info``, ``open``, ``cat``, ``rm`` and overwriting that path
  raise ``AmbiguousPathError`` (a ``FileNotFoundError``) naming the
  ids; ``exists`` is True. Reach one of them as ``gdrive://ID``.
- **Writes** (``open("wb")``, ``pipe``, ``put``) spool to a local temporary file and upload it
  (resumable) when the file is closed: nothing is visible on Drive before, and an exception
  inside ``with fs.open(..., "wb")`` uploads nothing. Missing parent folders are created.
  Overwriting a file uploads new content into it (``files.update``): it keeps its id, its
  sharing and its place, and Drive keeps the old bytes as a revision.
  ``"ab"`` downloads the current bytes first (Drive cannot append).
- **rm** moves to the Drive trash (restorable for 30 days); ``trash=False`` deletes for good.
  A folder goes in one request, with everything inside it. ``MyDrive`` and shared drives
  themselves are never removed.
- **cp** is a Drive-side copy (``files.copy``: no bytes pass through this machine); **mv** is a
  rename/move in one request, for files and whole folders.
- **Reads** are ranged: ``open("rb")`` is seekable; a bounded read-ahead grows while you read
  sequentially (up to ``max_read_ahead``, the next window fetched in the background) and drops
  to nothing on random access, so random reads fetch about what they ask for. Reads of
  ``parallel_min_bytes`` or more (``read()`` of a big file, a long sequential scan) are split
  over several connections. ``get`` uses the transfer engine (parallel ranged download, resume
  on transient errors, md5 verified).
- **Listings** are cached in ``dircache`` (fsspec's way) and dropped by this filesystem's own
  writes; ``refresh=True`` asks Drive again. Listing a folder reads it one page (1,000 items)
  at a time (``GDriveFileSystem.ls_iter`` yields them as they come); ``info`` and ``open``
  of one file never list its folder (except below an id, where titles are found by listing). ``find``/``du``/``glob`` list folders several at a time.
- Google Docs, Sheets and Slides are listed, but reading one raises
  ``NotDownloadableError``. Shortcuts are listed with type ``other``;
  opening one opens its target.
- ``checksum``/``ukey`` are Drive's md5; ``modified``/``created`` are Drive's dates (UTC).

Errors are fsspec's expected builtins and colabmodels errors at once: ``NotFoundError``
(``FileNotFoundError``), ``AuthError`` (``PermissionError``), ``AlreadyExistsError``
(``FileExistsError``), ``IsAFolderError`` (``IsADirectoryError``), ``NotAFolderError``
(``NotADirectoryError``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fsspec.caching import BaseCache, register_cache
from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem
from fsspec.utils import stringify_path

from . import config
from .auth import sign_in
from .drive import copies
from .drive.session import DriveSession, implicit_session
from .drive.wire import FOLDER_MIME, SHORTCUT_MIME, check_downloadable
from .errors import (
    AlreadyExistsError,
    AmbiguousPathError,
    IsAFolderError,
    NotAFolderError,
    NotFoundError,
    OptionError,
    RefError,
    RetryableError,
)
from .refs import Ref, is_drive_id
from .retry import Retry
from .storage import drive_backend
from .storage.base import RemoteStat
from .storage.drive import DriveBackend
from .transfer import download_to, state_path

__all__ = ["GDriveFile", "GDriveFileSystem"]

logger = logging.getLogger(__name__)

_ROOT_NAMES = {"MyDrive": "MyDrive", "My Drive": "MyDrive",
               "Shareddrives": "Shareddrives", "Shared drives": "Shareddrives",
               "SharedWithMe": "SharedWithMe", "Shared with me": "SharedWithMe"}
_VIRTUAL = ("", "Shareddrives", "SharedWithMe")
"""Paths that are no Drive folder: the root and the two lists of roots."""
_SECRET_OPTIONS = ("token", "access_token", "refresh_token", "credentials", "private_key",
                   "client_secret", "key", "secret")
_PATHS_MESSAGE = ("gdrive:// paths start with MyDrive/, Shareddrives/NAME/, SharedWithMe/NAME/ "
                  "or a Drive file id")


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


class GDriveFileSystem(AbstractFileSystem):
    """Google Drive as an fsspec filesystem (protocol ``gdrive``).

    Args:
        service_account: path of a service-account key file to sign in with (else the
            session chain of ``cm.mount()``).
        endpoint: a Drive-compatible endpoint (the emulator's ``fd.url``); default
            ``COLABMODELS_DRIVE_ENDPOINT`` or Google's.
        trash: ``rm`` (and overwrites) move to the Drive trash (default) or delete for good.
        connections: parallel connections for large reads and ``get`` (default
            ``COLABMODELS_CONNECTIONS``).
        read_ahead: the first read-ahead of a sequential reader, in bytes (it doubles while
            reads stay sequential, up to ``max_read_ahead``).
        max_read_ahead: the most a reader fetches beyond what was asked.
        parallel_min_bytes: reads at least this large are split over ``connections``.
        **kwargs: fsspec's own options (``use_listings_cache``, ``listings_expiry_time``,
            ``skip_instance_cache``...).

    Raises:
        OptionError: an option that would carry a secret (pass a key file path instead).
    """

    protocol = "gdrive"
    root_marker = ""
    blocksize = 1024 * 1024

    def __init__(self, service_account: str | os.PathLike[str] | None = None,
                 endpoint: str | None = None, *, trash: bool = True, connections: int | None = None,
                 read_ahead: int = 1024 * 1024, max_read_ahead: int = 32 * 1024 * 1024,
                 parallel_min_bytes: int = 2 * 1024 * 1024, **kwargs: Any) -> None:
        secrets = sorted(k for k in kwargs if k in _SECRET_OPTIONS)
        if secrets or (service_account is not None and not isinstance(service_account, (str, os.PathLike))):
            raise OptionError(
                f"GDriveFileSystem does not take {', '.join(secrets) or 'a key as a dict'}: the "
                "filesystem is pickled to workers and never carries a token or a private key. "
                "Pass service_account='path/to/key.json' (a file the workers can read), or sign "
                "in with cm.mount() first.")
        super().__init__(**kwargs)
        self.service_account = os.fspath(service_account) if service_account is not None else None
        self.endpoint = (endpoint.rstrip("/") + "/") if endpoint else None
        self.trash = trash
        self.connections = connections
        self.read_ahead = read_ahead
        self.max_read_ahead = max_read_ahead
        self.parallel_min_bytes = parallel_min_bytes
        self._own_session: DriveSession | None = None
        self._own_pid = os.getpid()
        self._session_lock = threading.Lock()

    # -- signing in ------------------------------------------------------------------------
    def session(self) -> DriveSession:
        """The Drive session: this filesystem's own (``service_account=``/``endpoint=``), else
        the runtime's current one (as ``cm.mount()`` or the first Drive call made it)."""
        if self.service_account is None and self.endpoint is None:
            return implicit_session()
        with self._session_lock:
            if self._own_session is None or self._own_pid != os.getpid():
                # (a forked worker, e.g. a DataLoader's, signs in afresh: connections and
                # per-thread http objects must not be shared with the parent process)
                self._own_pid = os.getpid()
                endpoint = self.endpoint or config.drive_endpoint()
                signin = sign_in(service_account=self.service_account, endpoint=endpoint,
                                 interactive=False)
                self._own_session = DriveSession(signin, endpoint=endpoint)
            return self._own_session

    def _backend(self) -> DriveBackend:
        return drive_backend(self.session())

    def _connections(self) -> int:
        return max(1, self.connections or config.connections())

    # -- paths -----------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = stringify_path(path)
        for prefix in ("gdrive://", "gdrive::"):
            if text.startswith(prefix):
                text = text[len(prefix):]
        text = "/".join(part for part in text.split("/") if part)
        if text.startswith("content/drive/"):
            text = text[len("content/drive/"):]
        head, sep, rest = text.partition("/")
        return _ROOT_NAMES.get(head, head) + sep + rest

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {}

    def _name(self, path: str) -> str:
        return path.rsplit("/", 1)[-1]

    def _by_id(self, path: str) -> bool:
        head = path.split("/", 1)[0]
        return head not in _ROOT_NAMES.values() and is_drive_id(head)

    def _check_path(self, path: str) -> None:
        head = path.split("/", 1)[0]
        if path in _VIRTUAL or head in ("MyDrive", "Shareddrives", "SharedWithMe") or self._by_id(path):
            return
        raise NotFoundError(f"{path!r}: {_PATHS_MESSAGE}")

    def _is_top(self, path: str) -> bool:
        """Folders that are roots of their own: MyDrive, a shared drive, a folder by id."""
        parts = path.split("/")
        return (path == "MyDrive" or (parts[0] == "Shareddrives" and len(parts) == 2)
                or (self._by_id(path) and len(parts) == 1))

    def _writable(self, path: str) -> None:
        self._check_path(path)
        if self._by_id(path):
            raise RefError(f"{path}: paths that start with a Drive id are for reading; write "
                           "through a MyDrive/, Shareddrives/NAME/ or SharedWithMe/NAME/ path")
        if path in _VIRTUAL or self._is_top(path) or path.count("/") < 1 or (
                path.startswith(("Shareddrives/", "SharedWithMe/")) and path.count("/") < 2):
            raise RefError(f"{path or 'the root'} cannot be written or removed: write inside "
                           "MyDrive/ or a shared drive")

    # -- entries ---------------------------------------------------------------------------
    def _entry(self, path: str, st: RemoteStat) -> dict[str, Any]:
        md5 = st.checksum[4:] if st.checksum and st.checksum.startswith("md5:") else None
        kind = "directory" if st.is_dir else ("other" if st.mime == SHORTCUT_MIME else "file")
        return {"name": path, "size": 0 if st.is_dir else st.size, "type": kind,
                "id": st.ref.id, "mimeType": st.mime, "md5Checksum": md5,
                "modifiedDate": st.modified, "createdDate": st.created, "version": st.version}

    def _meta_entry(self, path: str, meta: dict[str, Any]) -> dict[str, Any]:
        is_dir = meta.get("mimeType") == FOLDER_MIME
        size = meta.get("fileSize")
        kind = ("directory" if is_dir else
                "other" if meta.get("mimeType") == SHORTCUT_MIME else "file")
        return {"name": path, "size": 0 if is_dir else (int(size) if size is not None else None),
                "type": kind, "id": meta["id"], "mimeType": meta.get("mimeType"),
                "md5Checksum": meta.get("md5Checksum"), "modifiedDate": meta.get("modifiedDate"),
                "createdDate": meta.get("createdDate"),
                "version": str(meta["version"]) if meta.get("version") is not None else None}

    def _ref(self, path: str, entry: dict[str, Any] | None = None) -> Ref:
        fid = entry.get("id") if entry else None
        if self._by_id(path):
            return Ref("drive", id=fid or path, raw=path)
        return Ref("drive", path=path, id=fid, raw=path)

    def _ambiguous(self, path: str, ids: list[str]) -> AmbiguousPathError:
        return AmbiguousPathError(
            f"{path} names {len(ids)} Drive items with the same title: {', '.join(ids)}. Open "
            "one as gdrive://ID, or rename or remove the others.", ids)

    # -- info and listings -----------------------------------------------------------------
    def info(self, path: Any, refresh: bool = False, **kwargs: Any) -> dict[str, Any]:
        """One entry, as ``ls(detail=True)`` shows it (from a cached listing when there is one).

        Raises:
            NotFoundError: nothing at ``path``.
            AmbiguousPathError: several items have that title in one folder.
        """
        path = self._strip_protocol(path)
        self._check_path(path)
        if path in _VIRTUAL:
            return {"name": path, "size": 0, "type": "directory", "id": None}
        parent = self._parent(path)
        if not refresh and parent != "":  # (the root's listing names MyDrive without its id)
            with contextlib.suppress(KeyError):
                listing = self.dircache[parent]
                found = [e for e in listing if e["name"] == path]
                if len(found) > 1:
                    raise self._ambiguous(path, [e["id"] for e in found])
                if found:
                    return dict(found[0])
                # Not in the cached listing: ask Drive (another client may have written it).
                entry = self._info_from_drive(path)
                self.dircache.pop(parent, None)  # that listing is stale
                return entry
        return self._info_from_drive(path)

    def _info_from_drive(self, path: str) -> dict[str, Any]:
        if self._by_id(path):
            if "/" not in path:
                return self._entry(path, self._backend().stat(Ref("drive", id=path, raw=path)))
            found = [e for e in self.ls(self._parent(path), detail=True, refresh=True)
                     if e["name"] == path]
            if len(found) > 1:
                raise self._ambiguous(path, [e["id"] for e in found])
            if not found:
                raise NotFoundError(f"{path} does not exist in Drive (or you cannot see it)")
            return dict(found[0])
        backend = self._backend()
        ref = Ref("drive", path=path, raw=path)
        try:
            try:
                st = backend.stat(ref)
            except AmbiguousPathError:
                raise
            except NotFoundError:
                # The session remembers path -> id; another client may have replaced the file.
                self.session().forget_paths(path)
                st = backend.stat(ref)
        except AmbiguousPathError as e:
            raise self._ambiguous(path, e.ids) from None
        return self._entry(path, st)

    def exists(self, path: Any, **kwargs: Any) -> bool:
        """Whether something is at ``path`` (True also when several items share its title)."""
        try:
            self.info(path, **kwargs)
        except AmbiguousPathError:
            return True
        except FileNotFoundError:
            return False
        return True

    def ls(self, path: Any, detail: bool = True, refresh: bool = False,
           **kwargs: Any) -> list[Any]:
        """The entries of a folder (of a file: the file's own entry).

        Raises:
            NotFoundError: nothing at ``path``.
        """
        path = self._strip_protocol(path)
        entries: list[dict[str, Any]] | None = None
        if not refresh:
            with contextlib.suppress(KeyError):
                entries = self.dircache[path]
        if entries is None:
            entries = list(self.ls_iter(path, refresh=refresh))
        if detail:
            return [dict(e) for e in entries]
        return sorted(e["name"] for e in entries)

    def ls_iter(self, path: Any, refresh: bool = False) -> Iterator[dict[str, Any]]:
        """A folder's entries as Drive sends them, one page at a time (no sorting, no cache
        read); once the whole folder was read, the listing is cached for ``ls``.
        """
        path = self._strip_protocol(path)
        self._check_path(path)
        if path == "":
            found = [{"name": root, "size": 0, "type": "directory", "id": None}
                     for root in ("MyDrive", "Shareddrives", "SharedWithMe")]
            self.dircache[path] = found
            yield from found
            return
        session = self.session()
        if path == "Shareddrives":
            meta_pages: Iterator[dict[str, Any]] = (
                {"id": d["id"], "title": d.get("name", d["id"]), "mimeType": FOLDER_MIME}
                for d in copies.shared_drives(session))
        elif path == "SharedWithMe":
            meta_pages = copies.shared_with_me(session)
        else:
            meta_pages = iter(())
        if path in _VIRTUAL:
            entries = []
            for meta in meta_pages:
                entry = self._meta_entry(f"{path}/{meta.get('title') or meta['id']}", meta)
                entries.append(entry)
                yield entry
            self.dircache[path] = entries
            return
        here = self.info(path, refresh=refresh)
        if here["type"] != "directory":
            yield here
            return
        entries = []
        for st in self._backend().list(self._ref(path, here)):
            entry = self._entry(f"{path}/{st.name}", st)
            entries.append(entry)
            yield entry
        self.dircache[path] = entries

    def find(self, path: Any, maxdepth: int | None = None, withdirs: bool = False,
             detail: bool = False, **kwargs: Any) -> Any:
        """Everything below ``path`` (as fsspec's ``find``), listing several folders at once."""
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        path = self._strip_protocol(path)
        refresh = bool(kwargs.get("refresh", False))
        out: dict[str, dict[str, Any]] = {}
        try:
            here = self.info(path, refresh=refresh)
        except FileNotFoundError:
            here = None
        if here is not None and here["type"] != "directory":
            out[path] = here
        elif here is not None:
            if withdirs and path != "":
                out[path] = here
            for entry in self._walk_parallel(path, maxdepth, refresh):
                if entry["type"] != "directory" or withdirs:
                    out[entry["name"]] = entry
        names = sorted(out)
        return {n: out[n] for n in names} if detail else names

    def _walk_parallel(self, top: str, maxdepth: int | None,
                       refresh: bool = False) -> Iterator[dict[str, Any]]:
        """Every entry below ``top``; a folder is listed as soon as its parent's listing names
        it, ``connections`` folders at a time."""
        with ThreadPoolExecutor(max_workers=self._connections(),
                                thread_name_prefix="colabmodels-gdrive-find") as pool:
            pending: dict[Future[list[dict[str, Any]]], int] = {
                pool.submit(self.ls, top, True, refresh): 1}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    depth = pending.pop(future)
                    for entry in future.result():
                        yield entry
                        if entry["type"] == "directory" and (maxdepth is None or depth < maxdepth):
                            pending[pool.submit(self.ls, entry["name"], True, refresh)] = depth + 1

    def invalidate_cache(self, path: Any = None) -> None:
        if path is None:
            self.dircache.clear()
        else:
            path = self._strip_protocol(path)
            for key in list(self.dircache):
                if key == path or key.startswith(path + "/") or path == "":
                    self.dircache.pop(key, None)
        super().invalidate_cache(path)

    def _changed(self, *paths: str) -> None:
        """Drop what this filesystem and its session remember about ``paths`` (after a write)."""
        session = self.session()
        for path in paths:
            self.invalidate_cache(path)
            self.invalidate_cache(self._parent(path))
            if not self._by_id(path):
                session.forget_paths(path)

    # -- metadata --------------------------------------------------------------------------
    def checksum(self, path: Any) -> int:
        """Drive's md5 of the file as an integer (fsspec's checksum is an int)."""
        info = self.info(path)
        if info.get("md5Checksum"):
            return int(info["md5Checksum"], 16)
        return super().checksum(path)

    def ukey(self, path: Any) -> str:
        """Drive's md5 (hex); for folders and Google Docs, id + version + modified date."""
        info = self.info(path)
        return info.get("md5Checksum") or f"{info['id']}:{info.get('version')}:{info.get('modifiedDate')}"

    def modified(self, path: Any) -> datetime:
        found = _utc(self.info(path).get("modifiedDate"))
        if found is None:
            raise NotFoundError(f"{path} has no modification date in Drive")
        return found

    def created(self, path: Any) -> datetime:
        found = _utc(self.info(path).get("createdDate"))
        if found is None:
            raise NotFoundError(f"{path} has no creation date in Drive")
        return found

    # -- folders ---------------------------------------------------------------------------
    def mkdir(self, path: Any, create_parents: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        self._writable(path)
        if self.exists(path):
            raise AlreadyExistsError(f"{path} already exists in Drive")
        parent = self._parent(path)
        if (not create_parents and parent not in _VIRTUAL
                and self.info(parent)["type"] != "directory"):
            raise NotAFolderError(f"{parent} is a file, not a folder")
        self._make_folder(path)

    def makedirs(self, path: Any, exist_ok: bool = False) -> None:
        path = self._strip_protocol(path)
        try:
            found = self.info(path)
        except FileNotFoundError:
            self._writable(path)
            self._make_folder(path)
            return
        if found["type"] != "directory":
            raise AlreadyExistsError(f"{path} is a file in Drive, not a folder")
        if not exist_ok:
            raise AlreadyExistsError(f"{path} already exists in Drive")

    def _make_folder(self, path: str) -> dict[str, Any]:
        """Make ``path`` and its missing parents; the folder's entry."""
        for parent in self._ancestors(path):
            with contextlib.suppress(FileNotFoundError):
                if self.info(parent)["type"] != "directory":
                    raise NotAFolderError(f"{parent} is a file, not a folder")
        st = self._backend().makedirs(Ref("drive", path=path, raw=path))
        assert st is not None
        self._changed(path)
        return self._entry(path, st)

    def _ancestors(self, path: str) -> list[str]:
        parts = path.split("/")
        return ["/".join(parts[:i]) for i in range(2, len(parts))]

    def _folder_id(self, path: str) -> str:
        """The id of folder ``path``, creating it (and its parents) when missing."""
        try:
            found = self.info(path)
        except FileNotFoundError:
            found = self._make_folder(path)
        if found["type"] != "directory":
            raise NotAFolderError(f"{path} is a file, not a folder")
        return found["id"]

    def rmdir(self, path: Any) -> None:
        path = self._strip_protocol(path)
        found = self.info(path)
        if found["type"] != "directory":
            raise NotAFolderError(f"{path} is a file, not a folder")
        if self.ls(path, detail=False, refresh=True):
            raise OSError(39, f"{path} is not empty", path)
        self._remove(path, found)

    # -- removing --------------------------------------------------------------------------
    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Remove files (and, with ``recursive``, folders with all they hold): to the Drive
        trash unless the filesystem was made with ``trash=False``. A folder is one request."""
        if maxdepth is not None:
            super().rm(path, recursive=recursive, maxdepth=maxdepth)
            return
        paths = self.expand_path(path, recursive=False)
        done: list[str] = []
        for p in sorted(paths):
            if any(p.startswith(d + "/") for d in done):
                continue  # went with its folder
            found = self.info(p)
            if found["type"] == "directory" and not recursive and self.ls(p, detail=False, refresh=True):
                raise IsAFolderError(f"{p} is a folder with files in it: pass recursive=True to "
                                     "remove it with everything inside")
            self._remove(p, found)
            done.append(p)

    def rm_file(self, path: Any) -> None:
        path = self._strip_protocol(path)
        found = self.info(path)
        if found["type"] == "directory":
            raise IsAFolderError(f"{path} is a folder: use rm(path, recursive=True)")
        self._remove(path, found)

    def _rm(self, path: Any) -> None:
        path = self._strip_protocol(path)
        self._remove(path, self.info(path))

    def _remove(self, path: str, found: dict[str, Any]) -> None:
        self._writable(path)
        self._drop_id(found["id"], path)
        self._changed(path)

    def _drop_id(self, file_id: str, path: str) -> None:
        if self.trash:
            self._backend().delete(Ref("drive", id=file_id, raw=path))
        else:
            copies.delete_forever(self.session(), file_id)

    # -- writing ---------------------------------------------------------------------------
    def _existing_file(self, path: str) -> dict[str, Any] | None:
        """The file a write to ``path`` replaces, or None.

        Raises:
            IsAFolderError: ``path`` is a folder.
            AmbiguousPathError: several items have that title.
        """
        try:
            found = self.info(path)
        except AmbiguousPathError:
            raise
        except FileNotFoundError:
            return None
        if found["type"] == "directory":
            raise IsAFolderError(f"{path} is a folder in Drive; cannot write a file over it")
        return found

    def _store(self, local: Path, path: str, *,
               progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Upload ``local`` to ``path`` (resumable): a new file, or new content for the file
        already there (it keeps its id; readers see the old bytes until the upload is done)."""
        self._writable(path)
        old = self._existing_file(path)
        if old is not None:
            meta = copies.replace_content(self.session(), old["id"], local, progress=progress,
                                          what=f"uploading {path}")
            self.invalidate_cache(self._parent(path))
            return self._meta_entry(path, meta)
        for parent in self._ancestors(path):
            with contextlib.suppress(FileNotFoundError):
                if self.info(parent)["type"] != "directory":
                    raise NotAFolderError(f"{parent} is a file, not a folder")
        st = self._backend().upload(local, Ref("drive", path=path, raw=path), progress=progress)
        self.invalidate_cache(self._parent(path))
        return self._entry(path, st)

    def pipe_file(self, path: Any, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if mode == "create" and self.exists(path):
            raise AlreadyExistsError(f"{path} already exists in Drive")
        with _spooled() as spool:
            spool.write_bytes(bytes(value))
            self._store(spool, path)

    def put_file(self, lpath: Any, rpath: Any, callback: Any = DEFAULT_CALLBACK,
                 mode: str = "overwrite", **kwargs: Any) -> None:
        rpath = self._strip_protocol(rpath)
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        if mode == "create" and self.exists(rpath):
            raise AlreadyExistsError(f"{rpath} already exists in Drive")
        callback.set_size(os.path.getsize(lpath))
        self._store(Path(lpath), rpath, progress=callback.relative_update)

    def cp_file(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        """A Drive-side copy (``files.copy``): no bytes pass through this machine."""
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        src = self.info(path1)
        if src["type"] == "directory":
            self.makedirs(path2, exist_ok=True)
            return
        self._writable(path2)
        old = self._existing_file(path2)
        parent_id = self._folder_id(self._parent(path2))
        meta = copies.copy_file(self.session(), src["id"], parent_id=parent_id,
                                title=self._name(path2))
        if old is not None:
            self._drop_id(old["id"], path2)
        self._changed(path2)
        self.session().remember_path(path2, meta["id"])

    def mv(self, path1: Any, path2: Any, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:
        """Rename or move in one Drive request (a folder moves with everything in it).

        Lists of paths and globs go through fsspec's copy-then-remove.
        """
        simple = (isinstance(path1, str) and isinstance(path2, str) and maxdepth is None
                  and not any(c in path1 for c in "*?["))
        if not simple:
            super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)
            return
        p1, p2 = self._strip_protocol(path1), self._strip_protocol(path2)
        src = self.info(p1)
        self._writable(p1)
        if path2.endswith("/") or (self.exists(p2) and self.isdir(p2)):
            p2 = f"{p2}/{self._name(p1)}"
        self._writable(p2)
        if p2 == p1:
            return
        old = self._existing_file(p2) if src["type"] != "directory" else None
        if src["type"] == "directory" and self.exists(p2):
            raise AlreadyExistsError(f"{p2} already exists in Drive")
        new_parent = self._folder_id(self._parent(p2))
        old_parent = self.info(self._parent(p1))["id"]
        copies.move(self.session(), src["id"], title=self._name(p2), add_parent=new_parent,
                    remove_parent=old_parent)
        if old is not None:
            self._drop_id(old["id"], p2)
        self._changed(p1, p2)

    # -- reading ---------------------------------------------------------------------------
    def cat_file(self, path: Any, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        found = self._readable(path)
        size = found["size"] or 0
        start = 0 if start is None else (max(0, size + start) if start < 0 else start)
        end = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
        if start >= end:
            return b""
        return self._read_range(found, start, end)

    def get_file(self, rpath: Any, lpath: Any, callback: Any = DEFAULT_CALLBACK,
                 outfile: Any = None, **kwargs: Any) -> None:
        """Download with the transfer engine (parallel ranges, retries, md5 checked) into a
        temporary name beside ``lpath``, then move it into place."""
        rpath = self._strip_protocol(rpath)
        found = self.info(rpath)
        if found["type"] == "directory":
            os.makedirs(lpath, exist_ok=True)
            return
        found = self._readable(rpath, found)
        callback.set_size(found["size"])
        if outfile is not None:
            with self.open(rpath, "rb") as src:
                while block := src.read(self.max_read_ahead):
                    outfile.write(block)
                    callback.relative_update(len(block))
            return
        lpath = os.fspath(lpath)
        partial = Path(f"{lpath}.{uuid.uuid4().hex[:8]}.incomplete")
        md5 = found.get("md5Checksum")
        st = RemoteStat(ref=self._ref(rpath, found), name=self._name(rpath), size=found["size"],
                        checksum=f"md5:{md5}" if md5 else None,
                        identity=f"drive:{found['id']}:{md5 or found.get('version')}",
                        mime=found.get("mimeType"))
        try:
            download_to(self._backend(), st, partial, progress=callback.relative_update,
                        connections=self._connections())
            os.replace(partial, lpath)
        finally:
            partial.unlink(missing_ok=True)
            state_path(partial).unlink(missing_ok=True)

    def _readable(self, path: str, found: dict[str, Any] | None = None) -> dict[str, Any]:
        found = found or self.info(path)
        if found["type"] == "directory":
            raise IsAFolderError(f"{path} is a folder in Drive, not a file")
        if found["type"] == "other" or found["size"] is None:
            check_downloadable(path, found.get("mimeType"))
            # a shortcut: read its target
            st = self._backend().stat(self._ref(path, found))
            found = {**found, **self._entry(path, st), "type": "file"}
        return found

    def _read_range(self, found: dict[str, Any], start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the file ``found`` describes; big ranges in parallel."""
        ref = self._ref(found["name"], found)
        if end - start >= self.parallel_min_bytes and self._connections() > 1:
            return self._read_parallel(ref, start, end)
        with _Filled(end - start) as (view, result):
            self._read_into(ref, start, end, view)
        return result()

    def _read_into(self, ref: Ref, start: int, end: int, into: memoryview) -> None:
        """Stream ``[start, end)`` into ``into``, resuming where a transient failure cut it."""
        backend = self._backend()
        retry = Retry(f"reading {ref.raw}")
        pos = start
        while pos < end:
            stream = backend.open_range(ref, pos, end)
            try:
                for block in stream:
                    n = min(len(block), end - pos)
                    into[pos - start:pos - start + n] = block[:n]
                    pos += n
                if pos < end:
                    raise RetryableError(f"connection closed at byte {pos} of {ref.raw}")
                retry.reset()
            except Exception as exc:
                if not retry.again(exc):
                    raise
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()

    def _read_parallel(self, ref: Ref, start: int, end: int) -> bytes:
        size = end - start
        connections = self._connections()
        part = max(1024 * 1024, min(config.chunk_bytes(), -(-size // connections)))
        spans = [(s, min(s + part, end)) for s in range(start, end, part)]
        with _Filled(size) as (view, result), ThreadPoolExecutor(
                max_workers=min(connections, len(spans)),
                thread_name_prefix="colabmodels-gdrive-read") as pool:
            futures = [pool.submit(self._read_into, ref, s, e, view[s - start:e - start])
                       for s, e in spans]
            for future in futures:
                future.result()
            del futures
        return result()

    # -- files -----------------------------------------------------------------------------
    def _open(self, path: Any, mode: str = "rb", block_size: int | None = None,
              autocommit: bool = True, cache_options: dict[str, Any] | None = None,
              **kwargs: Any) -> GDriveFile:
        path = self._strip_protocol(path)
        if mode == "rb":
            found = self._readable(path)
            return GDriveFile(self, path, mode, block_size=block_size, autocommit=autocommit,
                              cache_options=cache_options, details=found, **kwargs)
        if mode not in ("wb", "xb", "ab"):
            raise ValueError(f"gdrive:// opens files as rb, wb, xb or ab, not {mode!r}")
        self._writable(path)
        old = self._existing_file(path)
        if mode == "xb" and old is not None:
            raise AlreadyExistsError(f"{path} already exists in Drive")
        return GDriveFile(self, path, mode, block_size=block_size, autocommit=autocommit,
                          existing=old, **kwargs)


class _ReadAhead(BaseCache):
    """One buffer of bytes around the reader: the read-ahead doubles (from ``blocksize``, or
    the size of the read, up to ``max_ahead``) while reads continue where the last fetch
    ended, and is nothing after a jump, so random reads fetch what they ask for and sequential
    ones few, large ranges (which the filesystem splits over several connections).

    While reads stay sequential, the next window is fetched in the background as soon as the
    current one arrives, so the connections keep working while the reader consumes; a jump
    drops it (at most ``max_ahead`` bytes fetched for nothing).
    """

    name = "gdrive-readahead"

    def __init__(self, blocksize: int, fetcher: Callable[[int, int], bytes], size: int,
                 max_ahead: int | None = None, prefetch: bool = True) -> None:
        super().__init__(blocksize, fetcher, size)
        self.max_ahead = max(blocksize, max_ahead or 32 * blocksize)
        self.prefetch = prefetch
        self.cache = b""
        self.start = self.end = 0
        self.ahead = 0
        self._next: tuple[int, Future[bytes]] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _fetch(self, start: int | None, end: int | None) -> bytes:
        start = 0 if start is None else start
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            return b""
        if self.start <= start and end <= self.end:
            self.hit_count += 1
            return self.cache[start - self.start:end - self.start]
        self.miss_count += 1
        if self.start <= start < self.end:  # the front is buffered: continue after it
            part, begin, sequential = self.cache[start - self.start:], self.end, True
        else:
            part, begin = b"", start
            sequential = start == self.end  # (also the first read at byte 0)
        # A sequential reader gets at least as much again as it asks for, doubling each time.
        self.ahead = (min(self.max_ahead, max(self.blocksize, self.ahead * 2, end - start))
                      if sequential else 0)
        self.cache = self._take(begin, end, min(self.size, end + self.ahead))
        self.start, self.end = begin, begin + len(self.cache)
        if sequential and self.prefetch and self.end < self.size:
            stop = min(self.size, self.end + min(self.max_ahead, 2 * self.ahead))
            self.total_requested_bytes += stop - self.end
            self._next = (self.end, self._executor().submit(self.fetcher, self.end, stop))
        return part + self.cache[:end - begin]

    def _take(self, begin: int, need: int, stop: int) -> bytes:
        """Bytes from ``begin`` to at least ``need`` (``stop`` when fetched now): the window
        fetched in the background if it starts at ``begin``, topped up when it is short."""
        pending, self._next = self._next, None
        if pending is not None and pending[0] == begin:
            data = pending[1].result()
            if begin + len(data) >= need:
                return data
            begin, head = begin + len(data), data
        else:
            if pending is not None:
                pending[1].cancel()
            head = b""
        self.total_requested_bytes += stop - begin
        return head + self.fetcher(begin, stop)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix="colabmodels-gdrive-prefetch")
        return self._pool

    def close(self) -> None:
        """Stop the background fetch (called when the file closes)."""
        self._next = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


register_cache(_ReadAhead, clobber=True)


class GDriveFile(AbstractBufferedFile):
    """A file of ``GDriveFileSystem``.

    Read (``rb``): seekable, ranged reads through the filesystem's read-ahead. Write (``wb``,
    ``xb``, ``ab``): bytes go to a local temporary file and are uploaded (resumable) on
    ``close()``; an exception inside ``with`` discards them, so nothing reaches Drive.
    """

    def __init__(self, fs: GDriveFileSystem, path: str, mode: str = "rb", *,
                 block_size: int | None = None, autocommit: bool = True,
                 cache_type: str = _ReadAhead.name, cache_options: dict[str, Any] | None = None,
                 details: dict[str, Any] | None = None, existing: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        if mode == "rb" and cache_type == _ReadAhead.name:
            cache_options = {"max_ahead": fs.max_read_ahead, **(cache_options or {})}
        if mode == "rb" and block_size is None:
            block_size = fs.read_ahead
        super().__init__(fs, path, mode, block_size=block_size, autocommit=autocommit,
                         cache_type=cache_type, cache_options=cache_options,
                         size=details["size"] if details else None, **kwargs)
        self.gdrive = fs
        self._spool: io.BufferedWriter | None = None
        self._spool_path: Path | None = None
        if details is not None:
            self.details = details
        if mode != "rb":
            fd, name = tempfile.mkstemp(prefix="colabmodels-gdrive-", suffix=".upload")
            self._spool = os.fdopen(fd, "wb")
            self._spool_path = Path(name)
            if mode == "ab" and existing is not None:
                with fs.open(path, "rb") as old:
                    while block := old.read(fs.max_read_ahead):
                        self._spool.write(block)
                self.loc = self._spool.tell()

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.gdrive._read_range(self.details, start, end)

    def _initiate_upload(self) -> None:
        return None

    def _upload_chunk(self, final: bool = False) -> bool:
        assert self._spool is not None
        self._spool.write(self.buffer.getbuffer())
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        """Upload the spooled bytes to Drive (on close, or at the end of a transaction)."""
        if self._spool is None or self._spool_path is None:
            return
        self._spool.close()
        try:
            self.gdrive._store(self._spool_path, self.path)
        finally:
            self._drop_spool()

    def discard(self) -> None:
        """Throw the written bytes away; nothing reaches Drive."""
        if self._spool is not None:
            self._spool.close()
        self._drop_spool()

    def _drop_spool(self) -> None:
        if self._spool_path is not None:
            self._spool_path.unlink(missing_ok=True)
        self._spool = None
        self._spool_path = None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self.writable():
            self.discard()
            self.closed = True
            return
        self.close()


class _Filled:
    """``size`` bytes to fill in place (from several threads), then had as ``bytes`` without a
    copy: ``with _Filled(n) as (view, result): ...fill view...`` then ``result()``.

    A ``BytesIO`` of the final size lends its buffer for writing; once the views are released
    its ``getvalue()`` hands over that very buffer (a ``bytearray`` would cost a second copy
    of the whole range, which for a 256 MiB read is a large share of the time).
    """

    def __init__(self, size: int) -> None:
        self._bio = io.BytesIO()
        if size:
            self._bio.seek(size - 1)
            self._bio.write(b"\0")
        self._view: memoryview | None = None

    def __enter__(self) -> tuple[memoryview, Callable[[], bytes]]:
        self._view = self._bio.getbuffer()
        return self._view, self._bio.getvalue

    def __exit__(self, *exc: object) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None


@contextlib.contextmanager
def _spooled() -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="colabmodels-gdrive-", suffix=".upload")
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
