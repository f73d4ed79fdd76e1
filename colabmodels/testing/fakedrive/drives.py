"""Shared drives: ``drives.*`` and the deprecated ``teamdrives.*`` of Drive v2.

A shared drive is a ``SharedDrive`` plus a root folder record with
the same id; files below it carry ``driveId``. Members (``organizer``,
``fileOrganizer``, ``writer``, ``commenter``, ``reader``) get their role on
everything in the drive. Files in shared drives are invisible to requests
without ``supportsAllDrives=true`` (404, as on Drive) and are listed only with
``includeItemsFromAllDrives=true`` (see ``DriveApp.files_list``).

Endpoints: ``GET|POST drives``, ``GET|PUT|DELETE drives/{id}``,
``POST drives/{id}/hide|unhide``; the same under ``teamdrives`` (with
``drive#teamDrive`` resources). ``drives.list`` takes ``q`` with the
shared-drive terms ``name`` (``= != contains``), ``hidden``,
``createdTime``/``createdDate``, ``memberCount`` and ``organizerCount``.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ApiError, bad_request, insufficient_permissions
from .handlers import ApiMixin, RouteTable, truthy
from .resources import rfc3339
from .server import Request, Response, json_response
from .store import ROLE_RANK, SharedDrive, User

__all__ = ["DrivesApi", "drive_not_found"]

_RESTRICTIONS = (
    "adminManagedRestrictions",
    "copyRequiresWriterPermission",
    "domainUsersOnly",
    "driveMembersOnly",
    "sharingFoldersRequiresOrganizerPermission",
)


def drive_not_found(drive_id: str) -> ApiError:
    """404 for a shared drive that does not exist or that the caller is not a member of."""
    return ApiError(404, "notFound", f"Shared drive not found: {drive_id}", location="driveId",
                    location_type="parameter")


class DrivesApi(ApiMixin):
    """``drives.*`` and ``teamdrives.*``."""

    _request_ids: dict[str, str]

    def routes(self) -> RouteTable:
        out: RouteTable = []
        for coll in ("drives", "teamdrives"):
            did = r"(?P<drive_id>[^/]+)"
            out += [
                ("GET", coll, self.drives_list),
                ("POST", coll, self.drives_insert),
                ("GET", rf"{coll}/{did}", self.drives_get),
                ("PUT", rf"{coll}/{did}", self.drives_update),
                ("PATCH", rf"{coll}/{did}", self.drives_update),
                ("DELETE", rf"{coll}/{did}", self.drives_delete),
            ]
        out += [
            ("POST", r"drives/(?P<drive_id>[^/]+)/hide", self.drives_hide),
            ("POST", r"drives/(?P<drive_id>[^/]+)/unhide", self.drives_unhide),
        ]
        return out

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _team(req: Request) -> bool:
        return req.path.startswith("/drive/v2/teamdrives")

    def _drive(self, drive_id: str, user: User, req: Request) -> SharedDrive:
        drive = self.store.drives.get(drive_id)
        admin = truthy(req.query.get("useDomainAdminAccess"))
        if drive is None or (user.email not in drive.members and not admin):
            raise drive_not_found(drive_id)
        return drive

    def render_drive(self, drive: SharedDrive, email: str, *, team: bool = False) -> dict[str, Any]:
        """A ``drive#drive`` (or ``drive#teamDrive``) as ``email`` sees it."""
        role = drive.members.get(email)
        rank = ROLE_RANK.get(role or "", 0)
        organizer = rank >= ROLE_RANK["organizer"]
        manager = rank >= ROLE_RANK["fileOrganizer"]
        writer = rank >= ROLE_RANK["writer"]
        reader = rank >= ROLE_RANK["reader"]
        caps = {
            "canAddChildren": writer,
            "canComment": rank >= ROLE_RANK["commenter"],
            "canCopy": reader,
            "canDeleteChildren": manager,
            "canDownload": reader,
            "canEdit": writer,
            "canListChildren": reader,
            "canManageMembers": organizer,
            "canReadRevisions": reader,
            "canRename": organizer,
            "canRenameDrive" if not team else "canRenameTeamDrive": organizer,
            "canShare": manager,
            "canTrashChildren": manager,
            "canChangeDriveBackground" if not team else "canChangeTeamDriveBackground": organizer,
            "canChangeCopyRequiresWriterPermissionRestriction": organizer,
            "canChangeDomainUsersOnlyRestriction": organizer,
            "canChangeDriveMembersOnlyRestriction" if not team else "canChangeTeamMembersOnlyRestriction": organizer,
        }
        if not team:
            caps["canDeleteDrive"] = organizer
        else:
            caps["canDeleteTeamDrive"] = organizer
            caps["canRemoveChildren"] = manager
        restrictions = {k: bool(drive.restrictions.get(k, False)) for k in _RESTRICTIONS}
        if team:
            restrictions["teamMembersOnly"] = restrictions.pop("driveMembersOnly")
        body: dict[str, Any] = {
            "kind": "drive#teamDrive" if team else "drive#drive",
            "id": drive.id,
            "name": drive.name,
            "createdDate": rfc3339(drive.created),
            "colorRgb": drive.color_rgb,
            "themeId": "abacus",
            "backgroundImageLink": f"{self.base_url}drive-backgrounds/{drive.id}.jpg",
            "capabilities": caps,
            "restrictions": restrictions,
        }
        if not team:
            body["hidden"] = drive.hidden
        return body

    def _drive_query(self, q: str) -> Any:
        from .query import QueryError, compile_drive_query

        try:
            return compile_drive_query(q)
        except QueryError as e:
            raise bad_request(f"Invalid Value: {e}", location="q")

    # ---------------------------------------------------------- handlers

    def drives_list(self, req: Request, user: User) -> Response:
        """``GET drives``: the shared drives the user is a member of (all with useDomainAdminAccess)."""
        team = self._team(req)
        try:
            max_results = int(req.query.get("maxResults", "10") or "10")
        except ValueError:
            raise bad_request("Invalid value for maxResults", location="maxResults")
        if not 1 <= max_results <= 100:
            raise bad_request(
                f"Invalid value '{max_results}'. Values must be within the range: [1, 100]", location="maxResults"
            )
        admin = truthy(req.query.get("useDomainAdminAccess"))
        predicate = self._drive_query(req.query.get("q", ""))
        start = 0
        token = req.query.get("pageToken")
        if token:
            if not re.fullmatch(r"d\d+", token):
                raise bad_request(f"Invalid Value: pageToken {token!r}", location="pageToken")
            start = int(token[1:])
        drives = [
            d
            for d in sorted(self.store.drives.values(), key=lambda d: (d.created, d.id))
            if (admin or user.email in d.members) and predicate(self._drive_view(d))
        ]
        page = drives[start : start + max_results]
        body: dict[str, Any] = {
            "kind": "drive#teamDriveList" if team else "drive#driveList",
            "items": [self.render_drive(d, user.email, team=team) for d in page],
        }
        if start + max_results < len(drives):
            body["nextPageToken"] = f"d{start + max_results}"
        return json_response(body)

    @staticmethod
    def _drive_view(d: SharedDrive) -> dict[str, Any]:
        return {
            "name": d.name,
            "hidden": d.hidden,
            "createdTime": rfc3339(d.created),
            "memberCount": len(d.members),
            "organizerCount": sum(1 for r in d.members.values() if r == "organizer"),
        }

    def drives_get(self, req: Request, user: User, drive_id: str) -> Response:
        """``GET drives/{id}``."""
        return json_response(self.render_drive(self._drive(drive_id, user, req), user.email, team=self._team(req)))

    def drives_insert(self, req: Request, user: User) -> Response:
        """``POST drives?requestId=``: create a shared drive; the caller becomes its organizer."""
        request_id = req.query.get("requestId")
        if not request_id:
            raise bad_request("Required parameter: requestId", location="requestId", reason="required")
        body = req.json_body()
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("A shared drive needs a name.", location="name", reason="required")
        with self.store.lock:
            if not hasattr(self, "_request_ids"):
                self._request_ids = {}
            if request_id in self._request_ids:
                raise ApiError(409, "duplicate", "A shared drive with this requestId already exists.",
                               location="requestId", location_type="parameter")
            drive = self.store.add_shared_drive(name, creator=user.email)
            self._request_ids[request_id] = drive.id
            self._apply_drive_body(drive, body)
        return json_response(self.render_drive(drive, user.email, team=self._team(req)))

    def _apply_drive_body(self, drive: SharedDrive, body: dict[str, Any]) -> None:
        if isinstance(body.get("name"), str) and body["name"].strip():
            drive.name = body["name"]
            root = self.store.get(drive.id)
            if root is not None:
                root.title = drive.name
                self.store.note_change(root)
        if isinstance(body.get("colorRgb"), str):
            drive.color_rgb = body["colorRgb"]
        restrictions = body.get("restrictions")
        if isinstance(restrictions, dict):
            for k, v in restrictions.items():
                key = "driveMembersOnly" if k == "teamMembersOnly" else k
                if key in _RESTRICTIONS:
                    drive.restrictions[key] = bool(v)
        self.store.dirty = True

    def drives_update(self, req: Request, user: User, drive_id: str) -> Response:
        """``PUT drives/{id}``: rename, colour, restrictions (organizers only)."""
        drive = self._drive(drive_id, user, req)
        if drive.members.get(user.email) != "organizer" and not truthy(req.query.get("useDomainAdminAccess")):
            raise insufficient_permissions("The user does not have sufficient permissions for this shared drive.")
        with self.store.lock:
            self._apply_drive_body(drive, req.json_body())
        return json_response(self.render_drive(drive, user.email, team=self._team(req)))

    def drives_delete(self, req: Request, user: User, drive_id: str) -> Response:
        """``DELETE drives/{id}``: only an empty drive, unless ``allowItemDeletion`` (admin)."""
        drive = self._drive(drive_id, user, req)
        if drive.members.get(user.email) != "organizer":
            raise insufficient_permissions("The user does not have sufficient permissions for this shared drive.")
        allow = truthy(req.query.get("allowItemDeletion")) and truthy(req.query.get("useDomainAdminAccess"))
        if self.store.children(drive.id) and not allow:
            raise ApiError(403, "cannotDeleteNonemptyDrive",
                           "The shared drive cannot be deleted because it contains items.")
        self.store.delete_shared_drive(drive)
        return Response(204)

    def _set_hidden(self, req: Request, user: User, drive_id: str, hidden: bool) -> Response:
        drive = self._drive(drive_id, user, req)
        drive.hidden = hidden
        self.store.dirty = True
        return json_response(self.render_drive(drive, user.email))

    def drives_hide(self, req: Request, user: User, drive_id: str) -> Response:
        """``POST drives/{id}/hide``."""
        return self._set_hidden(req, user, drive_id, True)

    def drives_unhide(self, req: Request, user: User, drive_id: str) -> Response:
        """``POST drives/{id}/unhide``."""
        return self._set_hidden(req, user, drive_id, False)

