"""Google Drive (API v2) through PyDrive2's session, and public links without one.

``Ref.path`` is a Drive path (``MyDrive/models/x.pth``, ``Shareddrives/Team/x``,
``SharedWithMe/x``) and/or ``Ref.id`` a file id. Metadata, listing, folders and metadata
updates go through the session's Drive v2 service (built by PyDrive2's ``GoogleAuth``); file
bytes go through the transfer engine as parallel ranged ``GET files/ID?alt=media`` requests
with the session's bearer token; uploads are resumable, in chunks, reporting progress and
resuming after transient errors.

Without a session, files shared "anyone with the link" are read through Drive's web
download path (``uc?export=download``), including the confirmation page Drive serves for
large files.

Google Docs, Sheets and Slides have no bytes to download: ``DriveBackend.check_downloadable``
says what such a file is before any download starts. A shortcut stands for its target. The
query helpers, the fields asked for and the translation of Drive's errors (403 reasons
included) live in ``colabmodels.drive.wire``, and every request this backend makes is a
typed function of ``colabmodels.drive.files``; this module turns their answers into
``RemoteStat`` (``stat_from_meta``).
"""

from __future__ import annotations

import builtins
import html
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config
from ..drive import files
from ..drive.wire import FOLDER_MIME, SHORTCUT_MIME, check_downloadable
from ..errors import AuthError, NotFoundError, RefError, RetryableError, TransferError
from ..progress import ProgressCallback
from ..refs import Ref
from .base import RemoteStat, StorageBackend

if TYPE_CHECKING:
    from ..drive.session import DriveSession

__all__ = ["DriveBackend", "stat_from_meta"]

logger = logging.getLogger("colabmodels.drive")

_STATE_TENTATIVE = {"key": "cm_state", "value": "tentative", "visibility": "PUBLIC"}
_STATE_READY = {"key": "cm_state", "value": "ready", "visibility": "PUBLIC"}


def _folder_state(meta: dict[str, Any]) -> str | None:
    for prop in meta.get("properties") or []:
        if prop.get("key") == "cm_state":
            return prop.get("value")
    return None


def stat_from_meta(ref: Ref, meta: dict[str, Any]) -> RemoteStat:
    """What a Drive v2 file resource says, as a ``RemoteStat`` of ``ref`` (id filled in).

    The identity is the content's: ``drive:ID:MD5`` for files with bytes, the version and
    modified time for Google Docs (no md5), the modified time for folders.
    """
    is_dir = meta.get("mimeType") == FOLDER_MIME
    md5 = meta.get("md5Checksum")
    fid = meta["id"]
    if is_dir:
        identity = f"drive-folder:{fid}:{meta.get('modifiedDate', '')}"
    elif md5:
        identity = f"drive:{fid}:{md5}"
    else:  # Google Docs and friends have no md5 and no bytes to cache by content
        identity = f"drive:{fid}:v{meta.get('version', '')}:{meta.get('modifiedDate', '')}"
    size = meta.get("fileSize")
    return RemoteStat(
        ref=Ref(source=ref.source, path=ref.path, id=fid, version=ref.version,
                resource_key=ref.resource_key, folder=is_dir, raw=ref.raw),
        name=meta.get("title") or fid,
        size=int(size) if size is not None and not is_dir else None,
        is_dir=is_dir,
        checksum=f"md5:{md5}" if md5 else None,
        identity=identity,
        version=str(meta["version"]) if meta.get("version") is not None else None,
        mime=meta.get("mimeType"),
        modified=meta.get("modifiedDate"),
        created=meta.get("createdDate"),
        description=meta.get("description"),
        properties={p["key"]: p.get("value", "") for p in meta.get("properties") or []},
    )


class DriveBackend(StorageBackend):
    """Drive through a ``DriveSession``, or anonymous (public links)."""

    source = "drive"

    def __init__(self, session: DriveSession | None = None, *, connections: int | None = None) -> None:
        from .http import RangeClient

        self.session = session
        self.client = RangeClient(maxsize=max(16, connections or config.connections()))
        self._lock = threading.Lock()

    # -- helpers -----------------------------------------------------------------------------
    def _need_session(self, what: str) -> DriveSession:
        if self.session is None:
            from ..auth import WAYS_TO_SIGN_IN

            raise AuthError(f"{what} needs a Drive session: call cm.mount() first.\n"
                            + WAYS_TO_SIGN_IN.format(client_secrets="client_secrets.json"))
        return self.session

    def file_id(self, ref: Ref) -> str:
        if ref.id:
            return ref.id
        if ref.path is None:
            raise RefError(f"{ref.raw!r} names no Drive file")
        return self._need_session(f"reading {ref.path}").resolve(ref.path)

    # -- the contract ------------------------------------------------------------------------
    def stat(self, ref: Ref) -> RemoteStat:
        if self.session is None:
            if not ref.id:
                raise AuthError(f"{ref.raw or ref.path!r} is a Drive path; reading it needs cm.mount()")
            return self._public_stat(ref)
        return self._stat(self.session, ref, afresh=False)

    def _stat(self, session: DriveSession, ref: Ref, *, afresh: bool) -> RemoteStat:
        if ref.id or ref.path is None:
            fid, meta = self.file_id(ref), None
        else:  # a path looked up now comes with its metadata: no second request
            fid, meta = session.resolve_with_meta(ref.path)
        try:
            if meta is None:
                meta = files.get(session, fid, what=f"reading metadata of {ref.path or fid}")
        except NotFoundError:
            if ref.path and not afresh:  # a remembered id went stale: resolve the path afresh
                session.forget_paths(ref.path, ancestors=True)
                return self._stat(session, replace(ref, id=None), afresh=True)
            raise
        if (meta.get("labels") or {}).get("trashed"):
            if ref.path:
                session.forget_paths(ref.path, ancestors=True)
                if not afresh:  # the remembered file was trashed; the path may name a new one
                    return self._stat(session, replace(ref, id=None), afresh=True)
            raise NotFoundError(f"{ref.path or fid} is in the Drive trash; restore it to load it")
        if meta.get("mimeType") == SHORTCUT_MIME:
            return self._shortcut_target(ref, meta)
        return stat_from_meta(ref, meta)

    def _shortcut_target(self, ref: Ref, meta: dict[str, Any]) -> RemoteStat:
        """A Drive shortcut stands for its target: stat that instead (once; no chains)."""
        target = (meta.get("shortcutDetails") or {}).get("targetId")
        name = ref.path or meta.get("title") or meta["id"]
        if not target or target == meta["id"]:
            raise NotFoundError(f"{name} is a Drive shortcut whose target is gone or hidden from you")
        found = self.stat(Ref("drive", id=target, raw=ref.raw))
        if found.mime == SHORTCUT_MIME:
            raise NotFoundError(f"{name} is a shortcut to another shortcut; open the target itself")
        logger.info("%s is a shortcut to %s (%s)", name, found.name, target)
        return replace(found, ref=replace(ref, id=target, folder=found.is_dir))

    def check_downloadable(self, stat: RemoteStat) -> None:
        """Google Docs, Sheets, Slides... have no bytes to download: say what the file is."""
        check_downloadable(stat.ref.path or stat.name, stat.mime)

    def list(self, ref: Ref, *, page_size: int = 1000) -> Iterator[RemoteStat]:
        session = self._need_session("listing a folder")
        fid = self.file_id(ref)
        for page in files.children_pages(session, fid, page_size=page_size,
                                         what=f"listing {ref.path or fid}"):
            for item in page:
                child = ref.child(item["title"]) if ref.path else Ref("drive", id=item["id"])
                yield stat_from_meta(replace(child, id=item["id"]), item)

    def open_range(self, ref: Ref, start: int, end: int | None) -> Iterator[bytes]:
        fid = self.file_id(ref)
        if self.session is None:
            return self._public_range(fid, start, end, ref.resource_key)
        url, headers = files.media_request(self.session, fid, ref.resource_key)
        try:
            return self.client.open_range(url, start, end, headers=headers)
        except AuthError as e:
            if getattr(e, "status", None) != 401:
                raise  # a 403 is about this file (permission, Docs...), not about the token
            # The token expired between refresh and use: refresh once and let the engine retry.
            from ..auth import refresh_credentials

            refresh_credentials(self.session.credentials)
            raise RetryableError("access token expired; refreshed", status=401) from None

    def upload(self, src: Path, dest: Ref, *, metadata: dict[str, Any] | None = None,
               progress: ProgressCallback | None = None) -> RemoteStat:
        session = self._need_session("uploading")
        if dest.path is None:
            raise RefError("uploads need a Drive path such as MyDrive/models/name")
        parent_path, _, title = dest.path.rpartition("/")
        parent = self.makedirs(Ref("drive", path=parent_path, raw=parent_path))
        assert parent is not None
        assert parent.ref.id is not None
        meta = files.upload(session, src, parent_id=parent.ref.id, title=title, metadata=metadata,
                            progress=progress, what=f"uploading {dest.path}")
        session.forget_paths(dest.path)
        session.remember_path(dest.path, meta["id"])
        return stat_from_meta(replace(dest, id=meta["id"]), meta)

    def set_metadata(self, ref: Ref, *, description: str | None = None,
                     properties: dict[str, str] | None = None) -> RemoteStat:
        session = self._need_session("changing metadata")
        fid = self.file_id(ref)
        body = files.metadata_body(description=description, properties=properties)
        meta = files.patch(session, fid, body, what=f"updating metadata of {ref.path or fid}")
        return stat_from_meta(replace(ref, id=fid), meta)

    def makedirs(self, ref: Ref) -> RemoteStat | None:
        session = self._need_session("creating folders")
        if ref.path is None:
            return self.stat(ref)
        path = ref.path.strip("/")
        try:
            found = self.stat(replace(ref, id=None))
            if found.properties.get("cm_state") != "tentative":
                return found
            session.forget_paths(path)  # another writer's folder, not yet confirmed
        except NotFoundError:
            pass
        head, _, name = path.rpartition("/")
        if not head:
            raise RefError(f"cannot create {path!r}: start paths with MyDrive/")
        parent = self.makedirs(Ref("drive", path=head, raw=head))
        assert parent is not None and parent.ref.id is not None
        meta = self._create_folder_once(parent.ref.id, name, path)
        session.remember_path(path, meta["id"])
        return stat_from_meta(replace(ref, id=meta["id"]), meta)

    def folders_named(self, parent_id: str, name: str, *, what: str) -> builtins.list[dict[str, Any]]:
        """The untrashed folders called ``name`` in ``parent_id`` (Drive allows several)."""
        return files.folders_named(self._need_session(what), parent_id, name, what=what)

    def new_folder(self, parent_id: str, name: str, *, properties: builtins.list[dict[str, str]],
                   what: str) -> dict[str, Any]:
        """Create a folder, always (even beside one with the same name); returns its metadata."""
        return files.new_folder(self._need_session(what), parent_id, name, properties=properties,
                                what=what)

    def _create_folder_once(self, parent_id: str, name: str, path: str) -> dict[str, Any]:
        """Create folder ``name`` in ``parent_id`` so that concurrent writers end up sharing one.

        Drive allows two folders with one name, so two processes making the same path could
        each create one and write into different twins. A creator makes its folder marked
        ``cm_state=tentative``, lists the twins, and confirms it (``ready``) only if it is the
        only one; otherwise it trashes it and looks again. Others adopt a folder only once it
        is confirmed (folders made by other tools carry no mark and count as confirmed). Twins
        that persist (a creator died mid-way, or a user made them) resolve to the oldest.
        """
        import random
        import time

        session = self._need_session("creating folders")

        def twins() -> list[dict[str, Any]]:
            return self.folders_named(parent_id, name, what=f"looking up {path}")

        for attempt in range(40):
            found = twins()
            ready = [f for f in found if _folder_state(f) != "tentative"]
            if len(found) == 1 and ready:
                return found[0]
            if found and attempt >= 8:  # stuck twins or an abandoned tentative folder
                return min(ready or found, key=lambda f: (f.get("createdDate", ""), f["id"]))
            if not found:
                mine = self.new_folder(parent_id, name, properties=[_STATE_TENTATIVE],
                                       what=f"creating folder {path}")
                mine_id = mine["id"]
                if [t["id"] for t in twins()] == [mine_id]:
                    return files.patch(session, mine_id, {"properties": [_STATE_READY]},
                                       what=f"confirming folder {path}")
                files.trash(session, mine_id, what=f"withdrawing a duplicate of {path}")
                session.forget_paths(path)
            time.sleep(random.uniform(0.02, 0.1) * min(attempt + 1, 10))
        raise TransferError(f"could not create {path}: other writers kept creating it at the same time")

    def delete(self, ref: Ref) -> None:
        session = self._need_session("deleting")
        fid = self.file_id(ref)
        files.trash(session, fid, what=f"trashing {ref.path or fid}")
        if ref.path:
            session.forget_paths(ref.path)

    # -- public links, no session -----------------------------------------------------------
    def _public_stat(self, ref: Ref) -> RemoteStat:
        assert ref.id is not None
        _, resp = self._public_get(ref.id, ref.resource_key, "bytes=0-0")
        headers = resp.headers
        self.client._discard(resp)
        from .http import disposition_filename, parse_content_range

        cr = parse_content_range(headers.get("Content-Range"))
        size = cr[2] if cr else (int(headers["Content-Length"]) if headers.get("Content-Length") else None)
        name = disposition_filename(headers.get("Content-Disposition")) or ref.id
        tag = headers.get("ETag") or headers.get("Last-Modified") or f"size={size}"
        return RemoteStat(ref=ref, name=name, size=size, identity=f"drive:{ref.id}:{tag.strip(chr(34))}",
                          checksum=None, mime=headers.get("Content-Type"))

    def _public_get(self, fid: str, resource_key: str | None, range_header: str | None) -> tuple[str, Any]:
        """GET the web download, passing Drive's "can't scan for viruses" page when it comes."""
        confirm = None
        for _ in range(2):
            url = files.web_download_url(fid, resource_key, confirm)
            headers = {"Range": range_header} if range_header else {}
            resp = self.client.request("GET", url, headers=headers, preload_content=False)
            if resp.status >= 400:
                self.client.raise_for_status(resp, url)
            ctype = resp.headers.get("Content-Type", "")
            if "text/html" not in ctype:
                return url, resp
            page = self.client.read_error_body(resp).decode("utf-8", "replace")
            confirm = _confirm_token(page)
            if confirm is None:
                raise AuthError(
                    f"Drive did not serve file {fid}: it is not shared \"anyone with the link\" "
                    "(or does not exist). Sign in with cm.mount() or ask the owner to share it."
                )
        raise TransferError(f"Drive kept answering file {fid} with a web page instead of the file")

    def _public_range(self, fid: str, start: int, end: int | None,
                      resource_key: str | None) -> Iterator[bytes]:
        rng = f"bytes={start}-{'' if end is None else end - 1}"
        url, resp = self._public_get(fid, resource_key, rng)
        if resp.status == 200 and start > 0:
            self.client._discard(resp)
            raise RetryableError("the web download ignored the byte range")
        return self.client._start_stream(resp, url, start, end)


def _confirm_token(page: str) -> str | None:
    match = re.search(r'name="confirm"\s+value="([^"]+)"', page) or re.search(
        r"confirm=([0-9A-Za-z_\-]+)", page)
    return html.unescape(match.group(1)) if match else None
