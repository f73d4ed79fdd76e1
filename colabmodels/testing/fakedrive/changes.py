"""The change feed: ``changes.getStartPageToken``, ``changes.list`` and ``changes.get``.

Every change to a file (create, content, metadata, move, trash, sharing) gives
it the next change id; a deletion leaves a tombstone with its own id. As on
Drive, a file appears once in the feed, with its newest change, and change ids
are increasing integers (strings on the wire):

* ``GET changes/startPageToken`` -> ``{"startPageToken": "N"}``, the id the
  next change will get;
* ``GET changes?pageToken=N`` (or the v2 ``startChangeId=N``) lists changes with
  id >= N that the caller can see, ``maxResults`` at a time (default 100); the
  last page carries ``newStartPageToken`` to poll with next time, every page
  ``largestChangeId`` (also in ``about``);
* ``includeDeleted`` (default true), ``includeItemsFromAllDrives`` with
  ``supportsAllDrives`` (shared-drive items), ``driveId`` (only that shared
  drive), ``spaces``.

So "did anything in folder F change since token T?" is one
``changes.list(pageToken=T)`` and a look at each item's ``file.parents``.
``changes.watch`` (push notifications to a web hook) is not emulated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .drives import drive_not_found
from .errors import ApiError, bad_request
from .handlers import ApiMixin, RouteTable, truthy
from .resources import etag_of, rfc3339
from .server import Request, Response, json_response

if TYPE_CHECKING:
    from .store import FileRecord, User

__all__ = ["ChangesApi"]


class ChangesApi(ApiMixin):
    """``changes/startPageToken``, ``changes``, ``changes/{changeId}``."""

    def routes(self) -> RouteTable:
        return [
            ("GET", r"changes/startPageToken", self.changes_start_token),
            ("GET", r"changes", self.changes_list),
            ("GET", r"changes/(?P<change_id>\d+)", self.changes_get),
        ]

    def _drive_filter(self, req: Request, user: User) -> str | None:
        drive_id = req.query.get("driveId") or req.query.get("teamDriveId")
        if drive_id:
            if not (truthy(req.query.get("supportsAllDrives")) or truthy(req.query.get("supportsTeamDrives"))):
                raise bad_request("The driveId parameter requires supportsAllDrives=true.", location="driveId")
            drive = self.store.drives.get(drive_id)
            if drive is None or user.email not in drive.members:
                raise drive_not_found(drive_id)
        return drive_id

    def changes_start_token(self, req: Request, user: User) -> Response:
        """``GET changes/startPageToken``."""
        self._drive_filter(req, user)
        return json_response({"kind": "drive#startPageToken", "startPageToken": str(self.store.change_counter + 1)})

    def _change(self, change_id: int, file_id: str, when: float, rec: FileRecord | None, user: User) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "drive#change",
            "id": str(change_id),
            "selfLink": f"{self.renderer.api}changes/{change_id}",
            "type": "file",
            "changeType": "file",
            "fileId": file_id,
            "deleted": rec is None,
            "modificationDate": rfc3339(when),
        }
        if rec is not None:
            body["file"] = self._resource(rec, user)
            if rec.drive_id is not None:
                body["driveId"] = body["teamDriveId"] = rec.drive_id
        return body

    def _entries(self, req: Request, user: User) -> list[tuple[int, str, float, FileRecord | None]]:
        store = self.store
        drive_id = self._drive_filter(req, user)
        all_drives = (truthy(req.query.get("includeItemsFromAllDrives"))
                      or truthy(req.query.get("includeTeamDriveItems")))
        supports = truthy(req.query.get("supportsAllDrives")) or truthy(req.query.get("supportsTeamDrives"))
        include_deleted = req.query.get("includeDeleted", "true").lower() != "false"
        spaces = {s.strip() for s in (req.query.get("spaces") or "drive").split(",") if s.strip()}
        out: list[tuple[int, str, float, FileRecord | None]] = []
        if "drive" not in spaces:
            return out

        def wanted_drive(rec_drive: str | None) -> bool:
            if drive_id is not None:
                return rec_drive == drive_id
            return rec_drive is None or (all_drives and supports)

        with store.lock:
            for rec in store.files.values():
                if rec.is_any_root or rec.change_id == 0 or not wanted_drive(rec.drive_id):
                    continue
                if store.can_read(rec, user.email):
                    out.append((rec.change_id, rec.id, rec.modified, rec))
            if include_deleted:
                for t in store.tombstones:
                    if user.email in t["viewers"] and wanted_drive(t.get("drive_id")):
                        out.append((int(t["change_id"]), t["file_id"], float(t["time"]), None))
        out.sort(key=lambda e: e[0])
        return out

    def changes_list(self, req: Request, user: User) -> Response:
        """``GET changes``."""
        token = req.query.get("pageToken") or req.query.get("startChangeId") or "1"
        if not token.isdigit():
            raise bad_request(f"Invalid Value: pageToken {token!r}", location="pageToken")
        start = int(token)
        try:
            max_results = int(req.query.get("maxResults", "100") or "100")
        except ValueError:
            raise bad_request("Invalid value for maxResults", location="maxResults")
        if not 1 <= max_results <= 1000:
            raise bad_request("maxResults must be within [1, 1000]", location="maxResults")
        largest = self.store.change_counter
        entries = [e for e in self._entries(req, user) if e[0] >= start]
        page = entries[:max_results]
        items = [self._change(cid, fid, when, rec, user) for cid, fid, when, rec in page]
        body: dict[str, Any] = {
            "kind": "drive#changeList",
            "etag": etag_of("changes", user.email, start, largest),
            "selfLink": self.base_url.rstrip("/") + req.target,
            "largestChangeId": str(largest),
            "items": items,
        }
        if len(entries) > max_results:
            next_token = str(page[-1][0] + 1)
            body["nextPageToken"] = next_token
            params = {k: v for k, v in req.query.items() if k not in ("pageToken", "startChangeId", "access_token")}
            params["pageToken"] = next_token
            body["nextLink"] = f"{self.renderer.api}changes?{urlencode(params)}"
        else:
            body["newStartPageToken"] = str(largest + 1)
        return json_response(body)

    def changes_get(self, req: Request, user: User, change_id: str) -> Response:
        """``GET changes/{changeId}``: a change that is still the newest of its file."""
        wanted = int(change_id)
        for cid, fid, when, rec in self._entries(req, user):
            if cid == wanted:
                return json_response(self._change(cid, fid, when, rec, user))
        raise ApiError(404, "notFound", f"Change not found: {change_id}", location="changeId",
                       location_type="parameter")
