"""Browsing Drive a page at a time: what the Drive browser widget (and anyone else) lists.

One request per page, never a whole folder: ``list_page`` asks Drive for ``page_size``
children of a place (My Drive, "Shared with me", the shared drives, a folder), sorted by Drive
(``orderBy``, folders first) and optionally narrowed by a name search (a ``title contains``
``q`` term, so a search never lists the folder). ``details`` reads what the details pane
shows (owner, description, the thumbnail's bytes, the versions of a ``save_model`` folder)
and ``recognise_model_folders`` tells, in one request per 40 folders, which folders hold a
SavedModel (``saved_model.pb``), saved versions (``v1``...) or a version's ``manifest.json``.

Every function signs in on first use like the rest of the API (``cm.mount(interactive=False)``)
and raises only ``colabmodels.errors`` types; ``trouble`` turns one into what a face
should tell its user (not signed in, no permission, deleted meanwhile, offline).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from . import config
from .drive import files as drive_files
from .drive.session import current_session, mount
from .drive.thumbnails import fetch_thumbnail
from .drive.wire import FOLDER_MIME, SHORTCUT_MIME, quote_q
from .errors import AuthError, ColabModelsError, NotFoundError, OfflineError, TransferError

if TYPE_CHECKING:
    from .drive.session import DriveSession
    from .registry import SavedModelInfo

__all__ = [
    "FOLDER_MIME",
    "MODEL_EXTENSIONS",
    "SORT_KEYS",
    "Details",
    "DriveItem",
    "Page",
    "Place",
    "Trouble",
    "details",
    "is_model_file",
    "list_page",
    "recognise_model_folders",
    "roots",
    "trail_for",
    "trouble",
]

logger = logging.getLogger("colabmodels.browse")

MODEL_EXTENSIONS = (
    ".pt", ".pth", ".pt2", ".bin", ".ckpt", ".safetensors", ".h5", ".hdf5", ".keras", ".onnx",
    ".pb", ".tflite", ".pkl", ".pickle", ".joblib", ".model", ".w2v", ".kv", ".wv", ".gguf",
    ".msgpack", ".npz",
)
"""File name endings the model filter keeps (the filter is a hint; loading sniffs the bytes)."""

SORT_KEYS = {"name": "title", "size": "quotaBytesUsed", "modified": "modifiedDate"}
"""The sortable columns and the Drive v2 ``orderBy`` key of each."""

_ITEM_FIELDS = ("id,title,mimeType,fileSize,modifiedDate,description,properties(key,value),"
                "ownerNames,thumbnailLink,shortcutDetails,imageMediaMetadata(width,height),"
                "driveId,capabilities(canAddChildren)")
_VERSION = re.compile(r"^v[1-9][0-9]*$")
RootKind = Literal["mydrive", "shared", "drives"]
ROOT_TITLES: dict[str, str] = {"mydrive": "My Drive", "shared": "Shared with me",
                               "drives": "Shared drives"}
ROOT_PATHS: dict[str, str] = {"mydrive": "MyDrive", "shared": "SharedWithMe",
                              "drives": "Shareddrives"}


@dataclass(frozen=True)
class Place:
    """Something whose children can be listed: a root, a shared drive or a folder.

    Attributes:
        kind: ``"mydrive"``, ``"shared"``, ``"drives"`` (the list of shared drives) or
            ``"folder"`` (a folder, or a shared drive's top).
        title: what a breadcrumb shows.
        path: its Drive path (``MyDrive/models``, ``Shareddrives/Team/x``, ``SharedWithMe/y``).
        id: the folder's id (for ``"folder"``), else None.
        drive_id: the shared drive it belongs to, if any.
        paths: whether ``path`` is a real Drive path its children can be reached by (False
            below a shortcut: Drive paths do not follow shortcuts, so children go by id).
    """

    kind: Literal["mydrive", "shared", "drives", "folder"]
    title: str
    path: str
    id: str | None = None
    drive_id: str | None = None
    paths: bool = True

    @classmethod
    def root(cls, kind: RootKind) -> Place:
        return cls(kind, ROOT_TITLES[kind], ROOT_PATHS[kind])


@dataclass(frozen=True)
class DriveItem:
    """One row: a file, a folder, a shortcut or a shared drive.

    Attributes:
        id: the Drive id (a shortcut's target id for shortcuts).
        name: the title.
        is_folder: a folder (or a shortcut to one, or a shared drive).
        size: bytes (None for folders and Google Docs).
        modified: Drive's ``modifiedDate`` (ISO-8601).
        mime: the MIME type (of the target, for a shortcut).
        path: its Drive path, as ``cm.load_model`` accepts it.
        owner: the owner's name.
        description: the Drive description.
        properties: Drive properties (``cm_version`` on a saved version, ...).
        thumbnail_link: Drive's short-lived thumbnail URL (images, videos, PDFs...).
        image_size: ``(width, height)`` of an image, when Drive knows it.
        drive_id: the shared drive it lives in, if any.
        shortcut: True when the row is a shortcut (``id`` is then its target's).
        shared_drive: True for a row of the "Shared drives" root.
        model_kind: what the model filter recognised: ``"file"`` (a model file name),
            ``"savedmodel"``, ``"versions"`` (a ``save_model`` destination), ``"version"``
            (one ``vN`` folder), or None.
    """

    id: str
    name: str
    is_folder: bool
    size: int | None = None
    modified: str | None = None
    mime: str | None = None
    path: str | None = None
    owner: str | None = None
    description: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    thumbnail_link: str | None = None
    image_size: tuple[int, int] | None = None
    drive_id: str | None = None
    shortcut: bool = False
    shared_drive: bool = False
    model_kind: str | None = None

    @property
    def link(self) -> str:
        """The Drive web link (what "Share → Copy link" gives)."""
        if self.shared_drive:
            return f"https://drive.google.com/drive/folders/{self.id}"
        if self.is_folder:
            return f"https://drive.google.com/drive/folders/{self.id}"
        return f"https://drive.google.com/file/d/{self.id}/view"

    @property
    def load_ref(self) -> str:
        """What ``cm.load_model`` should be given for this row.

        A ``save_model`` destination loads its latest version (``PATH@latest``), a version
        folder ``DEST@vN``; anything else by id (one metadata request, no path walk, and
        never confused by two files with one name).
        """
        if self.model_kind == "versions" and self.path:
            return f"{self.path}@latest"
        if self.model_kind == "version" and self.path and "/" in self.path:
            dest, _, name = self.path.rpartition("/")
            return f"{dest}@{name}"
        return self.id

    def as_place(self) -> Place:
        """The place this folder (or shared drive) opens to."""
        if not self.is_folder:
            raise NotFoundError(f"{self.name} is a file, not a folder")
        return Place("folder", self.name, self.path or self.name, id=self.id,
                     drive_id=self.id if self.shared_drive else self.drive_id,
                     paths=bool(self.path) and not self.shortcut)


@dataclass(frozen=True)
class Page:
    """One page of a listing: ``items`` and the token of the next page (None at the end)."""

    items: list[DriveItem]
    next_token: str | None


@dataclass
class Details:
    """What the details pane shows for one item.

    Attributes:
        item: the row, refreshed from Drive (so a deleted file is noticed here).
        thumbnail: the thumbnail's bytes (images), or None.
        thumbnail_format: ``"png"``/``"jpeg"``/... for ``thumbnail``.
        versions: the versions of a ``save_model`` folder (oldest first), else empty.
    """

    item: DriveItem
    thumbnail: bytes | None = None
    thumbnail_format: str = "png"
    versions: list[SavedModelInfo] = field(default_factory=list)


# -- signing in -------------------------------------------------------------------------------

class NotSignedIn(AuthError):
    """Browsing needs a Drive session and none could be made without asking the user."""


def _session() -> DriveSession:
    if config.offline(None):
        raise OfflineError("offline mode is on (COLABMODELS_OFFLINE): browsing Drive needs the "
                           "network. Unset COLABMODELS_OFFLINE to browse; cached models still load.")
    session = current_session()
    if session is not None:
        return session
    try:
        return mount(interactive=False)
    except AuthError as e:
        raise NotSignedIn(f"not signed in to Drive: {e}") from e


# -- listing ----------------------------------------------------------------------------------

def roots() -> list[Place]:
    """My Drive, Shared with me and Shared drives."""
    return [Place.root("mydrive"), Place.root("shared"), Place.root("drives")]


def trail_for(start: str) -> list[Place]:
    """The breadcrumbs of a starting point: ``"MyDrive"``, ``"MyDrive/a/b"``, ``"SharedWithMe"``,
    ``"Shareddrives"``, ``"Shareddrives/Team/a"``, ``"/content/drive/MyDrive/a"``, or a folder
    id or link (a trail of one folder: its parents are not walked).

    Raises:
        NotFoundError: a step of the path does not exist. RefError: not a Drive folder.
    """
    from .errors import RefError
    from .refs import parse_ref

    text = (start or "MyDrive").strip().rstrip("/")
    aliases = {"mydrive": "MyDrive", "my drive": "MyDrive", "sharedwithme": "SharedWithMe",
               "shared with me": "SharedWithMe", "shareddrives": "Shareddrives",
               "shared drives": "Shareddrives"}
    text = aliases.get(text.lower(), text)
    if text == "SharedWithMe":
        return [Place.root("shared")]
    if text == "Shareddrives":
        return [Place.root("drives")]
    ref = parse_ref(text)
    if ref.source != "drive":
        raise RefError(f"{start!r} is not a Drive folder: start at MyDrive/..., SharedWithMe, "
                       "Shareddrives/NAME/... or a folder link")
    session = _session()
    if ref.path is None:
        assert ref.id is not None
        meta = drive_files.get(session, ref.id, fields="id,title,mimeType,driveId",
                               what=f"reading folder {ref.id}")
        if meta.get("mimeType") != FOLDER_MIME:
            raise RefError(f"{start!r} is a file, not a folder: start at the folder holding it")
        return [Place("folder", meta.get("title") or ref.id, meta.get("title") or ref.id,
                      id=meta["id"], drive_id=meta.get("driveId"))]
    parts = ref.path.strip("/").split("/")
    head = parts[0]
    if head == "MyDrive":
        trail = [Place.root("mydrive")]
        rest, walked, drive_id = parts[1:], "MyDrive", None
    elif head == "Shareddrives" and len(parts) > 1:
        walked = f"Shareddrives/{parts[1]}"
        drive_id = session.resolve(walked)
        trail = [Place.root("drives"), Place("folder", parts[1], walked, id=drive_id,
                                             drive_id=drive_id)]
        rest = parts[2:]
    elif head == "SharedWithMe" and len(parts) > 1:
        walked = f"SharedWithMe/{parts[1]}"
        trail = [Place.root("shared"), Place("folder", parts[1], walked, id=session.resolve(walked))]
        rest, drive_id = parts[2:], None
    else:
        raise RefError(f"{start!r}: start at MyDrive/..., SharedWithMe/..., Shareddrives/NAME/...")
    for name in rest:
        walked = f"{walked}/{name}"
        trail.append(Place("folder", name, walked, id=session.resolve(walked), drive_id=drive_id))
    return trail


def _order_by(sort: str, descending: bool) -> str:
    key = SORT_KEYS.get(sort)
    if key is None:
        raise ValueError(f"cannot sort by {sort!r}; choose one of {', '.join(SORT_KEYS)}")
    return f"folder,{key}{' desc' if descending else ''}" + (",title" if key != "title" else "")


def list_page(place: Place, *, page_token: str | None = None, page_size: int = 100,
              sort: str = "name", descending: bool = False, search: str = "",
              everywhere: bool = False) -> Page:
    """One page of ``place``'s children: folders first, then files, in Drive's order.

    Args:
        place: a root or folder (see ``Place``).
        page_token: the ``next_token`` of the previous page (None: the first page).
        page_size: rows per request (1..1000).
        sort: ``"name"``, ``"size"`` or ``"modified"`` (Drive sorts; folders stay first).
        descending: reverse the order.
        search: only names containing this text (a Drive ``title contains`` query; Drive
            matches the starts of words).
        everywhere: search all of the place's corpus (My Drive, or the shared drive)
            instead of only ``place``'s direct children.

    Raises:
        NotSignedIn, AuthError, NotFoundError, OfflineError, TransferError.
    """
    session = _session()
    if place.kind == "drives":
        return _shared_drives(session, page_token, page_size, search)
    terms = ["trashed = false"]
    search = search.strip()
    if search:
        terms.append(f"title contains {quote_q(search)}")
    if place.kind == "shared":
        terms.append("sharedWithMe = true")
    elif not (search and everywhere):
        parent = session.root_id if place.kind == "mydrive" else place.id
        terms.insert(0, f"{quote_q(str(parent))} in parents")
    page = drive_files.query_page(session, " and ".join(terms),
                                  fields=f"nextPageToken,items({_ITEM_FIELDS})",
                                  page_size=page_size, page_token=page_token,
                                  order_by=_order_by(sort, descending), drive_id=place.drive_id,
                                  what=f"listing {place.path}")
    prefix = None if (search and everywhere and place.kind != "shared") or not place.paths \
        else place.path
    items = [_item(raw, prefix, place) for raw in page.get("items", [])]
    if not items and page_token is None and place.kind == "folder" and place.id:
        _check_exists(session, place)
    return Page(items, page.get("nextPageToken"))


def _check_exists(session: DriveSession, place: Place) -> None:
    """An empty listing of a folder that was deleted meanwhile says so."""
    assert place.id is not None
    meta = drive_files.get(session, place.id, fields="id,labels(trashed)", what=f"reading {place.path}")
    if (meta.get("labels") or {}).get("trashed"):
        raise NotFoundError(f"{place.path} is in the Drive trash")


def _shared_drives(session: DriveSession, page_token: str | None, page_size: int,
                   search: str) -> Page:
    q = f"name contains {quote_q(search.strip())}" if search.strip() else None
    page = drive_files.shared_drives_page(session, page_token=page_token, page_size=page_size, q=q)
    items = [DriveItem(id=d["id"], name=d.get("name", d["id"]), is_folder=True, mime=FOLDER_MIME,
                       path=f"Shareddrives/{d.get('name', d['id'])}", modified=d.get("createdDate"),
                       drive_id=d["id"], shared_drive=True)
             for d in page.get("items", [])]
    items.sort(key=lambda i: i.name.lower())
    return Page(items, page.get("nextPageToken"))


def _item(raw: dict[str, Any], parent_path: str | None, place: Place) -> DriveItem:
    mime = raw.get("mimeType")
    fid = raw["id"]
    shortcut = mime == SHORTCUT_MIME
    if shortcut:
        target = raw.get("shortcutDetails") or {}
        fid = target.get("targetId") or fid
        mime = target.get("targetMimeType") or mime
    name = raw.get("title") or fid
    size = raw.get("fileSize")
    image = raw.get("imageMediaMetadata") or {}
    props = {p["key"]: p.get("value", "") for p in raw.get("properties") or [] if "key" in p}
    is_folder = mime == FOLDER_MIME
    owners = raw.get("ownerNames") or []
    item = DriveItem(
        id=fid, name=name, is_folder=is_folder, size=int(size) if size is not None else None,
        modified=raw.get("modifiedDate"), mime=mime,
        path=f"{parent_path}/{name}" if parent_path else None,
        owner=owners[0] if owners else None, description=raw.get("description"),
        properties=props, thumbnail_link=raw.get("thumbnailLink"),
        image_size=(int(image["width"]), int(image["height"]))
        if image.get("width") and image.get("height") else None,
        drive_id=raw.get("driveId") or place.drive_id, shortcut=shortcut,
    )
    return replace(item, model_kind=_model_kind(item))


def is_model_file(name: str) -> bool:
    """True when ``name`` ends like a model file (see ``MODEL_EXTENSIONS``)."""
    lower = name.lower()
    return lower.endswith(MODEL_EXTENSIONS) or lower in ("saved_model.pb", "pytorch_model.bin")


def _model_kind(item: DriveItem) -> str | None:
    if item.is_folder:
        if _VERSION.match(item.name) and "cm_version" in item.properties:
            return "version"
        return None
    return "file" if is_model_file(item.name) else None


def recognise_model_folders(items: Sequence[DriveItem]) -> list[DriveItem]:
    """``items`` with ``model_kind`` set on folders that hold a model, one request per 40 folders.

    A folder with ``saved_model.pb`` is a SavedModel; one with ``vN`` subfolders holds
    ``save_model`` versions; one with ``manifest.json`` is a saved version.
    """
    folders = [i for i in items if i.is_folder and not i.shared_drive and i.model_kind is None]
    if not folders:
        return list(items)
    session = _session()
    found: dict[str, str] = {}
    for start in range(0, len(folders), 40):
        batch = folders[start:start + 40]
        parents = " or ".join(f"{quote_q(f.id)} in parents" for f in batch)
        names = ("title = 'saved_model.pb' or title = 'manifest.json' or title = 'v1' or "
                 "title = 'saved_model.pbtxt'")
        q = f"({parents}) and ({names}) and trashed = false"
        for page in drive_files.query_pages(session, q, item_fields="title,mimeType,parents(id)",
                                            what="recognising model folders"):
            for raw in page.get("items", []):
                title = raw.get("title")
                kind = {"saved_model.pb": "savedmodel", "saved_model.pbtxt": "savedmodel",
                        "manifest.json": "version"}.get(title or "")
                if title == "v1" and raw.get("mimeType") == FOLDER_MIME:
                    kind = "versions"
                for p in raw.get("parents") or []:
                    if kind and found.get(p.get("id")) != "versions":
                        found[p.get("id")] = kind
    return [replace(i, model_kind=found.get(i.id, i.model_kind)) if i.is_folder else i
            for i in items]


# -- details ----------------------------------------------------------------------------------

def details(item: DriveItem, *, thumbnail: bool = True, versions: bool = True) -> Details:
    """Fresh metadata of ``item`` plus its thumbnail (images) or versions (``save_model`` folders).

    Raises:
        NotFoundError: it was deleted (or trashed) since it was listed.
        NotSignedIn, AuthError, OfflineError, TransferError.
    """
    session = _session()
    if item.shared_drive:
        return Details(item)
    raw = drive_files.get(session, item.id, fields=_ITEM_FIELDS + ",labels(trashed)",
                          what=f"reading {item.path or item.name}")
    if (raw.get("labels") or {}).get("trashed"):
        raise NotFoundError(f"{item.path or item.name} is in the Drive trash; restore it or "
                            "press Refresh")
    parent = item.path.rpartition("/")[0] if item.path else None
    fresh = _item(raw, parent, Place("folder", "", parent or "", drive_id=item.drive_id))
    fresh = replace(fresh, path=item.path, shortcut=item.shortcut, id=item.id,
                    model_kind=item.model_kind or fresh.model_kind)
    out = Details(fresh)
    if thumbnail and fresh.thumbnail_link and (fresh.mime or "").startswith("image/"):
        thumb = fetch_thumbnail(session, fresh.thumbnail_link)
        out.thumbnail, out.thumbnail_format = thumb.data, thumb.format
    if versions and fresh.is_folder:
        if fresh.model_kind is None:  # one request: does it hold saved_model.pb, v1/...?
            fresh = recognise_model_folders([fresh])[0]
            out.item = fresh
        if fresh.model_kind == "versions" and fresh.path:
            from .api import versions as list_versions

            out.versions = list_versions(fresh.path)
    return out


# -- what to tell the user --------------------------------------------------------------------

TroubleKind = Literal["not_signed_in", "no_permission", "not_found", "offline", "quota", "error"]


@dataclass(frozen=True)
class Trouble:
    """An error as a face shows it: ``kind``, ``message`` (the error) and ``advice`` (what to do)."""

    kind: TroubleKind
    message: str
    advice: str

    def __str__(self) -> str:
        return f"{self.message} — {self.advice}"


_ADVICE: dict[str, str] = {
    "not_signed_in": "Sign in first: run %drive_mount (or cm.mount()) in a cell, then press Refresh.",
    "no_permission": "You have no access to this item: ask its owner to share it with you "
                     "(as editor, to save into a folder), or pick another one.",
    "not_found": "It was deleted, trashed or moved since the list was shown: press Refresh.",
    "offline": "Drive cannot be reached: check the network (or unset COLABMODELS_OFFLINE), "
               "then press Refresh.",
    "quota": "Drive refused for quota reasons: wait a while or use another copy of the file.",
    "error": "See the message; press Refresh to try again.",
}


def _connection_trouble(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, (ConnectionError, TimeoutError)) or "connection" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def trouble(exc: BaseException) -> Trouble:
    """What a face should show for ``exc``: the kind, the error in one line and what to do."""
    from .errors import QuotaError

    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, NotSignedIn):
        kind: TroubleKind = "not_signed_in"
    elif isinstance(exc, OfflineError) or (isinstance(exc, (TransferError, ConnectionError))
                                          and _connection_trouble(exc)):
        kind = "offline"
    elif isinstance(exc, AuthError):
        kind = "no_permission"
    elif isinstance(exc, NotFoundError):
        kind = "not_found"
    elif isinstance(exc, QuotaError):
        kind = "quota"
    else:
        kind = "error"
    if not isinstance(exc, ColabModelsError):
        logger.debug("unexpected error", exc_info=exc)
    return Trouble(kind, message, _ADVICE[kind])


def model_rows(items: Iterable[DriveItem]) -> list[DriveItem]:
    """The rows the model filter keeps: every folder (to navigate) and model files."""
    return [i for i in items if i.is_folder or i.model_kind is not None]
