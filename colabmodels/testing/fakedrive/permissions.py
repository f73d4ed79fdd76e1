"""Permissions: ``permissions.list/get/insert/update/patch/delete`` and ``permissionIds``.

A file's permissions are its owner, plus what was shared on it directly:

* ``user`` and ``group`` (``value``/``emailAddress`` an address) with roles
  ``reader``, ``commenter`` (v2 shows it as ``reader`` + ``additionalRoles:
  ["commenter"]``) and ``writer``; ``owner`` transfers ownership (the old
  owner becomes a writer). Their id is the account's permission id (20 digits,
  the same as ``permissionId`` in ``about`` and ``drive#user``); a group's
  members are set with ``FakeDrive.add_group``;
* ``domain`` (``value`` a domain such as ``example.com``): every account of
  that domain gets the role; id: 20 digits followed by ``k``;
* ``anyone``: id ``anyoneWithLink`` (``withLink: true``, the default: readable
  by link, also signed out through the web download paths) or ``anyone``
  (``withLink: false``, discoverable).

Access is inherited: a grant on a folder applies to everything below it; the
list shows only the grants made on the file itself (and the owner). On a
shared drive's root (``fileId`` = drive id) the permissions are the drive's
members (roles ``organizer``, ``fileOrganizer``, ``writer``, ``commenter``,
``reader``); files inside list the members as inherited permissions
(``permissionDetails``). Deleting a permission revokes the access at once; the
owner's permission cannot be deleted (403 ``cannotRemoveOwner``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .errors import ApiError, bad_request, insufficient_permissions
from .handlers import ApiMixin, RouteTable, truthy
from .resources import etag_of
from .server import Request, Response, json_response
from .store import normalize_email

if TYPE_CHECKING:
    from .resources import Renderer
    from .store import FileRecord, Store, User

__all__ = ["PermissionsApi", "permission_id_for", "permission_list"]

_ROLES = ("reader", "commenter", "writer", "fileOrganizer", "organizer", "owner")
_DRIVE_ROLES = ("reader", "commenter", "writer", "fileOrganizer", "organizer")


def _digits(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return str(int(digest, 16))[:20].rjust(20, "0")


def permission_id_for(store: Store, kind: str, value: str, *, with_link: bool = True) -> str:
    """The permission id Drive would give a grant of ``kind`` to ``value``."""
    if kind == "anyone":
        return "anyoneWithLink" if with_link else "anyone"
    if kind == "domain":
        return _digits("domain:" + value)[:20] + "k"
    user = store.users.get(value)
    return user.permission_id if user is not None else _digits("user:" + value)


def _not_found(perm_id: str) -> ApiError:
    return ApiError(404, "notFound", f"Permission not found: {perm_id}.", location="permissionId",
                    location_type="parameter")


def permission_list(renderer: Renderer, rec: FileRecord) -> list[dict[str, Any]]:
    """Every ``drive#permission`` of ``rec``."""
    store = renderer.store
    out: list[dict[str, Any]] = []
    if rec.drive_id is not None:
        drive = store.drives.get(rec.drive_id)
        for email, role in (drive.members.items() if drive else ()):
            kind = "group" if email in store.groups else "user"
            detail: dict[str, Any] = {"permissionType": "member", "role": role, "inherited": not rec.is_drive_root}
            if not rec.is_drive_root:
                detail["inheritedFrom"] = rec.drive_id
            out.append(renderer.permission(
                rec, perm_id=permission_id_for(store, kind, email), kind=kind, role=role, email=email,
                details=[detail],
            ))
    else:
        out.append(renderer.permission(
            rec, perm_id=permission_id_for(store, "user", rec.owner), kind="user", role="owner", email=rec.owner
        ))
    for email in rec.writers:
        out.append(renderer.permission(
            rec, perm_id=permission_id_for(store, "user", email), kind="user", role="writer", email=email
        ))
    for email in rec.readers:
        if email not in rec.writers:
            out.append(renderer.permission(
                rec, perm_id=permission_id_for(store, "user", email), kind="user", role="reader", email=email
            ))
    if rec.public:
        out.append(renderer.permission(rec, perm_id="anyoneWithLink", kind="anyone", role="reader", with_link=True))
    for g in rec.grants:
        out.append(renderer.permission(
            rec,
            perm_id=g["id"],
            kind=g["type"],
            role=g["role"],
            email=g.get("email"),
            domain=g.get("domain"),
            with_link=g.get("withLink"),
        ))
    # Drive lists an "anyone" permission first (the owner after it), whenever it was added.
    return sorted(out, key=lambda p: p["type"] != "anyone")


class PermissionsApi(ApiMixin):
    """``files/{id}/permissions[/{permissionId}]`` and ``permissionIds/{email}``."""

    def routes(self) -> RouteTable:
        fid = r"files/(?P<file_id>[^/]+)/permissions"
        pid = r"(?P<perm_id>[^/]+)"
        return [
            ("GET", fid, self.permissions_list),
            ("POST", fid, self.permissions_insert),
            ("GET", rf"{fid}/{pid}", self.permissions_get),
            ("PATCH", rf"{fid}/{pid}", self.permissions_patch),
            ("PUT", rf"{fid}/{pid}", self.permissions_patch),
            ("DELETE", rf"{fid}/{pid}", self.permissions_delete),
            ("GET", r"permissionIds/(?P<email>[^/]+)", self.permission_id_get),
        ]

    # ------------------------------------------------------------ helpers

    def _find(self, rec: FileRecord, perm_id: str, email: str) -> dict[str, Any]:
        if perm_id == "me":
            perm_id = permission_id_for(self.store, "user", email)
        for p in self.renderer.permissions(rec, email):
            if p["id"] == perm_id:
                return p
        raise _not_found(perm_id)

    def _may_share(self, rec: FileRecord, user: User) -> None:
        if not self.store.can_write(rec, user.email):
            raise insufficient_permissions(
                "The user does not have sufficient permissions for this file." if rec.drive_id is None
                else "The user does not have sufficient permissions to share items in this shared drive."
            )

    @staticmethod
    def _role(body: dict[str, Any], *, drive: bool) -> str:
        role = body.get("role")
        extra = body.get("additionalRoles") or []
        if role == "reader" and isinstance(extra, list) and "commenter" in extra:
            role = "commenter"
        allowed = _DRIVE_ROLES if drive else _ROLES
        if role not in allowed:
            raise bad_request(f"Invalid permission role: {role}", location="role")
        return str(role)

    # ---------------------------------------------------------- handlers

    def permissions_list(self, req: Request, user: User, file_id: str) -> Response:
        """``GET files/{id}/permissions``."""
        rec = self._file(file_id, user)
        return json_response(
            {
                "kind": "drive#permissionList",
                "etag": etag_of(rec.id, rec.version, rec.change_id, "perms"),
                "selfLink": f"{self.renderer.api}files/{rec.id}/permissions",
                "items": self.renderer.permissions(rec, user.email),
            }
        )

    def permissions_get(self, req: Request, user: User, file_id: str, perm_id: str) -> Response:
        """``GET files/{id}/permissions/{permissionId}``."""
        rec = self._file(file_id, user)
        return json_response(self._find(rec, perm_id, user.email))

    def permission_id_get(self, req: Request, user: User, email: str) -> Response:
        """``GET permissionIds/{email}``."""
        address = normalize_email(unquote(email))
        return json_response({"kind": "drive#permissionId",
                              "id": permission_id_for(self.store, "user", address)})

    def permissions_insert(self, req: Request, user: User, file_id: str) -> Response:
        """``POST files/{id}/permissions``."""
        rec = self._file(file_id, user)
        self._may_share(rec, user)
        body = req.json_body()
        kind = body.get("type")
        store = self.store
        if rec.is_drive_root:
            return self._insert_member(req, user, rec, body)
        role = self._role(body, drive=rec.drive_id is not None)
        with store.lock:
            if kind in ("user", "group"):
                email = normalize_email(str(body.get("value") or body.get("emailAddress") or "x"))
                if "@" not in str(body.get("value") or body.get("emailAddress") or ""):
                    raise bad_request("Permission value must be an email address", location="value")
                if kind == "user":
                    store.add_user(email)
                elif email not in store.groups:
                    store.groups[email] = []
                if role == "owner":
                    self._transfer(rec, user, email)
                    perm_id = permission_id_for(store, kind, email)
                else:
                    perm_id = permission_id_for(store, kind, email)
                    self._set_grant(rec, kind, email, role, perm_id)
            elif kind == "domain":
                domain = str(body.get("value") or body.get("domain") or "").strip().lower()
                if not domain or "@" in domain or "." not in domain:
                    raise bad_request("Permission value must be a domain name", location="value")
                if role in ("owner", "organizer", "fileOrganizer"):
                    raise bad_request(f"Invalid permission role: {role}", location="role")
                with_link = bool(body.get("withLink", False))
                perm_id = permission_id_for(store, "domain", domain)
                rec.grants = [g for g in rec.grants if g["id"] != perm_id]
                rec.grants.append({"id": perm_id, "type": "domain", "role": role, "domain": domain,
                                   "withLink": with_link})
            elif kind == "anyone":
                if role in ("owner", "organizer", "fileOrganizer"):
                    raise bad_request(f"Invalid permission role: {role}", location="role")
                with_link = bool(body.get("withLink", True))
                perm_id = permission_id_for(store, "anyone", "", with_link=with_link)
                rec.grants = [g for g in rec.grants if g["type"] != "anyone"]
                rec.public = False
                if role == "reader" and with_link:
                    rec.public = True
                else:
                    rec.grants.append({"id": perm_id, "type": "anyone", "role": role, "withLink": with_link})
            else:
                raise bad_request(f"Invalid permission type: {kind}", location="type")
            store.touch(rec, by=user.email, modified=rec.modified)
        return json_response(self._find(rec, perm_id, user.email))

    def _set_grant(self, rec: FileRecord, kind: str, email: str, role: str, perm_id: str) -> None:
        """Give ``email`` (a user or group) ``role`` on ``rec``, replacing what it had."""
        rec.readers = [e for e in rec.readers if e != email]
        rec.writers = [e for e in rec.writers if e != email]
        rec.grants = [g for g in rec.grants if g["id"] != perm_id]
        if kind == "user" and role == "reader":
            rec.readers.append(email)
        elif kind == "user" and role == "writer":
            rec.writers.append(email)
        else:
            rec.grants.append({"id": perm_id, "type": kind, "role": role, "email": email})

    def _transfer(self, rec: FileRecord, user: User, email: str) -> None:
        if rec.drive_id is not None:
            raise bad_request("Files in shared drives have no owner.", location="role")
        if rec.owner != user.email:
            raise insufficient_permissions("Only the owner can transfer ownership.")
        old = rec.owner
        rec.owner = email
        rec.readers = [e for e in rec.readers if e != email]
        rec.writers = [e for e in rec.writers if e != email]
        if old not in rec.writers:
            rec.writers.append(old)

    def _insert_member(self, req: Request, user: User, root: FileRecord, body: dict[str, Any]) -> Response:
        drive = self.store.drives[root.id]
        if drive.members.get(user.email) != "organizer":
            raise insufficient_permissions("Only organizers can manage the members of a shared drive.")
        kind = body.get("type")
        if kind not in ("user", "group"):
            raise bad_request("Shared drive members are users or groups", location="type")
        role = self._role(body, drive=True)
        email = normalize_email(str(body.get("value") or body.get("emailAddress") or ""))
        with self.store.lock:
            if kind == "user":
                self.store.add_user(email)
            else:
                self.store.groups.setdefault(email, [])
            drive.members[email] = role
            self.store.touch(root, by=user.email, modified=root.modified)
        return json_response(self._find(root, permission_id_for(self.store, kind, email), user.email))

    def permissions_patch(self, req: Request, user: User, file_id: str, perm_id: str) -> Response:
        """``PATCH|PUT files/{id}/permissions/{permissionId}``: change the role (or transfer ownership)."""
        rec = self._file(file_id, user)
        self._may_share(rec, user)
        current = self._find(rec, perm_id, user.email)
        body = req.json_body()
        merged = {"role": current["role"], "additionalRoles": current.get("additionalRoles", []), **body}
        store = self.store
        with store.lock:
            if rec.is_drive_root:
                role = self._role(merged, drive=True)
                drive = store.drives[rec.id]
                email = current.get("emailAddress")
                if email is None or email not in drive.members:
                    raise _not_found(perm_id)
                drive.members[email] = role
            else:
                role = self._role(merged, drive=rec.drive_id is not None)
                if current["role"] == "owner" and rec.drive_id is None:
                    if role != "owner":
                        raise ApiError(403, "cannotModifyOwner", "The owner's role cannot be changed; "
                                       "transfer ownership instead.")
                elif role == "owner":
                    if not truthy(req.query.get("transferOwnership")):
                        raise ApiError(403, "forbidden", "Making someone the owner needs transferOwnership=true.",
                                       location="transferOwnership", location_type="parameter")
                    self._transfer(rec, user, str(current.get("emailAddress")))
                elif current["type"] in ("user", "group"):
                    self._set_grant(rec, current["type"], str(current["emailAddress"]), role, perm_id)
                elif current["type"] == "anyone" and perm_id == "anyoneWithLink" and rec.public:
                    if role != "reader":
                        rec.public = False
                        rec.grants.append({"id": perm_id, "type": "anyone", "role": role, "withLink": True})
                else:
                    for g in rec.grants:
                        if g["id"] == perm_id:
                            g["role"] = role
            store.touch(rec, by=user.email, modified=rec.modified)
        if role == "owner" and current["role"] != "owner":
            perm_id = str(current["id"])
        return json_response(self._find(rec, perm_id, user.email))

    def permissions_delete(self, req: Request, user: User, file_id: str, perm_id: str) -> Response:
        """``DELETE files/{id}/permissions/{permissionId}``: revokes the access at once."""
        rec = self._file(file_id, user)
        current = self._find(rec, perm_id, user.email)
        self_removal = current.get("emailAddress") == user.email
        if not self_removal:
            self._may_share(rec, user)
        store = self.store
        with store.lock:
            if rec.is_drive_root:
                drive = store.drives[rec.id]
                email = current.get("emailAddress")
                if email is None or email not in drive.members:
                    raise _not_found(perm_id)
                if drive.members[email] == "organizer" and sum(
                    1 for r in drive.members.values() if r == "organizer"
                ) == 1:
                    raise ApiError(403, "cannotRemoveOrganizer",
                                   "A shared drive needs at least one organizer.")
                del drive.members[email]
            elif current["role"] == "owner":
                raise ApiError(403, "cannotRemoveOwner", "The owner of a file cannot be removed.")
            elif current.get("permissionDetails") and any(d.get("inherited") for d in current["permissionDetails"]):
                raise ApiError(403, "cannotDeleteInheritedPermission",
                               "Inherited permissions cannot be removed from an item in a shared drive.")
            else:
                if perm_id == "anyoneWithLink" and rec.public:
                    rec.public = False
                email = current.get("emailAddress")
                if email:
                    rec.readers = [e for e in rec.readers if e != email]
                    rec.writers = [e for e in rec.writers if e != email]
                rec.grants = [g for g in rec.grants if g["id"] != current["id"]]
            store.touch(rec, by=user.email, modified=rec.modified)
        return Response(204)
