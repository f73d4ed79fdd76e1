"""Drive-side copies, moves and deletes, and the listings of the two virtual roots.

The ``gdrive://`` filesystem (``colabmodels.gdrivefs``) needs these request shapes, which
nothing else made before:

- ``copy_file``: ``files.copy``: Drive copies the bytes itself, none pass through the client;
- ``move``: ``files.patch`` with ``addParents``/``removeParents`` and a new title: a rename or
  a move (a folder moves with everything in it) in one request;
- ``delete_forever``: ``files.delete`` (the filesystem trashes by default; this is its
  ``trash=False``);
- ``replace_content``: ``files.update`` with a resumable upload: new bytes for an existing
  file, which keeps its id, its place and its sharing (Drive keeps the old bytes as a revision);
- ``shared_drives`` and ``shared_with_me``: what ``Shareddrives/`` and
  ``SharedWithMe/`` contain, one page at a time.

Every function takes the ``DriveSession`` and returns Drive's
file resources as dicts with ``FILE_FIELDS``; errors are
colabmodels errors (the session translates them and retries transient ones).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config
from ..progress import ProgressCallback
from .files import Uploads, send_resumable
from .wire import FILE_FIELDS

if TYPE_CHECKING:
    from .session import DriveSession

__all__ = ["copy_file", "delete_forever", "move", "replace_content", "shared_drives",
           "shared_with_me"]


def copy_file(session: DriveSession, file_id: str, *, parent_id: str, title: str) -> dict[str, Any]:
    """Copy a file into folder ``parent_id`` as ``title``, on Drive's side; its new resource."""
    body = {"title": title, "parents": [{"id": parent_id}]}
    return session.execute(
        lambda s: s.files().copy(fileId=file_id, body=body, supportsAllDrives=True,
                                 fields=FILE_FIELDS),
        what=f"copying {file_id} to {title}")


def move(session: DriveSession, file_id: str, *, title: str, add_parent: str | None = None,
         remove_parent: str | None = None) -> dict[str, Any]:
    """Rename ``file_id`` to ``title`` and, when the parents are given, move it between folders."""
    extra: dict[str, Any] = {}
    if add_parent and remove_parent and add_parent != remove_parent:
        extra = {"addParents": add_parent, "removeParents": remove_parent}
    return session.execute(
        lambda s: s.files().patch(fileId=file_id, body={"title": title}, supportsAllDrives=True,
                                  fields=FILE_FIELDS, **extra),
        what=f"moving {file_id} to {title}")


def delete_forever(session: DriveSession, file_id: str) -> None:
    """Delete a file or folder for good (no trash; a folder takes its contents with it)."""
    session.execute(lambda s: s.files().delete(fileId=file_id, supportsAllDrives=True),
                    what=f"deleting {file_id}")


def replace_content(session: Uploads, file_id: str, src: Path, *,
                    mime: str = "application/octet-stream",
                    progress: ProgressCallback | None = None, what: str) -> dict[str, Any]:
    """Upload ``src`` as the new content of ``file_id`` (resumable, in chunks); its metadata.

    Readers see the old bytes until the last chunk is in, then the new ones: never a mix.
    """
    from googleapiclient.http import MediaFileUpload

    size = src.stat().st_size
    media = MediaFileUpload(str(src), mimetype=mime, resumable=True,
                            chunksize=config.chunk_bytes())
    request = session.service.files().update(fileId=file_id, media_body=media,
                                             supportsAllDrives=True, fields=FILE_FIELDS)
    return send_resumable(session, request, size, progress, what=what)


def shared_drives(session: DriveSession, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
    """The shared drives the user can see (``{"id", "name"}``), one page at a time."""
    token: str | None = None
    while True:
        def page(s: Any, t: str | None = token) -> Any:
            return s.drives().list(maxResults=page_size, pageToken=t)

        answer = session.execute(page, what="listing shared drives")
        yield from answer.get("items", [])
        token = answer.get("nextPageToken")
        if not token:
            return


def shared_with_me(session: DriveSession, *, page_size: int = 1000) -> Iterator[dict[str, Any]]:
    """The files and folders shared with the user directly ("Shared with me"), page by page."""
    token: str | None = None
    while True:
        def page(s: Any, t: str | None = token) -> Any:
            return s.files().list(q="sharedWithMe = true and trashed = false",
                                  maxResults=page_size, pageToken=t, supportsAllDrives=True,
                                  includeItemsFromAllDrives=True,
                                  fields=f"nextPageToken,items({FILE_FIELDS})")

        answer = session.execute(page, what="listing Shared with me")
        yield from answer.get("items", [])
        token = answer.get("nextPageToken")
        if not token:
            return
