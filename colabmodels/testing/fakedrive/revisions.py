"""Revisions: ``revisions.list/get/patch/update/delete`` and downloads of old content.

Every content upload (new file, ``files.update`` with media, ``FakeDrive.put``
with ``replace=True``) makes a revision; the newest is the file's
``headRevisionId``. Older revisions keep their bytes (renamed blob files, so no
copy), up to ``Store.max_revisions`` (100, as Drive keeps; pinned ones are never
purged). Old content is downloaded with ``files.get(fileId, revisionId=R,
alt=media)`` (googleapiclient's ``get_media(..., revisionId=R)``) or through the
revision's ``downloadUrl``. The head revision cannot be deleted (400
``cannotDeleteHeadRevision``); revisions of Docs files cannot be deleted (403
``revisionDeletionNotSupported``); ``pinned`` can be set on binary files only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ApiError, bad_request
from .handlers import ApiMixin, RouteTable
from .resources import etag_of, rfc3339
from .server import Request, Response, json_response

if TYPE_CHECKING:
    from .store import FileRecord, User

__all__ = ["RevisionsApi"]


def _revision_not_found(rev_id: str) -> ApiError:
    return ApiError(404, "notFound", f"Revision not found: {rev_id}.", location="revisionId",
                    location_type="parameter")


class RevisionsApi(ApiMixin):
    """``files/{id}/revisions[/{revisionId}]``."""

    def routes(self) -> RouteTable:
        base = r"files/(?P<file_id>[^/]+)/revisions"
        rid = r"(?P<rev_id>[^/]+)"
        return [
            ("GET", base, self.revisions_list),
            ("GET", rf"{base}/{rid}", self.revisions_get),
            ("PATCH", rf"{base}/{rid}", self.revisions_patch),
            ("PUT", rf"{base}/{rid}", self.revisions_patch),
            ("DELETE", rf"{base}/{rid}", self.revisions_delete),
        ]

    def media_file(self, req: Request, rec: FileRecord, rev: dict[str, Any] | None = None,
                   extra_headers: list[tuple[str, str]] | None = None) -> Response:
        raise NotImplementedError

    def render_revision(self, rec: FileRecord, rev: dict[str, Any], viewer: str) -> dict[str, Any]:
        """A ``drive#revision``."""
        from .docs import export_links, is_doc

        api = self.renderer.api
        body: dict[str, Any] = {
            "kind": "drive#revision",
            "etag": etag_of(rec.id, rev["id"], rev.get("pinned"), rev.get("published")),
            "id": rev["id"],
            "selfLink": f"{api}files/{rec.id}/revisions/{rev['id']}",
            "mimeType": rev.get("mime") or rec.mime_type,
            "modifiedDate": rfc3339(rev["modified"]),
            "pinned": bool(rev.get("pinned")),
            "published": bool(rev.get("published")),
            "publishAuto": bool(rev.get("publishAuto")),
            "publishedOutsideDomain": bool(rev.get("publishedOutsideDomain")),
            "lastModifyingUserName": self.renderer.user(rev.get("user") or rec.owner, viewer)["displayName"],
            "lastModifyingUser": self.renderer.user(rev.get("user") or rec.owner, viewer),
        }
        if is_doc(rec):
            body["exportLinks"] = export_links(self.base_url, rec)
        elif rec.is_binary:
            drives = "&supportsAllDrives=true" if rec.drive_id else ""
            body["downloadUrl"] = f"{api}files/{rec.id}?alt=media&revisionId={rev['id']}&source=downloadUrl{drives}"
            body["md5Checksum"] = rev.get("md5") or ""
            body["fileSize"] = str(rev.get("size", 0))
            body["originalFilename"] = rev.get("title") or rec.title
        return body

    def find_revision(self, rec: FileRecord, rev_id: str) -> dict[str, Any]:
        """The revision ``rev_id`` of ``rec`` (``head`` is the newest), else 404."""
        if rev_id == "head" and rec.revisions:
            return rec.revisions[-1]
        for rev in rec.revisions:
            if rev["id"] == rev_id:
                return rev
        raise _revision_not_found(rev_id)

    def _revisable(self, file_id: str, user: User) -> FileRecord:
        rec = self._file(file_id, user)
        if rec.is_folder or rec.shortcut_target:
            raise ApiError(403, "revisionsNotSupported", "The file does not support revisions.")
        return rec

    def revisions_list(self, req: Request, user: User, file_id: str) -> Response:
        """``GET files/{id}/revisions`` (``maxResults`` 1..1000, default 200; ``pageToken``)."""
        rec = self._revisable(file_id, user)
        try:
            max_results = int(req.query.get("maxResults", "200") or "200")
        except ValueError:
            raise bad_request("Invalid value for maxResults", location="maxResults")
        if not 1 <= max_results <= 1000:
            raise bad_request("maxResults must be within [1, 1000]", location="maxResults")
        token = req.query.get("pageToken") or "0"
        if not token.isdigit():
            raise bad_request(f"Invalid Value: pageToken {token!r}", location="pageToken")
        start = int(token)
        revs = rec.revisions[start : start + max_results]
        body: dict[str, Any] = {
            "kind": "drive#revisionList",
            "etag": etag_of(rec.id, *(r["id"] for r in revs)),
            "selfLink": f"{self.renderer.api}files/{rec.id}/revisions",
            "items": [self.render_revision(rec, r, user.email) for r in revs],
        }
        if start + max_results < len(rec.revisions):
            body["nextPageToken"] = str(start + max_results)
        return json_response(body)

    def revisions_get(self, req: Request, user: User, file_id: str, rev_id: str) -> Response:
        """``GET files/{id}/revisions/{revisionId}`` (``alt=media``: that revision's content)."""
        rec = self._revisable(file_id, user)
        rev = self.find_revision(rec, rev_id)
        if req.query.get("alt") == "media":
            return self.media_file(req, rec, rev)
        return json_response(self.render_revision(rec, rev, user.email))

    def revisions_patch(self, req: Request, user: User, file_id: str, rev_id: str) -> Response:
        """``PATCH|PUT files/{id}/revisions/{revisionId}``: ``pinned``, ``published``..."""
        rec = self._file(file_id, user, write=True)
        rev = self.find_revision(rec, rev_id)
        body = req.json_body()
        if "pinned" in body:
            if not rec.is_binary:
                raise bad_request("Only revisions of files with binary content can be pinned.", location="pinned")
            if not body["pinned"] and rev is rec.revisions[-1]:
                raise bad_request("The head revision cannot be unpinned.", location="pinned")
            rev["pinned"] = bool(body["pinned"])
        for name in ("published", "publishAuto", "publishedOutsideDomain"):
            if name in body:
                if rec.is_binary:
                    raise bad_request("Only Docs Editors files can be published.", location=name)
                rev[name] = bool(body[name])
        self.store.dirty = True
        return json_response(self.render_revision(rec, rev, user.email))

    def revisions_delete(self, req: Request, user: User, file_id: str, rev_id: str) -> Response:
        """``DELETE files/{id}/revisions/{revisionId}``: not the head, not of Docs files."""
        rec = self._file(file_id, user, write=True)
        rev = self.find_revision(rec, rev_id)
        if not rec.is_binary:
            raise ApiError(403, "revisionDeletionNotSupported",
                           "Revisions of Docs Editors files cannot be deleted.")
        if rev is rec.revisions[-1]:
            raise bad_request("The head revision cannot be deleted.", reason="cannotDeleteHeadRevision")
        self.store.drop_revision(rec, rev)
        return Response(204)
