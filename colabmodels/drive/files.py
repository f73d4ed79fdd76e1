"""Every request shape colabmodels makes on Drive's files, one typed function each.

Callers outside ``colabmodels/drive/`` (the Drive backend, the browser listings, the registry,
the API) call these instead of building ``files().list(...)`` requests themselves, so a request
shape exists once, with its parameters (``supportsAllDrives``, the fields asked for...) in one
place. Each function takes the session (anything with ``DriveSession.execute``: see ``Executes``), makes one request
(or one per page), and returns Drive's v2 resources as dicts; errors arrive as colabmodels
errors (``translate_drive_error``).

- ``get``, ``parent_ids``: one file's metadata;
- ``query_page``, ``query_pages``, ``children_pages``, ``folders_named``:
  listings by a ``q`` query, one page or all pages;
- ``new_folder``, ``patch``, ``trash``, ``upload``: writes;
  ``send_resumable`` sends a prepared resumable upload (also for ``colabmodels.drive.copies``);
- ``shared_drives_page``: the shared drives the user sees;
- ``owned_md5s``: the owner walk (are all files of a folder the signed-in user's own?).

Drive-side copies are in ``colabmodels.drive.copies``; the tree walk's requests (change
feed, modified-since) in ``colabmodels.drive.treewalk``; thumbnails in
``colabmodels.drive.thumbnails``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from .. import config
from ..progress import ProgressCallback
from ..retry import Retry
from .wire import FILE_FIELDS, FOLDER_MIME, quote_q, translate_drive_error

__all__ = [
    "Executes",
    "SignedIn",
    "Uploads",
    "children_pages",
    "folders_named",
    "get",
    "media_request",
    "metadata_body",
    "new_folder",
    "owned_md5s",
    "parent_ids",
    "patch",
    "query_page",
    "query_pages",
    "send_resumable",
    "shared_drives_page",
    "trash",
    "upload",
    "web_download_url",
]

logger = logging.getLogger("colabmodels.drive")

_ALL_DRIVES: dict[str, Any] = {"supportsAllDrives": True, "includeItemsFromAllDrives": True}
_OWNER_FIELDS = ("id,title,mimeType,md5Checksum,owners(emailAddress,isAuthenticatedUser),"
                 "lastModifyingUser(emailAddress,isAuthenticatedUser)")


class Executes(Protocol):
    """What a request function needs of a session: run one request with retries and
    colabmodels errors (``DriveSession`` is one)."""

    def execute(self, build: Callable[[Any], Any], *, what: str) -> Any: ...


class SignedIn(Protocol):
    """A session's endpoint and bearer token (for the media downloads the transfer engine makes)."""

    endpoint: str

    def access_token(self) -> str: ...


class Uploads(Executes, Protocol):
    """A session that can also run a resumable upload: its service and per-thread http."""

    @property
    def service(self) -> Any: ...

    def http(self) -> Any: ...


# -- reading ----------------------------------------------------------------------------------

def media_request(session: SignedIn, file_id: str,
                  resource_key: str | None = None) -> tuple[str, dict[str, str]]:
    """The URL and headers of a file's bytes (``files.get?alt=media``), for a ranged GET.

    The transfer engine sends it (several ranges in parallel); the URL is the session's own
    endpoint, so its token goes only there.
    """
    url = (f"{session.endpoint}drive/v2/files/{quote(file_id)}?alt=media"
           "&supportsAllDrives=true")
    headers = {"Authorization": f"Bearer {session.access_token()}"}
    if resource_key:
        headers["X-Goog-Drive-Resource-Keys"] = f"{file_id}/{resource_key}"
    return url, headers


def web_download_url(file_id: str, resource_key: str | None = None,
                     confirm: str | None = None) -> str:
    """Drive's web download of a file shared "anyone with the link" (no sign-in), with the
    ``confirm`` token of the "cannot scan for viruses" page when one was served."""
    params = {"id": file_id, "export": "download"}
    if resource_key:
        params["resourcekey"] = resource_key
    if confirm:
        params["confirm"] = confirm
    if config.uses_google_endpoint():
        return "https://drive.usercontent.google.com/download?" + urlencode(params)
    return config.drive_endpoint() + "uc?" + urlencode(params)


def get(session: Executes, file_id: str, *, fields: str = FILE_FIELDS, what: str) -> dict[str, Any]:
    """One file's metadata (``files.get``)."""
    return session.execute(
        lambda s: s.files().get(fileId=file_id, supportsAllDrives=True, fields=fields), what=what)


def parent_ids(session: Executes, file_id: str, *, what: str) -> list[str]:
    """The ids of the folders that hold ``file_id`` (the parent lookup)."""
    meta = get(session, file_id, fields="parents(id)", what=what)
    return [p["id"] for p in meta.get("parents") or [] if p.get("id")]


def query_page(session: Executes, q: str, *, fields: str, page_size: int = 1000,
               page_token: str | None = None, order_by: str | None = None,
               drive_id: str | None = None, what: str) -> dict[str, Any]:
    """One page of ``files.list`` for the query ``q`` (every drive the user sees, or only
    the shared drive ``drive_id``). ``fields`` is the whole fields mask
    (``"nextPageToken,items(...)"``)."""
    params: dict[str, Any] = dict(_ALL_DRIVES)
    if order_by:
        params["orderBy"] = order_by
    if drive_id:
        params.update(corpora="drive", driveId=drive_id)
    return session.execute(
        lambda s: s.files().list(q=q, maxResults=page_size, pageToken=page_token, fields=fields,
                                 **params),
        what=what)


def query_pages(session: Executes, q: str, *, item_fields: str, page_size: int = 1000,
                what: str) -> Iterator[dict[str, Any]]:
    """Every page of ``files.list`` for ``q``, one request each, as they arrive."""
    token: str | None = None
    while True:
        page = query_page(session, q, fields=f"nextPageToken,items({item_fields})",
                          page_size=page_size, page_token=token, what=what)
        yield page
        token = page.get("nextPageToken")
        if not token:
            return


def children_pages(session: Executes, folder_id: str, *, item_fields: str = FILE_FIELDS,
                   page_size: int = 1000, what: str) -> Iterator[list[dict[str, Any]]]:
    """The untrashed children of ``folder_id``, a page (one request) at a time."""
    q = f"{quote_q(folder_id)} in parents and trashed = false"
    for page in query_pages(session, q, item_fields=item_fields, page_size=page_size, what=what):
        yield page.get("items", [])


def folders_named(session: Executes, parent_id: str, name: str, *, what: str) -> list[dict[str, Any]]:
    """The untrashed folders called ``name`` in ``parent_id`` (Drive allows several)."""
    q = (f"{quote_q(parent_id)} in parents and title = {quote_q(name)} and "
         f"mimeType = '{FOLDER_MIME}' and trashed = false")
    return query_page(session, q, fields=f"items({FILE_FIELDS})", page_size=10,
                      what=what).get("items", [])


def shared_drives_page(session: Executes, *, page_token: str | None = None, page_size: int = 100,
                       q: str | None = None, what: str = "listing shared drives") -> dict[str, Any]:
    """One page of the shared drives the user sees (``drives.list``; ``q`` in its own syntax)."""
    params: dict[str, Any] = {"maxResults": min(page_size, 100), "pageToken": page_token}
    if q:
        params["q"] = q
    return session.execute(lambda s: s.drives().list(**params), what=what)


def owned_md5s(session: Executes, folder_id: str, *, what: str,
               limit: int = 10_000) -> set[str] | None:
    """The owner walk: the md5s of the files below ``folder_id`` (recursively) when Drive
    reports every one of them as owned and last modified by the signed-in user; None when one
    is not, or when there are more than ``limit`` items (Drive cannot say cheaply)."""
    md5s: set[str] = set()
    pending = [folder_id]
    seen = 0
    while pending:
        fid = pending.pop()
        q = f"{quote_q(fid)} in parents and trashed = false"
        for page in query_pages(session, q, item_fields=_OWNER_FIELDS, what=what):
            for item in page.get("items", []):
                seen += 1
                if seen > limit:
                    return None
                if item.get("mimeType") == FOLDER_MIME:
                    pending.append(item["id"])
                    continue
                owners = item.get("owners") or []
                modifier = item.get("lastModifyingUser") or {}
                if not owners or not all(o.get("isAuthenticatedUser") is True for o in owners) \
                        or modifier.get("isAuthenticatedUser") is not True:
                    return None
                if item.get("md5Checksum"):
                    md5s.add(item["md5Checksum"])
    return md5s


# -- writing ----------------------------------------------------------------------------------

def _properties(properties: dict[str, Any]) -> list[dict[str, str]]:
    return [{"key": k, "value": str(v), "visibility": "PUBLIC"} for k, v in properties.items()]


def metadata_body(*, description: str | None = None,
                  properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``description``/``properties`` part of a file resource, as Drive v2 takes it."""
    body: dict[str, Any] = {}
    if description is not None:
        body["description"] = description
    if properties:
        body["properties"] = _properties(properties)
    return body


def new_folder(session: Executes, parent_id: str, name: str, *,
               properties: list[dict[str, str]], what: str) -> dict[str, Any]:
    """Create a folder, always (even beside one with the same name); returns its metadata."""
    return session.execute(
        lambda s: s.files().insert(
            body={"title": name, "mimeType": FOLDER_MIME, "parents": [{"id": parent_id}],
                  "properties": properties},
            supportsAllDrives=True, fields=FILE_FIELDS),
        what=what)


def patch(session: Executes, file_id: str, body: dict[str, Any], *, what: str) -> dict[str, Any]:
    """Change a file's metadata (``files.patch``); returns the new metadata."""
    return session.execute(
        lambda s: s.files().patch(fileId=file_id, body=body, supportsAllDrives=True,
                                  fields=FILE_FIELDS),
        what=what)


def trash(session: Executes, file_id: str, *, what: str) -> None:
    """Move a file or folder to the Drive trash (``files.trash``)."""
    session.execute(lambda s: s.files().trash(fileId=file_id, supportsAllDrives=True), what=what)


def upload(session: Uploads, src: Path, *, parent_id: str, title: str,
           metadata: dict[str, Any] | None = None, progress: ProgressCallback | None = None,
           what: str) -> dict[str, Any]:
    """Upload ``src`` as a new file ``title`` in ``parent_id``, resumable, in chunks.

    ``metadata`` may hold ``description``, ``properties`` and ``mime``. Returns the new file's
    metadata.
    """
    from googleapiclient.http import MediaFileUpload

    metadata = metadata or {}
    body: dict[str, Any] = {"title": title, "parents": [{"id": parent_id}],
                            **metadata_body(description=metadata.get("description"),
                                            properties=metadata.get("properties"))}
    size = src.stat().st_size
    media = MediaFileUpload(str(src), mimetype=metadata.get("mime", "application/octet-stream"),
                            resumable=True, chunksize=config.chunk_bytes())
    request = session.service.files().insert(body=body, media_body=media,
                                             supportsAllDrives=True, fields=FILE_FIELDS)
    return send_resumable(session, request, size, progress, what=what)


def send_resumable(session: Uploads, request: Any, size: int,
                   progress: ProgressCallback | None = None, *, what: str) -> dict[str, Any]:
    """Send a prepared resumable upload chunk by chunk; return Drive's resource of the file.

    ``request`` is a ``files().insert(...)`` or ``files().update(...)`` request whose media body
    is resumable (``MediaFileUpload(..., resumable=True)``), ``size`` the bytes it sends, and
    ``progress`` (optional) is called with the bytes each chunk added. A transient error is
    retried where the upload stopped (googleapiclient asks Drive how much it has); other
    errors arrive as colabmodels errors, worded with ``what``.

    Each chunk is one request on the calling thread, so a KeyboardInterrupt stops the upload
    within the chunk in flight (nothing keeps sending in the background).
    """
    report = progress or (lambda n: None)
    retry = Retry(what)
    sent = 0
    while True:
        try:
            status, response = request.next_chunk(http=session.http())
        except Exception as exc:
            err = translate_drive_error(exc, what)
            if not retry.again(err):
                if err is exc:
                    raise
                raise err from exc
            continue  # googleapiclient asks the server where to resume (Content-Range: */N)
        retry.reset()
        done = status.resumable_progress if status is not None else size
        if done > sent:
            report(done - sent)
            sent = done
        if response is not None:
            return response
