"""The Drive v2 methods of the emulator: routing, permissions, metadata, uploads, downloads.

``DriveApp`` is independent of sockets: it takes a ``Request``
and returns a ``Response`` (or raises ``ApiError``).

Endpoints (all under ``/drive/v2`` unless noted); the method groups in their
own modules are mixed into ``DriveApp``:

* ``GET about``
* ``GET files`` (``q``, ``maxResults``, ``pageToken``, ``orderBy``, ``spaces``,
  ``corpora``, ``driveId``, ``includeItemsFromAllDrives``), ``POST files``
  (metadata-only insert; folders, shortcuts, Google Docs), ``GET files/generateIds``,
  ``DELETE files/trash`` (empty trash)
* ``GET|PUT|PATCH|DELETE files/{id}`` (``alt=media`` downloads, with ``Range``
  and ``revisionId``), ``POST files/{id}/copy|trash|untrash|touch``
* ``files/{id}/properties[/{key}]``, ``files/{id}/parents``, ``files/{id}/children``
* ``.permissions``: ``files/{id}/permissions[/{id}]``, ``permissionIds/{email}``
* ``.revisions``: ``files/{id}/revisions[/{id}]``
* ``.docs``: ``files/{id}/export`` and the ``exportLinks`` paths
* ``.drives``: ``drives[/{id}[/hide|unhide]]`` and ``teamdrives[/{id}]``
* ``.changes``: ``changes/startPageToken``, ``changes``, ``changes/{id}``
* ``.thumbnails``: ``/thumbnail/{id}/{rev}=sN`` (the ``thumbnailLink``)
* ``.batch``: ``POST /batch/drive/v2``
* ``/upload/drive/v2/files[/{id}]`` with ``uploadType=media|multipart|resumable``
  (``convert=true`` for Docs) and the resumable session PUTs
* ``POST /token`` (see ``.auth``); ``/uc``, ``/download``, ``/file/d/{id}/...``
  (see ``.webdownload``)

Shared-drive items are invisible (404) to the methods that have a
``supportsAllDrives`` parameter unless it is true, as on Drive.

``root`` works as a file id and in ``'root' in parents``.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import datetime as _dt
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

from . import webdownload
from .auth import AuthService, TokenError
from .changes import ChangesApi
from .docs import EXPORT_PATHS, DocsApi, convert_upload, is_doc
from .drives import DrivesApi, drive_not_found
from .errors import (
    ApiError,
    auth_error,
    backend_error,
    bad_request,
    download_quota_exceeded,
    file_not_downloadable,
    insufficient_permissions,
    not_found,
    rate_limit_exceeded,
)
from .fields import parse_strict
from .handlers import Handler, truthy
from .permissions import PermissionsApi
from .resources import Renderer, etag_of, rfc3339
from .revisions import RevisionsApi
from .server import FileBody, Request, Response, json_response
from .shaping import Fault, FaultPlan
from .store import FOLDER_MIME, SHORTCUT_MIME, FileRecord, StagedBlob, Store, User

if TYPE_CHECKING:
    from .query import QueryPlan
from .thumbnails import THUMBNAIL_PREFIX, ThumbnailsApi
from .uploads import UploadManager, UploadSession, parse_content_range, parse_multipart_related

__all__ = ["DriveApp"]

logger = logging.getLogger("colabmodels.testing.fakedrive")

_API = "/drive/v2/"
_UPLOAD = "/upload/drive/v2/"
_BATCH = "/batch/drive/v2"
_UNGATED = re.compile(
    r"^(about|drives(/.*)?|teamdrives(/.*)?|permissionIds/.*|files/generateIds|files/trash"
    r"|files/[^/]+/(revisions|properties|export)(/.*)?)$"
)
_CHILD_OR_PARENT = re.compile(r"^files/[^/]+/(children|parents)(/.*)?$")
_MAX_PROPERTY_BYTES = 124
_MAX_PROPERTIES = 100
_PAGE_PARAMS = frozenset({"pageToken", "maxResults", "access_token", "fields", "prettyPrint"})
"""files.list parameters that do not change which files match or their order."""
_LIST_CACHE_SIZE = 16
"""Sorted listings kept for their next pages."""

_ORDER_KEYS = {
    "createdDate",
    "folder",
    "lastViewedByMeDate",
    "modifiedByMeDate",
    "modifiedDate",
    "quotaBytesUsed",
    "recency",
    "sharedWithMeDate",
    "starred",
    "title",
    "title_natural",
}
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)

_truthy = truthy


def parse_rfc3339(text: str) -> float:
    """POSIX time of an RFC 3339 date (``Z`` or offset; no offset means UTC)."""
    t = text.strip().replace("z", "Z")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    try:
        dt = _dt.datetime.fromisoformat(t)
    except ValueError:
        raise bad_request(f"Invalid value for date: {text}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt.timestamp()



def _seq_of(rec: FileRecord) -> int:
    return rec.seq

class DriveApp(DrivesApi, PermissionsApi, RevisionsApi, ChangesApi, DocsApi, ThumbnailsApi):
    """Drive v2 behaviour over a ``Store``.

    Args:
        store: files and users.
        auth: tokens and keys.
        faults: the fault plan.
        latency_s: added to every request.
        bandwidth_bytes_per_s: per-connection cap (read by the server).
        virus_scan_threshold_bytes: web downloads above this size get the
            "can't scan for viruses" page first.
        retry_after_s: ``Retry-After`` of injected 429s.
    """

    def __init__(
        self,
        store: Store,
        auth: AuthService,
        faults: FaultPlan,
        *,
        latency_s: float = 0.0,
        bandwidth_bytes_per_s: float | None = None,
        virus_scan_threshold_bytes: int = 25 * 1024 * 1024,
        retry_after_s: int = 1,
    ) -> None:
        self.store = store
        self.auth = auth
        self.faults = faults
        self.latency_s = latency_s
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self.virus_scan_threshold_bytes = virus_scan_threshold_bytes
        self.retry_after_s = retry_after_s
        self.uploads = UploadManager()
        self.base_url = "http://127.0.0.1/"
        self.renderer = Renderer(store, self.base_url)
        self._routes = self._build_routes()
        # files.list with orderBy: (user, params) -> (store generation, sorted matches)
        self._list_cache: OrderedDict[tuple[Any, ...], tuple[int, dict[str, Any]]] = OrderedDict()

    def set_base_url(self, base_url: str) -> None:
        """Tell the app its own address (links in resources are absolute)."""
        self.base_url = base_url
        self.renderer = Renderer(self.store, base_url)

    # ------------------------------------------------------------ routing

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        fid = r"(?P<file_id>[^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("GET", r"about", self.about_get),
            ("GET", r"files", self.files_list),
            ("POST", r"files", self.files_insert),
            ("GET", r"files/generateIds", self.files_generate_ids),
            ("DELETE", r"files/trash", self.files_empty_trash),
            ("GET", rf"files/{fid}", self.files_get),
            ("PUT", rf"files/{fid}", self.files_update),
            ("PATCH", rf"files/{fid}", self.files_patch),
            ("DELETE", rf"files/{fid}", self.files_delete),
            ("POST", rf"files/{fid}/copy", self.files_copy),
            ("POST", rf"files/{fid}/trash", self.files_trash),
            ("POST", rf"files/{fid}/untrash", self.files_untrash),
            ("POST", rf"files/{fid}/touch", self.files_touch),
            ("GET", rf"files/{fid}/properties", self.properties_list),
            ("POST", rf"files/{fid}/properties", self.properties_insert),
            ("GET", rf"files/{fid}/properties/(?P<key>[^/]+)", self.properties_get),
            ("PATCH", rf"files/{fid}/properties/(?P<key>[^/]+)", self.properties_patch),
            ("PUT", rf"files/{fid}/properties/(?P<key>[^/]+)", self.properties_patch),
            ("DELETE", rf"files/{fid}/properties/(?P<key>[^/]+)", self.properties_delete),
            ("GET", rf"files/{fid}/parents", self.parents_list),
            ("POST", rf"files/{fid}/parents", self.parents_insert),
            ("GET", rf"files/{fid}/parents/(?P<parent_id>[^/]+)", self.parents_get),
            ("DELETE", rf"files/{fid}/parents/(?P<parent_id>[^/]+)", self.parents_delete),
            ("GET", rf"files/{fid}/children", self.children_list),
            ("POST", rf"files/{fid}/children", self.children_insert),
            ("GET", rf"files/{fid}/children/(?P<child_id>[^/]+)", self.children_get),
            ("DELETE", rf"files/{fid}/children/(?P<child_id>[^/]+)", self.children_delete),
        ]
        for group in (DrivesApi, PermissionsApi, RevisionsApi, ChangesApi, DocsApi):
            table += group.routes(self)
        return [(m, re.compile("^" + p + "$"), h) for m, p, h in table]

    def classify(self, req: Request) -> tuple[str, bool]:
        """``(kind, is_download)``; kind is ``api``, ``upload``, ``web`` or ``exempt``.

        Faults apply to every kind but ``exempt`` (the token endpoint and others).
        """
        path = req.path
        if path.startswith(_UPLOAD):
            return "upload", False
        if path.startswith(_API):
            is_media = req.method in ("GET", "HEAD") and req.query.get("alt") == "media"
            return "api", is_media
        if path == _BATCH or path.startswith(THUMBNAIL_PREFIX) or path in EXPORT_PATHS:
            return "api", path != _BATCH
        if webdownload.is_download_path(path):
            return "web", True
        return "exempt", False

    def dispatch(self, req: Request) -> Response:
        """Answer one request."""
        path = req.path
        if req.method not in ("GET", "HEAD") and path != "/token":
            # whatever it changes, cached listings are stale now (a sign-in changes no file:
            # a new session would otherwise sort a big folder again for its first page)
            self.store.bump()
        self.local.supports_all_drives = (
            truthy(req.query.get("supportsAllDrives"))
            or truthy(req.query.get("supportsTeamDrives"))
            or not self._drive_support_gated(req)
        )
        if path == "/token":
            return self.token(req)
        if path == _BATCH:
            from .batch import handle_batch

            return handle_batch(self, req)
        if path.startswith(_UPLOAD):
            user = self._authenticate(req, optional="upload_id" in req.query)
            return self.upload(req, user)
        if path.startswith(THUMBNAIL_PREFIX):
            return self.thumbnail(req)
        if path in EXPORT_PATHS:
            return self.export_link(req)
        if path.startswith(_API):
            user = self._authenticate(req)
            rest = path[len(_API) :].rstrip("/")
            method = "GET" if req.method == "HEAD" else req.method
            allowed = False
            for m, pattern, handler in self._routes:
                match = pattern.match(rest)
                if not match:
                    continue
                allowed = True
                if m != method:
                    continue
                return handler(req, user, **match.groupdict())
            if allowed:
                raise ApiError(405, "methodNotAllowed", f"Method {req.method} not allowed for {path}")
            raise ApiError(404, "notFound", f"Not Found: {path}")
        return webdownload.handle(self, req)

    @staticmethod
    def _drive_support_gated(req: Request) -> bool:
        """Whether the method has ``supportsAllDrives`` (without it, shared-drive items are hidden).

        Methods without the parameter (revisions, properties, children/parents
        listing, export...) reach shared-drive items regardless, as on Drive.
        """
        if req.path.startswith(_UPLOAD):
            return True
        if not req.path.startswith(_API):
            return False
        rest = req.path[len(_API) :].rstrip("/")
        if _UNGATED.match(rest):
            return False
        if _CHILD_OR_PARENT.match(rest):
            return req.method == "POST"
        return True

    def _authenticate(self, req: Request, *, optional: bool = False) -> User:
        authorization = req.header("Authorization")
        if optional and not authorization and not req.query.get("access_token"):
            session = self.uploads.get(req.query.get("upload_id", ""))
            if session is None:
                raise not_found(req.query.get("upload_id", ""), location="upload_id")
            req.user = session.user
            return self.store.user(session.user)
        email = self.auth.authenticate(authorization, req.query.get("access_token"))
        req.user = email
        try:
            return self.store.user(email)
        except KeyError:
            return self.store.add_user(email)

    def fault_response(self, fault: Fault, kind: str, req: Request) -> Response:
        """The error response an injected fault produces."""
        if kind == "web":
            return webdownload.fault_page(self, fault)
        if fault.kind == "401":
            err = auth_error()
        elif fault.kind == "503":
            err = backend_error(503)
        elif fault.kind == "500":
            err = backend_error(500)
        elif fault.kind == "429":
            err = rate_limit_exceeded(code=429, retry_after=self.retry_after_s)
        elif fault.kind == "403-rate":
            err = rate_limit_exceeded(user=fault.user_rate)
        elif fault.kind == "quota":
            err = download_quota_exceeded()
        else:
            err = backend_error(503)
        from .server import error_response

        return error_response(err)

    # -------------------------------------------------------------- token

    def token(self, req: Request) -> Response:
        """``POST /token``: the OAuth token endpoint."""
        if req.method != "POST":
            return Response(405, [("Allow", "POST")], b"")
        raw = req.read_body(1 << 20).decode("utf-8", "replace")
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        try:
            body = self.auth.token_endpoint(
                form,
                token_uri=self.base_url + "token",
                users=set(self.store.users),
            )
            status = 200
        except TokenError as e:
            body, status = e.body(), e.status
        return Response(
            status,
            [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store")],
            json.dumps(body).encode("utf-8"),
        )

    # ------------------------------------------------------------ helpers

    def _file(self, file_id: str, user: User, *, write: bool = False) -> FileRecord:
        """The record for ``file_id`` as ``user`` may see it (404) / change it (403)."""
        rec = self.store.get(user.root_id if file_id == "root" else file_id)
        if rec is None or not self.store.can_read(rec, user.email):
            raise not_found(file_id)
        if rec.drive_id is not None and not self.local.supports_all_drives:
            # Drive hides shared-drive items from apps that do not declare support.
            raise not_found(file_id)
        if write and not self.store.can_write(rec, user.email):
            raise insufficient_permissions()
        return rec

    def _owned(self, file_id: str, user: User) -> FileRecord:
        """The record if ``user`` may delete it (owner; organizer/file organizer in a shared drive)."""
        rec = self._file(file_id, user)
        if not self.store.can_delete(rec, user.email):
            raise insufficient_permissions()
        return rec

    def _resource(self, rec: FileRecord, user: User,
                  wanted: frozenset[str] | None = None) -> dict[str, Any]:
        return self.renderer.file(rec, user.email, wanted)

    def _parents_from(self, body: dict[str, Any], user: User) -> list[str] | None:
        """Validate the ``parents`` of a body; None when absent."""
        if "parents" not in body or body["parents"] is None:
            return None
        parents = body["parents"]
        if not isinstance(parents, list):
            raise bad_request("Invalid value for parents", location="parents")
        out: list[str] = []
        for p in parents:
            pid = p.get("id") if isinstance(p, dict) else p if isinstance(p, str) else None
            if not pid:
                raise bad_request("Invalid parent reference", location="parents")
            out.append(self._parent_folder(pid, user).id)
        return out

    def _parent_folder(self, pid: str, user: User) -> FileRecord:
        rec = self.store.get(user.root_id if pid == "root" else pid)
        if rec is None or not self.store.can_read(rec, user.email) or (
            rec.drive_id is not None and not self.local.supports_all_drives
        ):
            raise not_found(pid, location="parents")
        if not rec.is_folder:
            raise bad_request(f"The specified parent is not a folder: {pid}", location="parents")
        if not self.store.can_write(rec, user.email):
            raise insufficient_permissions()
        return rec

    def _check_properties(self, props: list[dict[str, str]]) -> None:
        if len(props) > _MAX_PROPERTIES:
            raise bad_request(f"A file can have at most {_MAX_PROPERTIES} properties", location="properties")
        for p in props:
            size = len(p["key"].encode("utf-8")) + len(str(p.get("value", "")).encode("utf-8"))
            if size > _MAX_PROPERTY_BYTES:
                raise bad_request(
                    f"Property too large: key + value of {p['key']!r} are {size} bytes "
                    f"(at most {_MAX_PROPERTY_BYTES})",
                    location="properties",
                )

    @staticmethod
    def _norm_visibility(value: Any) -> str:
        vis = str(value or "PRIVATE").upper()
        if vis not in ("PRIVATE", "PUBLIC"):
            raise bad_request(f"Invalid visibility: {value}", location="visibility")
        return vis

    def _merge_properties(self, rec: FileRecord, props: Any) -> None:
        if not isinstance(props, list):
            raise bad_request("Invalid value for properties", location="properties")
        merged = [dict(p) for p in rec.properties]
        for p in props:
            if not isinstance(p, dict) or not isinstance(p.get("key"), str) or not p["key"]:
                raise bad_request("Each property needs a non-empty key", location="properties")
            vis = self._norm_visibility(p.get("visibility"))
            merged = [q for q in merged if not (q["key"] == p["key"] and q["visibility"] == vis)]
            if p.get("value") is not None:
                merged.append({"key": p["key"], "value": str(p["value"]), "visibility": vis})
        self._check_properties(merged)
        rec.properties = merged

    def _edit(self, rec: FileRecord, body: dict[str, Any], user: User, params: dict[str, str]) -> None:
        """Apply an update/patch body to a stored record, all or nothing."""
        scratch = dataclasses.replace(
            rec,
            parents=list(rec.parents),
            properties=[dict(p) for p in rec.properties],
            readers=list(rec.readers),
            writers=list(rec.writers),
        )
        self._apply_metadata(scratch, body, user, params, creating=False)
        self.store.commit(rec, scratch)

    def _apply_metadata(
        self, rec: FileRecord, body: dict[str, Any], user: User, params: dict[str, str], *, creating: bool
    ) -> None:
        """Apply a files.insert/update/patch body and the add/removeParents parameters.

        Mutates ``rec``, so callers pass a scratch record (see ``_edit``).
        """
        store = self.store
        if "title" in body:
            if not isinstance(body["title"], str):
                raise bad_request("Invalid value for title", location="title")
            rec.title = body["title"]
        if "description" in body:
            rec.description = None if body["description"] is None else str(body["description"])
        if body.get("mimeType"):
            new_mime = str(body["mimeType"])
            if not creating and (new_mime == FOLDER_MIME) != rec.is_folder:
                raise bad_request("A file cannot become a folder or the other way round", location="mimeType")
            rec.mime_type = new_mime
        if body.get("originalFilename"):
            rec.original_filename = str(body["originalFilename"])
        parents = self._parents_from(body, user)
        new_parents = list(rec.parents)
        if parents is not None and not rec.is_any_root:
            new_parents = parents
        if not creating:
            for pid in filter(None, params.get("addParents", "").split(",")):
                parent = self._parent_folder(pid.strip(), user)
                if parent.id not in new_parents:
                    new_parents.append(parent.id)
            for pid in filter(None, params.get("removeParents", "").split(",")):
                real = user.root_id if pid.strip() == "root" else pid.strip()
                if real in new_parents:
                    new_parents.remove(real)
        if rec.is_folder and not creating:
            for pid in new_parents:
                above = store.get(pid)
                if above is not None and store.is_descendant(above, rec.id):
                    raise bad_request("A folder cannot be moved into itself or its subfolders", location="parents")
        rec.parents = new_parents
        labels = body.get("labels")
        if isinstance(labels, dict):
            for name in ("starred", "hidden", "restricted", "viewed"):
                if name in labels:
                    setattr(rec, name, bool(labels[name]))
            if "trashed" in labels and not creating:
                self._set_trashed(rec, user, bool(labels["trashed"]))
        if "properties" in body and body["properties"] is not None:
            self._merge_properties(rec, body["properties"])
        if body.get("modifiedDate") and (creating or _truthy(params.get("setModifiedDate"))):
            rec.modified = parse_rfc3339(str(body["modifiedDate"]))
        if creating and body.get("createdDate"):
            rec.created = parse_rfc3339(str(body["createdDate"]))

    def _shortcut_target(self, body: dict[str, Any], mime: str, user: User, *, has_content: bool) -> FileRecord | None:
        """The target of a shortcut being created (None for other files); validates ``shortcutDetails``."""
        details = body.get("shortcutDetails")
        if mime != SHORTCUT_MIME:
            if details:
                raise bad_request("shortcutDetails can only be set on shortcuts", location="shortcutDetails")
            return None
        if has_content:
            raise bad_request("Shortcuts cannot have content", location="mimeType")
        target_id = details.get("targetId") if isinstance(details, dict) else None
        if not isinstance(target_id, str) or not target_id:
            raise bad_request("A shortcut needs shortcutDetails.targetId", location="shortcutDetails.targetId",
                              reason="required")
        target = self.store.get(target_id)
        if target is None or not self.store.can_read(target, user.email):
            raise not_found(target_id, location="shortcutDetails.targetId")
        if target.shortcut_target:
            raise bad_request("A shortcut cannot point at another shortcut", location="shortcutDetails.targetId")
        return target

    def _set_trashed(self, rec: FileRecord, user: User, trashed: bool) -> None:
        if not self.store.can_delete(rec, user.email):
            raise insufficient_permissions()
        if rec.is_any_root:
            raise bad_request("The root folder cannot be trashed")
        rec.explicitly_trashed = trashed
        rec.trashed_date = time.time() if trashed else None
        rec.trashing_user = user.email if trashed else None

    def _create(
        self,
        body: dict[str, Any],
        user: User,
        params: dict[str, str],
        *,
        blob: StagedBlob | None,
        content_type: str | None,
    ) -> FileRecord:
        """files.insert: validate everything first, then create the record."""
        store = self.store
        parents = self._parents_from(body, user) or [user.root_id]
        file_id = body.get("id")
        if file_id is not None:
            if not isinstance(file_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{20,60}", file_id):
                raise bad_request(f"Invalid id: {file_id}", location="id")
            if store.get(file_id) is not None:
                raise ApiError(409, "duplicate", "A file already exists with the provided ID.", location="id")
        mime = body.get("mimeType") or content_type or "application/octet-stream"
        if mime == FOLDER_MIME and blob is not None:
            raise bad_request("Folders cannot have content", location="mimeType")
        shortcut = self._shortcut_target(body, mime, user, has_content=blob is not None)
        title = body.get("title")
        if not isinstance(title, str) or title == "":
            title = "Untitled" if mime != FOLDER_MIME else "Untitled folder"
        probe = FileRecord(
            id="", title=title, mime_type=mime, owner=user.email, parents=parents,
            created=0.0, modified=0.0, seq=0,
        )
        self._apply_metadata(probe, {k: v for k, v in body.items() if k != "parents"}, user, params, creating=True)
        with store.lock:
            rec = store.create(
                owner=user.email,
                title=probe.title,
                mime_type=probe.mime_type,
                parents=parents,
                blob=blob,
                file_id=file_id,
                description=probe.description,
                properties=probe.properties,
                original_filename=probe.original_filename or (title if blob is not None else None),
                starred=probe.starred,
            )
            rec.hidden, rec.restricted, rec.viewed = probe.hidden, probe.restricted, probe.viewed
            if shortcut is not None:
                rec.shortcut_target, rec.shortcut_target_mime = shortcut.id, shortcut.mime_type
            if body.get("modifiedDate"):
                rec.modified = probe.modified
            if body.get("createdDate"):
                rec.created = probe.created
        return rec

    # ------------------------------------------------------------- about

    def about_get(self, req: Request, user: User) -> Response:
        """``GET about``."""
        return json_response(self.renderer.about(user))

    # -------------------------------------------------------------- files

    def _listable(self, rec: FileRecord, user: User, q: str) -> bool:
        """Whether ``rec`` can appear in ``user``'s list results.

        Files reachable only through "anyone with the link" show up only when
        the query names one of their parents (listing a shared folder), as on Drive.
        """
        store = self.store
        if rec.is_any_root:
            return False
        if rec.drive_id is None and rec.owner == user.email:
            return True
        role = store.role(rec, user.email)
        if role is None:
            return False
        return store.has_direct_access(rec, user.email) or any(pid in q for pid in rec.parents)

    def _plan_q(self, q: str, user: User) -> QueryPlan:
        from .query import QueryError, plan_query  # written separately; imported when needed

        try:
            return plan_query(q, aliases={"root": user.root_id, "me": user.email})
        except QueryError as e:
            raise bad_request(f"Invalid Value: {e}", location="q")

    def _candidates(self, plan: QueryPlan, after: int = 0) -> list[FileRecord]:
        """Records that may match ``plan`` with ``seq > after``, in creation order.

        When the query requires ``'ID' in parents``, only the children of those
        folders (from the store's index); otherwise every record.
        """
        store = self.store
        if plan.parents is None:
            recs = store.snapshot()
        elif len(plan.parents) == 1:
            recs = store.children(next(iter(plan.parents)))
        else:
            by_id = {r.id: r for pid in plan.parents for r in store.children(pid)}
            recs = sorted(by_id.values(), key=lambda r: r.seq)
        if after <= 0:
            return recs
        # creation order is seq order: skip the pages already served without looking at them
        return recs[bisect.bisect_right(recs, after, key=_seq_of):]

    def _sorted_page(
        self,
        req: Request,
        user: User,
        plan: QueryPlan,
        in_drives: Callable[[FileRecord], bool],
        key: Callable[[FileRecord], Any],
        offset: int,
        max_results: int,
    ) -> tuple[list[FileRecord], bool]:
        """One page of an ordered listing and whether more follow.

        The candidates are sorted by ``key`` once (cheap: no query is evaluated), then the query
        is evaluated lazily in that order, only as far as the pages asked for reach; the sorted
        candidates and the matches found so far are reused by the next pages until the store
        changes. So the first page of a 300,000-file folder costs a sort, not 300,000 checks.
        """
        store = self.store
        params = req.query
        q = params.get("q", "")
        cache_key = (
            user.email,
            bool(self.local.supports_all_drives),
            tuple(sorted((k, v) for k, v in params.items() if k not in _PAGE_PARAMS)),
        )
        with store.lock:
            generation = store.generation
            hit = self._list_cache.get(cache_key)
            if hit is not None and hit[0] == generation:
                self._list_cache.move_to_end(cache_key)
                state = hit[1]
            else:
                state = None
        if state is None:
            ordered = sorted(self._candidates(plan), key=key)
            state = {"ordered": ordered, "scanned": 0, "matches": [], "lock": threading.Lock()}
            with store.lock:
                if store.generation == generation:
                    self._list_cache[cache_key] = (generation, state)
                    self._list_cache.move_to_end(cache_key)
                    while len(self._list_cache) > _LIST_CACHE_SIZE:
                        self._list_cache.popitem(last=False)
        predicate = plan.predicate
        ctx = _ViewContext(store, user.email)
        want = offset + max_results + 1  # one more: is there a next page?
        with state["lock"]:
            ordered, matches = state["ordered"], state["matches"]
            i = state["scanned"]
            while len(matches) < want and i < len(ordered):
                r = ordered[i]
                i += 1
                if in_drives(r) and self._listable(r, user, q) and predicate(_QueryView(r, ctx)):
                    matches.append(r)
            state["scanned"] = i
            page = matches[offset : offset + max_results]
            more = len(matches) > offset + max_results
        return page, more

    @staticmethod
    def _order_key(order_by: str) -> Callable[[FileRecord], Any]:
        """The sort key of an ``orderBy``, composed once from one getter per column (a
        sorted listing calls it for every candidate: 300,000 in a big folder)."""
        getters: list[Callable[[FileRecord], Any]] = []
        for item in order_by.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, direction = item.partition(" ")
            direction = direction.strip().lower()
            if name not in _ORDER_KEYS or direction not in ("", "asc", "desc"):
                raise bad_request(f"Invalid Value: orderBy {order_by!r}", location="orderBy")
            getter = _ORDER_VALUES.get(name, _modified_of)
            getters.append(_descending(getter) if direction == "desc" else getter)
        if len(getters) == 1:
            (g0,) = getters
            return lambda rec: (g0(rec), rec.seq)
        if len(getters) == 2:
            g0, g1 = getters
            return lambda rec: (g0(rec), g1(rec), rec.seq)
        if len(getters) == 3:
            g0, g1, g2 = getters
            return lambda rec: (g0(rec), g1(rec), g2(rec), rec.seq)
        return lambda rec: (*[g(rec) for g in getters], rec.seq)

    def files_list(self, req: Request, user: User) -> Response:
        """``GET files``: search with ``q``, paged with ``maxResults``/``pageToken``."""
        params = req.query
        q = params.get("q", "")
        try:
            max_results = int(params.get("maxResults", "100") or "100")
        except ValueError:
            raise bad_request("Invalid value for maxResults", location="maxResults")
        if max_results < 0 or max_results > 1000:
            raise bad_request(
                f"Invalid value '{max_results}'. Values must be within the range: [0, 1000]",
                location="maxResults",
            )
        max_results = max_results or 100
        in_drives = self._drive_scope(params, user)
        spaces = {s.strip() for s in params.get("spaces", "drive").split(",") if s.strip()}
        plan = self._plan_q(q, user)
        predicate = plan.predicate
        token = self._decode_page_token(params.get("pageToken"))
        items: list[dict[str, Any]] = []
        page: list[FileRecord] = []
        next_token: str | None = None
        if "drive" in spaces:
            order_by = params.get("orderBy")
            if order_by:
                key = self._order_key(order_by)
                offset = int(token.get("o", 0))
                page, more = self._sorted_page(req, user, plan, in_drives, key, offset, max_results)
                if more:
                    next_token = self._encode_page_token({"o": offset + max_results})
            else:
                after = int(token.get("s", 0))
                ctx = _ViewContext(self.store, user.email)
                for turn in self.store.turns(self._candidates(plan, after)):
                    with self.store.lock:
                        for r in turn:
                            if not in_drives(r):
                                continue
                            if not self._listable(r, user, q) or not predicate(_QueryView(r, ctx)):
                                continue
                            if len(page) == max_results:
                                next_token = self._encode_page_token({"s": page[-1].seq})
                                break
                            page.append(r)
                    if next_token:
                        break
            wanted = _wanted_fields(req.query.get("fields"), within="items")
            for turn in self.store.turns(page):
                with self.store.lock:
                    items.extend(self._resource(r, user, wanted) for r in turn)
            if _wants_permissions(req.query.get("fields"), within="items"):
                for r, item in zip(page, items, strict=True):
                    self._add_permissions(item, r, user)
        body: dict[str, Any] = {
            "kind": "drive#fileList",
            "etag": etag_of("list", q, *(r.id for r in page)),
            "selfLink": self.base_url.rstrip("/") + req.target,
            "incompleteSearch": False,
            "items": items,
        }
        if next_token:
            body["nextPageToken"] = next_token
            link_params = {k: v for k, v in params.items() if k not in ("pageToken", "access_token")}
            link_params["pageToken"] = next_token
            body["nextLink"] = f"{self.base_url}drive/v2/files?{urlencode(link_params)}"
        return json_response(body)

    def _drive_scope(self, params: dict[str, str], user: User) -> Callable[[FileRecord], bool]:
        """Check ``corpora``/``driveId``/``includeItemsFromAllDrives``; the filter they give."""
        corpora = params.get("corpora") or "default"
        if corpora not in ("default", "user", "domain", "drive", "allDrives", "teamDrive", "allTeamDrives"):
            raise bad_request(f"Invalid Value: corpora {corpora!r}", location="corpora")
        corpora = {"teamDrive": "drive", "allTeamDrives": "allDrives"}.get(corpora, corpora)
        drive_id = params.get("driveId") or params.get("teamDriveId")
        include = _truthy(params.get("includeItemsFromAllDrives")) or _truthy(params.get("includeTeamDriveItems"))
        if include and not self.local.supports_all_drives:
            raise bad_request(
                "The includeItemsFromAllDrives parameter can only be set to true if supportsAllDrives is also "
                "set to true.",
                location="includeItemsFromAllDrives",
            )
        if (corpora == "drive") != bool(drive_id):
            raise bad_request(
                "The driveId parameter must be specified if and only if corpora is set to drive.",
                location="driveId",
            )
        if corpora in ("drive", "allDrives") and not include:
            raise bad_request(
                f"The includeItemsFromAllDrives parameter must be set to true when corpora is {corpora}.",
                location="includeItemsFromAllDrives",
            )
        if drive_id:
            drive = self.store.drives.get(drive_id)
            if drive is None or user.email not in drive.members:
                raise drive_not_found(drive_id)
            return lambda r: r.drive_id == drive_id
        if include:
            return lambda r: True
        return lambda r: r.drive_id is None

    @staticmethod
    def _encode_page_token(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return "~!!~" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode_page_token(token: str | None) -> dict[str, Any]:
        if not token:
            return {}
        try:
            if not token.startswith("~!!~"):
                raise ValueError(token)
            raw = token[4:]
            data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            if not isinstance(data, dict):
                raise ValueError(token)
            return data
        except ValueError:
            raise bad_request(f"Invalid Value: pageToken {token!r}", location="pageToken")

    def files_get(self, req: Request, user: User, file_id: str) -> Response:
        """``GET files/{id}``: metadata, or content with ``alt=media``."""
        rec = self._file(file_id, user)
        if req.query.get("alt") == "media":
            rev_id = req.query.get("revisionId")
            if rev_id and rec.is_binary and not rec.is_folder:
                return self.media_file(req, rec, self.find_revision(rec, rev_id))
            return self.media(req, rec)
        res = self._resource(rec, user)
        if _wants_permissions(req.query.get("fields")):
            self._add_permissions(res, rec, user)
        return json_response(res)

    def _add_permissions(self, res: dict[str, Any], rec: FileRecord, user: User) -> None:
        """Drive's ``permissions`` of a file resource (not populated in shared drives)."""
        if rec.drive_id is None:
            res["permissions"] = self.renderer.permissions(rec, user.email)

    def files_insert(self, req: Request, user: User) -> Response:
        """``POST files``: create a file from metadata only (folders, empty files)."""
        body = req.json_body()
        rec = self._create(body, user, req.query, blob=None, content_type=None)
        return json_response(self._resource(rec, user))

    def _update(self, req: Request, user: User, file_id: str, body: dict[str, Any]) -> Response:
        rec = self._file(file_id, user, write=True)
        with self.store.lock:
            self._edit(rec, body, user, req.query)
            modified = rec.modified if _truthy(req.query.get("setModifiedDate")) and body.get("modifiedDate") else None
            self.store.touch(rec, by=user.email, modified=modified)
        return json_response(self._resource(rec, user))

    def files_update(self, req: Request, user: User, file_id: str) -> Response:
        """``PUT files/{id}``: update metadata."""
        return self._update(req, user, file_id, req.json_body())

    def files_patch(self, req: Request, user: User, file_id: str) -> Response:
        """``PATCH files/{id}``: update metadata."""
        return self._update(req, user, file_id, req.json_body())

    def files_delete(self, req: Request, user: User, file_id: str) -> Response:
        """``DELETE files/{id}``: delete for good (owner only)."""
        rec = self._owned(file_id, user)
        if rec.is_any_root:
            raise insufficient_permissions("The root folder cannot be deleted.")
        self.store.delete(rec)
        return Response(204)

    def files_empty_trash(self, req: Request, user: User) -> Response:
        """``DELETE files/trash``: delete everything the user trashed."""
        for rec in self.store.snapshot():
            if (rec.owner == user.email and rec.drive_id is None and rec.explicitly_trashed
                    and self.store.get(rec.id) is not None):
                self.store.delete(rec)
        return Response(204)

    def files_trash(self, req: Request, user: User, file_id: str) -> Response:
        """``POST files/{id}/trash``."""
        rec = self._file(file_id, user)
        with self.store.lock:
            self._set_trashed(rec, user, True)
            self.store.touch(rec, by=user.email, modified=rec.modified)
        return json_response(self._resource(rec, user))

    def files_untrash(self, req: Request, user: User, file_id: str) -> Response:
        """``POST files/{id}/untrash``."""
        rec = self._file(file_id, user)
        with self.store.lock:
            self._set_trashed(rec, user, False)
            self.store.touch(rec, by=user.email, modified=rec.modified)
        return json_response(self._resource(rec, user))

    def files_touch(self, req: Request, user: User, file_id: str) -> Response:
        """``POST files/{id}/touch``: set modifiedDate to now."""
        rec = self._file(file_id, user, write=True)
        self.store.touch(rec, by=user.email)
        return json_response(self._resource(rec, user))

    def files_copy(self, req: Request, user: User, file_id: str) -> Response:
        """``POST files/{id}/copy``."""
        src = self._file(file_id, user)
        body = req.json_body()
        if src.is_folder:
            raise ApiError(403, "cannotCopyFile", "Folders cannot be copied.")
        meta: dict[str, Any] = {
            "title": src.title,
            "mimeType": src.mime_type,
            "description": src.description,
            "properties": [dict(p) for p in src.properties],
        }
        meta.update(body)
        if "parents" not in body:
            parents = [p for p in src.parents if (pr := self.store.get(p)) and self.store.can_write(pr, user.email)]
            meta["parents"] = [{"id": p} for p in parents] or [{"id": user.root_id}]
        blob = self.store.copy_blob(src) if src.has_blob else None
        try:
            rec = self._create(meta, user, req.query, blob=blob, content_type=src.mime_type)
        except Exception:
            if blob is not None:
                blob.path.unlink(missing_ok=True)
            raise
        return json_response(self._resource(rec, user))

    def files_generate_ids(self, req: Request, user: User) -> Response:
        """``GET files/generateIds``."""
        try:
            n = int(req.query.get("maxResults", "10"))
        except ValueError:
            raise bad_request("Invalid value for maxResults", location="maxResults")
        if not 1 <= n <= 1000:
            raise bad_request("maxResults must be within [1, 1000]", location="maxResults")
        ids = [self.store.new_id() for _ in range(n)]
        return json_response({"kind": "drive#generatedIds", "space": req.query.get("space", "drive"), "ids": ids})

    # -------------------------------------------------------- properties

    def _find_property(self, rec: FileRecord, key: str, visibility: str) -> dict[str, str]:
        for p in rec.properties:
            if p["key"] == key and p["visibility"] == visibility:
                return p
        raise ApiError(
            404,
            "notFound",
            f"Property not found: key = {key} and visibility = {visibility}",
            location="propertyKey",
            location_type="parameter",
        )

    def properties_list(self, req: Request, user: User, file_id: str) -> Response:
        """``GET files/{id}/properties``."""
        rec = self._file(file_id, user)
        return json_response(
            {
                "kind": "drive#propertyList",
                "etag": etag_of(rec.id, rec.version, "props"),
                "selfLink": f"{self.renderer.api}files/{rec.id}/properties",
                "items": [self.renderer.property(rec, p) for p in rec.properties],
            }
        )

    def properties_insert(self, req: Request, user: User, file_id: str) -> Response:
        """``POST files/{id}/properties``: add or replace one property."""
        rec = self._file(file_id, user, write=True)
        body = req.json_body()
        key = body.get("key")
        if not isinstance(key, str) or not key:
            raise bad_request("Required: key", location="key")
        vis = self._norm_visibility(body.get("visibility"))
        with self.store.lock:
            self._merge_properties(rec, [{"key": key, "value": str(body.get("value", "")), "visibility": vis}])
            self.store.touch(rec, by=user.email)
            prop = self._find_property(rec, key, vis)
        return json_response(self.renderer.property(rec, prop))

    def properties_get(self, req: Request, user: User, file_id: str, key: str) -> Response:
        """``GET files/{id}/properties/{key}``."""
        rec = self._file(file_id, user)
        prop = self._find_property(rec, key, self._norm_visibility(req.query.get("visibility")))
        return json_response(self.renderer.property(rec, prop))

    def properties_patch(self, req: Request, user: User, file_id: str, key: str) -> Response:
        """``PATCH|PUT files/{id}/properties/{key}``."""
        rec = self._file(file_id, user, write=True)
        vis = self._norm_visibility(req.query.get("visibility"))
        body = req.json_body()
        with self.store.lock:
            old = self._find_property(rec, key, vis)
            new_vis = self._norm_visibility(body.get("visibility") or vis)
            value = str(body["value"]) if body.get("value") is not None else old["value"]
            rec.properties = [p for p in rec.properties if p is not old]
            self._merge_properties(rec, [{"key": key, "value": value, "visibility": new_vis}])
            self.store.touch(rec, by=user.email)
            prop = self._find_property(rec, key, new_vis)
        return json_response(self.renderer.property(rec, prop))

    def properties_delete(self, req: Request, user: User, file_id: str, key: str) -> Response:
        """``DELETE files/{id}/properties/{key}``."""
        rec = self._file(file_id, user, write=True)
        with self.store.lock:
            old = self._find_property(rec, key, self._norm_visibility(req.query.get("visibility")))
            rec.properties = [p for p in rec.properties if p is not old]
            self.store.touch(rec, by=user.email)
        return Response(204)

    # ------------------------------------------------ parents and children

    def parents_list(self, req: Request, user: User, file_id: str) -> Response:
        """``GET files/{id}/parents``."""
        rec = self._file(file_id, user)
        return json_response(
            {
                "kind": "drive#parentList",
                "etag": etag_of(rec.id, rec.version, "parents"),
                "selfLink": f"{self.renderer.api}files/{rec.id}/parents",
                "items": [self.renderer.parent_ref(rec.id, p) for p in rec.parents],
            }
        )

    def _child_ref(self, folder_id: str, child_id: str) -> dict[str, Any]:
        return {
            "kind": "drive#childReference",
            "id": child_id,
            "selfLink": f"{self.renderer.api}files/{folder_id}/children/{child_id}",
            "childLink": f"{self.renderer.api}files/{child_id}",
        }

    def _link(self, child: FileRecord, folder_id: str, user: User, *, add: bool) -> None:
        """Add ``folder_id`` to (or remove it from) the parents of ``child``."""
        if child.is_any_root:
            raise bad_request("A root folder has no parents", location="fileId")
        with self.store.lock:
            parents = list(child.parents)
            if add:
                folder = self._parent_folder(folder_id, user)
                if child.is_folder and self.store.is_descendant(folder, child.id):
                    raise bad_request("A folder cannot be moved into itself or its subfolders", location="parents")
                if folder.id in parents:
                    return
                if (child.drive_id is not None or folder.drive_id is not None) and parents:
                    raise ApiError(403, "teamDrivesParentLimit",
                                   "A shared drive item must have exactly one parent.")
                parents.append(folder.id)
            else:
                real = user.root_id if folder_id == "root" else folder_id
                if real not in parents:
                    raise ApiError(404, "notFound", f"Parent not found: {folder_id}", location="parentId",
                                   location_type="parameter")
                parents.remove(real)
            self.store.set_parents(child, parents)
            self.store.touch(child, by=user.email, modified=child.modified)

    def parents_get(self, req: Request, user: User, file_id: str, parent_id: str) -> Response:
        """``GET files/{id}/parents/{parentId}``."""
        rec = self._file(file_id, user)
        real = user.root_id if parent_id == "root" else parent_id
        if real not in rec.parents:
            raise ApiError(404, "notFound", f"Parent not found: {parent_id}", location="parentId",
                           location_type="parameter")
        return json_response(self.renderer.parent_ref(rec.id, real))

    def parents_insert(self, req: Request, user: User, file_id: str) -> Response:
        """``POST files/{id}/parents`` (body ``{"id": folder}``)."""
        rec = self._file(file_id, user, write=True)
        folder_id = str(req.json_body().get("id") or "")
        if not folder_id:
            raise bad_request("Required: id", location="id", reason="required")
        self._link(rec, folder_id, user, add=True)
        return json_response(self.renderer.parent_ref(rec.id, user.root_id if folder_id == "root" else folder_id))

    def parents_delete(self, req: Request, user: User, file_id: str, parent_id: str) -> Response:
        """``DELETE files/{id}/parents/{parentId}``."""
        self._link(self._file(file_id, user, write=True), parent_id, user, add=False)
        return Response(204)

    def children_get(self, req: Request, user: User, file_id: str, child_id: str) -> Response:
        """``GET files/{folderId}/children/{childId}``."""
        folder = self._file(file_id, user)
        child = self.store.get(child_id)
        if child is None or folder.id not in child.parents or not self.store.can_read(child, user.email):
            raise ApiError(404, "notFound", f"Child not found: {child_id}", location="childId",
                           location_type="parameter")
        return json_response(self._child_ref(folder.id, child.id))

    def children_insert(self, req: Request, user: User, file_id: str) -> Response:
        """``POST files/{folderId}/children`` (body ``{"id": child}``): put a file in a folder."""
        child_id = str(req.json_body().get("id") or "")
        if not child_id:
            raise bad_request("Required: id", location="id", reason="required")
        child = self._file(child_id, user, write=True)
        self._link(child, file_id, user, add=True)
        return json_response(self._child_ref(user.root_id if file_id == "root" else file_id, child.id))

    def children_delete(self, req: Request, user: User, file_id: str, child_id: str) -> Response:
        """``DELETE files/{folderId}/children/{childId}``: take a file out of a folder."""
        self._link(self._file(child_id, user, write=True), file_id, user, add=False)
        return Response(204)

    def children_list(self, req: Request, user: User, file_id: str) -> Response:
        """``GET files/{id}/children`` (``q``, ``maxResults``, ``pageToken``)."""
        folder = self._file(file_id, user)
        predicate = self._plan_q(req.query.get("q", ""), user).predicate
        try:
            max_results = int(req.query.get("maxResults", "100") or "100") or 100
        except ValueError:
            raise bad_request("Invalid value for maxResults", location="maxResults")
        after = int(self._decode_page_token(req.query.get("pageToken")).get("s", 0))
        page: list[FileRecord] = []
        next_token = None
        ctx = _ViewContext(self.store, user.email)
        for r in self.store.children(folder.id):
            if r.seq <= after or not self.store.can_read(r, user.email):
                continue
            if not predicate(_QueryView(r, ctx)):
                continue
            if len(page) == max_results:
                next_token = self._encode_page_token({"s": page[-1].seq})
                break
            page.append(r)
        body: dict[str, Any] = {
            "kind": "drive#childList",
            "etag": etag_of(folder.id, *(r.id for r in page)),
            "selfLink": f"{self.renderer.api}files/{folder.id}/children",
            "items": [
                {
                    "kind": "drive#childReference",
                    "id": r.id,
                    "selfLink": f"{self.renderer.api}files/{folder.id}/children/{r.id}",
                    "childLink": f"{self.renderer.api}files/{r.id}",
                }
                for r in page
            ],
        }
        if next_token:
            body["nextPageToken"] = next_token
        return json_response(body)

    # ------------------------------------------------------------ media

    def media(self, req: Request, rec: FileRecord, *, extra_headers: list[tuple[str, str]] | None = None) -> Response:
        """The content of ``rec``, honouring a single ``Range: bytes=a-b``."""
        return self.media_file(req, rec, None, extra_headers)

    def media_file(
        self,
        req: Request,
        rec: FileRecord,
        rev: dict[str, Any] | None = None,
        extra_headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        """The content of ``rec`` (or of its revision ``rev``), honouring a single ``Range``."""
        if rec.is_folder or not rec.is_binary or not rec.has_blob:
            raise file_not_downloadable(rec.id)
        with self.store.lock:
            if rev is None or rev is (rec.revisions[-1] if rec.revisions else None):
                path, size, md5, mime, tag = self.store.blob_path(rec), rec.size, rec.md5, rec.mime_type, rec.version
                modified = rec.modified
            else:
                path, size, md5 = self.store.revision_blob(rec, rev), int(rev["size"]), rev.get("md5")
                mime, tag, modified = rev.get("mime") or rec.mime_type, rev["id"], float(rev["modified"])
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed by the server
            except FileNotFoundError:
                raise not_found(rec.id)
        headers = [
            ("Content-Type", mime or "application/octet-stream"),
            ("ETag", etag_of(rec.id, tag, md5)),
            ("Last-Modified", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(modified))),
            ("X-Goog-Hash", "md5=" + base64.b64encode(bytes.fromhex(md5 or "")).decode()),
            ("Accept-Ranges", "bytes"),
            *(extra_headers or []),
        ]
        rng = req.header("Range")
        if rng:
            m = _RANGE.match(rng)
            if m and (m.group(1) or m.group(2)):
                first, last = m.group(1), m.group(2)
                if first:
                    start = int(first)
                    end = min(int(last), size - 1) if last else size - 1
                    if last and int(last) < start:
                        f.close()
                        raise bad_request(f"Invalid Range: {rng}", location="Range")
                else:
                    start = max(0, size - int(last))
                    end = size - 1
                if start >= size:
                    f.close()
                    return Response(
                        416,
                        [("Content-Range", f"bytes */{size}"), ("Content-Type", "text/plain")],
                        b"Requested range not satisfiable\n",
                    )
                length = end - start + 1
                headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
                return Response(206, headers, FileBody(f, start, length))
        return Response(200, headers, FileBody(f, 0, size))

    # ----------------------------------------------------------- uploads

    def _upload_location(self, req: Request, session: UploadSession) -> str:
        path = req.path.lstrip("/")
        params = {k: v for k, v in req.query.items() if k not in ("access_token",)}
        params["uploadType"] = "resumable"
        params["upload_id"] = session.id
        return f"{self.base_url}{quote(path)}?{urlencode(params)}"

    def upload(self, req: Request, user: User) -> Response:
        """``/upload/drive/v2/files[/{id}]``: media, multipart, resumable start and chunks."""
        rest = req.path[len(_UPLOAD) :].rstrip("/")
        m = re.fullmatch(r"files(?:/(?P<file_id>[^/]+))?", rest)
        if not m:
            raise ApiError(404, "notFound", f"Not Found: {req.path}")
        target_id = m.group("file_id")
        if "upload_id" in req.query:
            return self._upload_chunk(req, user)
        method = req.method
        if target_id is None and method != "POST":
            raise ApiError(405, "methodNotAllowed", "Use POST to upload a new file")
        if target_id is not None and method not in ("PUT", "PATCH"):
            raise ApiError(405, "methodNotAllowed", "Use PUT to upload new content")
        target = self._file(target_id, user, write=True) if target_id else None
        upload_type = req.query.get("uploadType", "media")
        if upload_type == "resumable":
            return self._upload_start(req, user, target)
        if upload_type == "multipart":
            ctype = req.header("Content-Type") or ""
            if "multipart/" not in ctype.lower():
                raise bad_request("uploadType=multipart needs a multipart/related body", location="uploadType")
            metadata, media_type, media = parse_multipart_related(req.read_body(), ctype)
            writer = self.store.new_blob()
            writer.write(media)
            return self._finish(user, target, metadata, req.query, writer.finish(), media_type)
        if upload_type == "media":
            writer = self.store.new_blob()
            try:
                for chunk in req.iter_body():
                    writer.write(chunk)
            except BaseException:
                writer.abort()
                raise
            return self._finish(user, target, {}, req.query, writer.finish(), req.header("Content-Type"))
        raise bad_request(f"Invalid uploadType: {upload_type}", location="uploadType")

    def _finish(
        self,
        user: User,
        target: FileRecord | None,
        metadata: dict[str, Any],
        params: dict[str, str],
        blob: StagedBlob,
        content_type: str | None,
    ) -> Response:
        try:
            if target is None and _truthy(params.get("convert")):
                blob, metadata = self._convert(blob, metadata, content_type)
            if target is None:
                rec = self._create(metadata, user, params, blob=blob, content_type=content_type)
            else:
                rec = target
                if self.store.get(rec.id) is None:
                    raise not_found(rec.id)
                if is_doc(rec):
                    # New content for a Google Doc/Sheet is converted, as Drive does.
                    source = str(content_type or "")
                    if not source or source.startswith("application/vnd.google-apps."):
                        source = "text/csv" if "spreadsheet" in rec.mime_type else "text/plain"
                    converted = convert_upload(blob.path.read_bytes(), source)
                    if converted is None or converted[0] != rec.mime_type:
                        raise bad_request(f"Cannot convert {content_type} into {rec.mime_type}",
                                          location="mimeType")
                    writer = self.store.new_blob()
                    writer.write(converted[1])
                    blob.path.unlink(missing_ok=True)
                    blob = writer.finish()
                    metadata = {k: v for k, v in metadata.items() if k != "mimeType"}
                with self.store.lock:
                    if rec.is_folder or not (rec.is_binary or is_doc(rec)):
                        raise bad_request("This file cannot have content", location="mimeType")
                    self._edit(rec, metadata, user, params)
                    self.store.attach_blob(rec, blob, by=user.email)
                    if _truthy(params.get("setModifiedDate")) and metadata.get("modifiedDate"):
                        rec.modified = parse_rfc3339(str(metadata["modifiedDate"]))
        except BaseException:
            blob.path.unlink(missing_ok=True)
            raise
        return json_response(self._resource(rec, user))

    def _convert(self, blob: StagedBlob, metadata: dict[str, Any], content_type: str | None) -> tuple[StagedBlob, dict[str, Any]]:
        """``convert=true``: text, HTML and CSV uploads become Google Docs/Sheets (see ``.docs``)."""
        source = str(metadata.get("mimeType") or content_type or "")
        if source.startswith("application/vnd.google-apps.") or blob.size > 50 * 1024 * 1024:
            return blob, metadata
        converted = convert_upload(blob.path.read_bytes(), source)
        if converted is None:
            return blob, metadata
        google_mime, data = converted
        writer = self.store.new_blob()
        writer.write(data)
        blob.path.unlink(missing_ok=True)
        return writer.finish(), {**metadata, "mimeType": google_mime}

    def _upload_start(self, req: Request, user: User, target: FileRecord | None) -> Response:
        metadata = req.json_body()
        total_header = req.header("X-Upload-Content-Length")
        try:
            total = int(total_header) if total_header else None
        except ValueError:
            raise bad_request("Invalid X-Upload-Content-Length", location="X-Upload-Content-Length")
        if target is None:
            # Validate now, as Drive does, so errors come before the bytes.
            self._parents_from(metadata, user)
        session = self.uploads.start(
            user=user.email,
            target_id=target.id if target else None,
            metadata=metadata,
            params=dict(req.query),
            content_type=req.header("X-Upload-Content-Type"),
            total=total,
            writer=self.store.new_blob(),
        )
        location = self._upload_location(req, session)
        return Response(200, [("Location", location), ("X-GUploader-UploadID", session.id)], b"")

    def _upload_chunk(self, req: Request, user: User) -> Response:
        session = self.uploads.get(req.query["upload_id"])
        if session is None or session.user != user.email:
            raise ApiError(404, "notFound", "Upload session not found or expired.", location="upload_id",
                           location_type="parameter")
        if req.method not in ("PUT", "POST"):
            raise ApiError(405, "methodNotAllowed", "Use PUT for upload chunks")
        with session.lock:
            if session.result_id is not None:
                req.drain()
                rec = self.store.get(session.result_id)
                if rec is None:
                    raise not_found(session.result_id)
                return json_response(self._resource(rec, user))
            crange_header = req.header("Content-Range")
            crange = parse_content_range(crange_header) if crange_header else None
            if crange is not None and crange.total is not None:
                if session.total is not None and session.total != crange.total:
                    raise bad_request("Content-Range total does not match the upload's length",
                                      location="Content-Range")
                session.total = crange.total
            if crange is not None and crange.start is None:
                # Status query: report what we have.
                req.drain()
                if session.total is not None and session.received >= session.total:
                    return self._complete(session, user)
                return self._incomplete(session)
            length = req.content_length
            if crange is None:
                start = session.received
                if session.total is None and length is not None:
                    session.total = session.received + length
            else:
                start = crange.start or 0
                assert crange.end is not None
                if length is not None and length != crange.end - start + 1:
                    raise bad_request("Content-Length does not match Content-Range", location="Content-Range")
            if start > session.received:
                # A gap: ignore the chunk, tell the client where we are.
                req.drain()
                return self._incomplete(session)
            skip = session.received - start
            for chunk in req.iter_body():
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk = chunk[skip:]
                    skip = 0
                session.writer.write(chunk)
            if session.total is not None and session.received > session.total:
                raise bad_request("More bytes than the declared length", location="Content-Range")
            if session.total is not None and session.received == session.total:
                return self._complete(session, user)
            return self._incomplete(session)

    @staticmethod
    def _incomplete(session: UploadSession) -> Response:
        headers = [("X-GUploader-UploadID", session.id)]
        if session.received > 0:
            headers.append(("Range", f"bytes=0-{session.received - 1}"))
        return Response(308, headers, b"")

    def _complete(self, session: UploadSession, user: User) -> Response:
        blob = session.writer.finish()
        target = None
        if session.target_id is not None:
            target = self._file(session.target_id, user, write=True)
        response = self._finish(user, target, session.metadata, session.params, blob, session.content_type)
        session.result_id = response.json["id"]
        return response


class _ViewContext:
    """What the query views of one listing share: the viewer and the trashed state of folders."""

    __slots__ = ("_folder_trashed", "email", "store")

    def __init__(self, store: Store, email: str) -> None:
        self.store = store
        self.email = email
        self._folder_trashed: dict[str, bool] = {}

    def trashed(self, rec: FileRecord) -> bool:
        """``store.is_trashed(rec)``, with each parent's answer remembered."""
        if rec.explicitly_trashed:
            return True
        memo = self._folder_trashed
        for pid in rec.parents:
            known = memo.get(pid)
            if known is None:
                parent = self.store.get(pid)
                known = memo[pid] = parent is not None and self.store.is_trashed(parent)
            if known:
                return True
        return False


_ABSENT: Any = object()  # a field the resource does not have
_UNSET: Any = object()  # a field not computed yet


def _view_last_viewed(rec: FileRecord, ctx: _ViewContext) -> Any:
    return rfc3339(rec.modified) if rec.viewed or rec.owner == ctx.email else _ABSENT


_VIEW_FIELDS: dict[str, Callable[[FileRecord, _ViewContext], Any]] = {
    "id": lambda rec, ctx: rec.id,
    "title": lambda rec, ctx: rec.title,
    "mimeType": lambda rec, ctx: rec.mime_type,
    "parents": lambda rec, ctx: [{"id": p} for p in rec.parents],
    "owners": lambda rec, ctx: [] if rec.drive_id is not None else [{"emailAddress": rec.owner}],
    "labels": lambda rec, ctx: {"trashed": ctx.trashed(rec), "starred": rec.starred, "hidden": rec.hidden},
    "sharedWithMe": lambda rec, ctx: ctx.store.shared_directly_with(rec, ctx.email),
    "modifiedDate": lambda rec, ctx: rfc3339(rec.modified),
    "createdDate": lambda rec, ctx: rfc3339(rec.created),
    "lastViewedByMeDate": _view_last_viewed,
    "shortcutDetails": lambda rec, ctx: {"targetId": rec.shortcut_target} if rec.shortcut_target else _ABSENT,
    "properties": lambda rec, ctx: rec.properties,
}
"""How each field the ``q`` language reads is made from a record, for one viewer."""


class _QueryView(Mapping[str, Any]):
    """A read-only Drive v2 resource with only the fields ``q`` reads, each computed on first use."""

    __slots__ = ("_ctx", "_rec", "_values")

    def __init__(self, rec: FileRecord, ctx: _ViewContext) -> None:
        self._rec = rec
        self._ctx = ctx
        self._values: dict[str, Any] = {}

    def _value(self, key: str) -> Any:
        values = self._values
        value = values.get(key, _UNSET)
        if value is not _UNSET:
            return value
        make = _VIEW_FIELDS.get(key)
        value = _ABSENT if make is None else make(self._rec, self._ctx)
        values[key] = value
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._value(key)
        return default if value is _ABSENT else value

    def __getitem__(self, key: str) -> Any:
        value = self._value(key)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter([k for k in _VIEW_FIELDS if self._value(k) is not _ABSENT])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _modified_of(rec: FileRecord) -> Any:
    return rec.modified


def _title_of(rec: FileRecord) -> str:
    return rec.title.lower()


_ORDER_VALUES: dict[str, Callable[[FileRecord], Any]] = {
    "folder": lambda rec: 0 if rec.is_folder else 1,
    "title": _title_of,
    "title_natural": _title_of,
    "createdDate": lambda rec: rec.created,
    "quotaBytesUsed": lambda rec: rec.size,
    "starred": lambda rec: 0 if rec.starred else 1,
}
"""Each ``orderBy`` column's value; the other dates sort by ``modified``."""


def _descending(getter: Callable[[FileRecord], Any]) -> Callable[[FileRecord], Any]:
    def value(rec: FileRecord) -> Any:
        v = getter(rec)
        return -v if isinstance(v, (int, float)) else _Desc(v)

    return value


class _Desc:
    """Reverses the ordering of a non-numeric sort key."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Desc) -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and other.v == self.v


def _wanted_fields(fields: str | None, *, within: str) -> frozenset[str] | None:
    """The top-level fields of each resource in ``within`` that a ``fields`` selection keeps
    (None: all of them)."""
    if not fields:
        return None
    tree = parse_strict(fields)
    if tree is None:  # "*"
        return None
    sub = tree.get(within, {})
    if not isinstance(sub, dict) or "*" in sub:
        return None  # the whole resource
    return frozenset(sub)


def _wants_permissions(fields: str | None, *, within: str | None = None) -> bool:
    """Whether a ``fields`` selection asks for ``permissions`` (by name, or ``*``): real Drive
    leaves them out of file resources unless asked (``within``: the list's ``items``)."""
    if not fields:
        return False
    tree = parse_strict(fields)
    if tree is None:  # "*"
        return True
    if within is not None:
        tree = tree.get(within)
        if not isinstance(tree, dict):
            return False
    return "permissions" in tree or "*" in tree
