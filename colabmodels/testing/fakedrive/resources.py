"""Rendering store records as Drive v2 JSON resources, and the ``fields=`` filter.

Field names, nesting and types follow the Drive v2 discovery document (int64
values such as ``fileSize`` and ``version`` are strings; dates are RFC 3339 with
milliseconds and ``Z``). Folders and Google Docs carry no ``fileSize``,
``md5Checksum`` or ``downloadUrl``, as on Drive.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import hashlib
from typing import Any

from .store import FileRecord, Store, User

__all__ = ["Renderer", "apply_fields", "etag_of", "parse_fields", "rfc3339"]

QUOTA_BYTES_TOTAL = 15 * 1024**3


@functools.lru_cache(maxsize=1 << 16, typed=True)  # listings render the same records again
def rfc3339(ts: float) -> str:
    """``2024-05-01T12:00:00.123Z`` for a POSIX timestamp."""
    dt = _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=1 << 16, typed=True)
def etag_of(*parts: object) -> str:
    """A quoted opaque etag derived from ``parts`` (hashable values)."""
    digest = hashlib.sha1(":".join(map(str, parts)).encode()).digest()[:12]
    return '"' + base64.urlsafe_b64encode(digest).decode().rstrip("=") + '"'


# The top-level fields of a file resource that need each costly look-up (``Renderer.file``).
_BY_ROLE = frozenset({"labels", "ownedByMe", "userPermission", "modifiedByMeDate",
                      "lastViewedByMeDate"})
_BY_WRITE = frozenset({"capabilities", "editable"})
_BY_TRASH = frozenset({"labels", "etag"})
_BY_SHARING = frozenset({"shared"})
_BY_PEOPLE = frozenset({"lastModifyingUserName", "lastModifyingUser", "ownerNames", "owners",
                        "sharedWithMeDate", "sharingUser", "trashingUser"})


class Renderer:
    """Builds v2 resources for one emulator.

    Args:
        store: the emulator's store.
        base_url: ``http://127.0.0.1:PORT/`` (links in resources are absolute).
    """

    def __init__(self, store: Store, base_url: str) -> None:
        self.store = store
        self.base_url = base_url
        self.api = base_url + "drive/v2/"

    # ------------------------------------------------------------- people

    def user(self, email: str, viewer: str | None) -> dict[str, Any]:
        """A ``drive#user``."""
        try:
            u = self.store.user(email)
            name, perm = u.display_name, u.permission_id
        except KeyError:
            name, perm = email.split("@", 1)[0], "0"
        return {
            "kind": "drive#user",
            "displayName": name,
            "emailAddress": email,
            "isAuthenticatedUser": email == viewer,
            "permissionId": perm,
            "picture": {"url": f"{self.base_url}avatars/{perm}.png"},
        }

    def _display_name(self, email: str) -> str:
        try:
            return self.store.user(email).display_name
        except KeyError:
            return email.split("@", 1)[0]

    # -------------------------------------------------------------- files

    def parent_ref(self, child_id: str, parent_id: str) -> dict[str, Any]:
        """A ``drive#parentReference``."""
        parent = self.store.get(parent_id)
        return {
            "kind": "drive#parentReference",
            "id": parent_id,
            "selfLink": f"{self.api}files/{child_id}/parents/{parent_id}",
            "parentLink": f"{self.api}files/{parent_id}",
            "isRoot": bool(parent is not None and parent.is_root),
        }

    @staticmethod
    def role_fields(role: str) -> dict[str, Any]:
        """``role`` (and ``additionalRoles``) of a v2 permission for an emulator role."""
        if role == "commenter":
            return {"role": "reader", "additionalRoles": ["commenter"]}
        return {"role": role}

    def property(self, rec: FileRecord, prop: dict[str, str]) -> dict[str, Any]:
        """A ``drive#property``."""
        vis = prop.get("visibility", "PRIVATE")
        return {
            "kind": "drive#property",
            "etag": etag_of(rec.id, prop["key"], vis, prop.get("value")),
            "selfLink": f"{self.api}files/{rec.id}/properties/{prop['key']}?visibility={vis}",
            "key": prop["key"],
            "value": prop.get("value", ""),
            "visibility": vis,
        }

    def file(self, rec: FileRecord, viewer: str | None,
             wanted: frozenset[str] | None = None) -> dict[str, Any]:
        """A ``drive#file`` as ``viewer`` sees it.

        ``wanted``: the only top-level fields the answer will keep (from a ``fields=``
        selection: ``api._wanted_fields``); the others are left out, and what only they need
        (the ancestors' permissions and trash, people) is not worked out. A listing of
        thousands of files asks for a dozen fields, and this was most of the emulator's time
        per file.
        """
        from .docs import export_links, is_doc
        from .thumbnails import has_thumbnail, thumbnail_link

        def needs(keys: frozenset[str]) -> bool:
            return wanted is None or not wanted.isdisjoint(keys)

        store = self.store
        role = (store.role(rec, viewer) or "reader") if needs(_BY_ROLE) else "reader"
        can_write = store.can_write(rec, viewer) if needs(_BY_WRITE) else False
        in_drive = rec.drive_id is not None
        is_owner = role == "owner"
        can_delete = store.can_delete(rec, viewer) if needs(_BY_WRITE) else False
        trashed = store.is_trashed(rec) if needs(_BY_TRASH) else False
        shared = (store.is_shared(rec) or in_drive) if needs(_BY_SHARING) else False
        people = needs(_BY_PEOPLE)
        modifier = rec.last_modifying_user or rec.owner
        exportable = is_doc(rec)
        etag = etag_of(rec.id, rec.version, rec.modified, trashed)
        res: dict[str, Any] = {
            "kind": "drive#file",
            "id": rec.id,
            "etag": etag,
            "selfLink": f"{self.api}files/{rec.id}",
            "title": rec.title,
            "mimeType": rec.mime_type,
            "labels": {
                "starred": rec.starred,
                "hidden": rec.hidden,
                "trashed": trashed,
                "restricted": rec.restricted,
                "viewed": rec.viewed or is_owner,
            },
            "copyRequiresWriterPermission": False,
            "createdDate": rfc3339(rec.created),
            "modifiedDate": rfc3339(rec.modified),
            "version": str(rec.version),
            "parents": [self.parent_ref(rec.id, pid) for pid in rec.parents],
            "quotaBytesUsed": str(rec.size if rec.has_blob and rec.is_binary else 0),
            "lastModifyingUserName": self._display_name(modifier) if people else "",
            "lastModifyingUser": self.user(modifier, viewer) if people else {},
            "ownedByMe": is_owner,
            "capabilities": {
                "canAddChildren": rec.is_folder and can_write,
                "canComment": True,
                "canCopy": not rec.is_folder,
                "canDelete": can_delete,
                "canDownload": (rec.is_binary or exportable) and not rec.is_folder,
                "canEdit": can_write,
                "canListChildren": rec.is_folder,
                "canModifyContent": can_write,
                "canReadRevisions": can_write,
                "canRemoveChildren": rec.is_folder and can_write,
                "canRename": can_write,
                "canShare": can_write,
                "canTrash": can_delete,
                "canUntrash": can_delete,
            },
            "editable": can_write,
            "copyable": not rec.is_folder,
            "writersCanShare": True,
            "shared": shared,
            "explicitlyTrashed": rec.explicitly_trashed,
            "appDataContents": False,
            "spaces": ["drive"],
            "hasThumbnail": False,
            "thumbnailVersion": "0",
            "iconLink": f"{self.base_url}icons/{'folder' if rec.is_folder else 'file'}.png",
            "userPermission": {
                "kind": "drive#permission",
                "etag": etag_of(rec.id, "me", role),
                "id": "me",
                "selfLink": f"{self.api}files/{rec.id}/permissions/me",
                **self.role_fields(role),
                "type": "user",
            },
        }
        if in_drive:
            res["driveId"] = rec.drive_id
            res["teamDriveId"] = rec.drive_id
            res["capabilities"].update(
                {
                    "canMoveItemWithinDrive": can_write,
                    "canMoveItemOutOfDrive": can_delete,
                    "canDeleteChildren": rec.is_folder and can_delete,
                    "canTrashChildren": rec.is_folder and can_delete,
                }
            )
        else:
            if people:
                res["ownerNames"] = [self._display_name(rec.owner)]
                res["owners"] = [self.user(rec.owner, viewer)]
        if rec.shortcut_target:
            res["shortcutDetails"] = {
                "targetId": rec.shortcut_target,
                "targetMimeType": rec.shortcut_target_mime or "application/octet-stream",
            }
        if rec.image is not None and rec.is_binary:
            res["imageMediaMetadata"] = {
                "width": rec.image["width"],
                "height": rec.image["height"],
                "rotation": rec.image.get("rotation", 0),
            }
        if has_thumbnail(rec):
            res["hasThumbnail"] = True
            res["thumbnailLink"] = thumbnail_link(self.base_url, rec)
            res["thumbnailVersion"] = str(rec.revisions[-1]["n"] if rec.revisions else 1)
        if exportable:
            res["exportLinks"] = export_links(self.base_url, rec)
        if is_owner or rec.last_modifying_user == viewer:
            res["modifiedByMeDate"] = rfc3339(rec.modified)
        if rec.viewed or is_owner:
            res["lastViewedByMeDate"] = rfc3339(rec.modified)
        if people and viewer is not None and self.store.shared_directly_with(rec, viewer):
            res["sharedWithMeDate"] = rfc3339(rec.created)
            res["sharingUser"] = self.user(rec.owner, viewer)
        if rec.is_folder:
            res["alternateLink"] = f"{self.base_url}drive/folders/{rec.id}"
        elif exportable:
            kind = "spreadsheets" if "spreadsheet" in rec.mime_type else "document"
            res["alternateLink"] = f"{self.base_url}{kind}/d/{rec.id}/edit?usp=drivesdk"
            res["embedLink"] = f"{self.base_url}{kind}/d/{rec.id}/preview?usp=drivesdk"
        else:
            res["alternateLink"] = f"{self.base_url}file/d/{rec.id}/view?usp=drivesdk"
            res["embedLink"] = f"{self.base_url}file/d/{rec.id}/preview?usp=drivesdk"
        if rec.is_binary and not rec.is_folder:
            # Drive's downloadUrl is a signed link that works whatever the app declares.
            drives = "&supportsAllDrives=true" if in_drive else ""
            res["downloadUrl"] = f"{self.api}files/{rec.id}?alt=media&source=downloadUrl{drives}"
            res["webContentLink"] = f"{self.base_url}uc?id={rec.id}&export=download"
            res["fileSize"] = str(rec.size)
            res["md5Checksum"] = rec.md5 or ""
            if rec.sha1:
                res["sha1Checksum"] = rec.sha1
            if rec.sha256:
                res["sha256Checksum"] = rec.sha256
            if rec.revisions:
                res["headRevisionId"] = rec.revisions[-1]["id"]
            res["originalFilename"] = rec.original_filename or rec.title
            name = res["originalFilename"]
            if "." in name.lstrip("."):
                res["fileExtension"] = name.rsplit(".", 1)[1]
                res["fullFileExtension"] = name.lstrip(".").split(".", 1)[1]
            else:
                res["fileExtension"] = ""
                res["fullFileExtension"] = ""
        if rec.description is not None:
            res["description"] = rec.description
        if rec.properties:
            res["properties"] = [self.property(rec, p) for p in rec.properties]
        if rec.explicitly_trashed and rec.trashed_date is not None:
            res["trashedDate"] = rfc3339(rec.trashed_date)
            if rec.trashing_user and people:
                res["trashingUser"] = self.user(rec.trashing_user, viewer)
        if wanted is not None:  # nothing worked out from a skipped look-up leaves here
            res = {k: v for k, v in res.items() if k in wanted}
        return res

    def permissions(self, rec: FileRecord, viewer: str | None) -> list[dict[str, Any]]:
        """The ``drive#permission`` list of ``rec`` (see ``.permissions``)."""
        from .permissions import permission_list

        return permission_list(self, rec)

    def permission(
        self,
        rec: FileRecord,
        *,
        perm_id: str,
        kind: str,
        role: str,
        email: str | None = None,
        domain: str | None = None,
        with_link: bool | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """One ``drive#permission``."""
        out: dict[str, Any] = {
            "kind": "drive#permission",
            "etag": etag_of(rec.id, perm_id, role, with_link),
            "id": perm_id,
            "selfLink": f"{self.api}files/{rec.id}/permissions/{perm_id}",
            "type": kind,
            **self.role_fields(role),
        }
        if email is not None:
            out["emailAddress"] = email
            out["name"] = self._display_name(email)
            out["domain"] = email.split("@", 1)[-1]
            out["photoLink"] = f"{self.base_url}avatars/{perm_id}.png"
        if kind == "domain" and domain:
            out["domain"] = domain
            out["name"] = domain
        if kind == "anyone":
            out["name"] = "Anyone with the link" if with_link else "Anyone on the internet"
        if with_link is not None and kind in ("anyone", "domain"):
            out["withLink"] = with_link
        if details is not None:
            out["permissionDetails"] = details
            out["teamDrivePermissionDetails"] = [
                {
                    "teamDrivePermissionType": d["permissionType"],
                    "role": d["role"],
                    "inherited": d["inherited"],
                    **({"inheritedFrom": d["inheritedFrom"]} if "inheritedFrom" in d else {}),
                }
                for d in details
            ]
        return out

    # --------------------------------------------------------------- about

    def about(self, user: User) -> dict[str, Any]:
        """The ``drive#about`` of ``user``."""
        store = self.store
        used = trashed = 0
        for rec in store.snapshot():
            if rec.owner == user.email and rec.has_blob and rec.drive_id is None and rec.is_binary:
                used += rec.size
                if store.is_trashed(rec):
                    trashed += rec.size
        return {
            "kind": "drive#about",
            "etag": etag_of("about", user.email, used),
            "selfLink": f"{self.api}about",
            "name": user.display_name,
            "user": self.user(user.email, user.email),
            "quotaBytesTotal": str(QUOTA_BYTES_TOTAL),
            "quotaBytesUsed": str(used),
            "quotaBytesUsedAggregate": str(used),
            "quotaBytesUsedInTrash": str(trashed),
            "quotaBytesByService": [{"serviceName": "DRIVE", "bytesUsed": str(used)}],
            "quotaType": "LIMITED",
            "largestChangeId": str(store.change_counter),
            "remainingChangeIds": "0",
            "rootFolderId": user.root_id,
            "domainSharingPolicy": "allowedWithWarning",
            "permissionId": user.permission_id,
            "isCurrentAppInstalled": False,
            "languageCode": "en",
            "canCreateDrives": True,
            "maxUploadSizes": [{"type": "*", "size": "5497558138880"}],
            "features": [{"featureName": "ocr", "featureRate": 0.0}],
        }


# ------------------------------------------------------------------ fields=


class _FieldsSyntaxError(ValueError):
    pass


def parse_fields(spec: str | None) -> dict[str, Any] | None:
    """Parse a partial-response ``fields`` selector into a tree.

    ``"nextPageToken,items(id,title,parents/id)"`` becomes
    ``{"nextPageToken": None, "items": {"id": None, "title": None,
    "parents": {"id": None}}}`` (None selects the whole value). Returns None
    (everything) for an empty selector, ``*``, or one it cannot parse.
    """
    if spec is None or not spec.strip() or spec.strip() == "*":
        return None
    try:
        tree, pos = _parse_list(spec.replace(" ", ""), 0)
        if pos != len(spec.replace(" ", "")):
            raise _FieldsSyntaxError(spec)
        return tree
    except _FieldsSyntaxError:
        return None


def _merge(tree: dict[str, Any], path: list[str], sub: dict[str, Any] | None) -> None:
    cur = tree
    for i, name in enumerate(path):
        last = i == len(path) - 1
        if last:
            if name in cur and cur[name] is not None and sub is not None:
                cur[name].update(sub)
            elif name in cur and cur[name] is None:
                pass
            else:
                cur[name] = sub
        else:
            nxt = cur.get(name, {})
            if nxt is None:
                return  # already selecting the whole value
            cur[name] = nxt
            cur = nxt


def _parse_list(s: str, pos: int) -> tuple[dict[str, Any], int]:
    tree: dict[str, Any] = {}
    while True:
        start = pos
        while pos < len(s) and s[pos] not in ",()":
            pos += 1
        path = s[start:pos].split("/")
        if not all(path):
            raise _FieldsSyntaxError(s)
        sub = None
        if pos < len(s) and s[pos] == "(":
            sub, pos = _parse_list(s, pos + 1)
            if pos >= len(s) or s[pos] != ")":
                raise _FieldsSyntaxError(s)
            pos += 1
        _merge(tree, path, sub)
        if pos < len(s) and s[pos] == ",":
            pos += 1
            continue
        return tree, pos


def apply_fields(obj: Any, tree: dict[str, Any] | None) -> Any:
    """Keep only the parts of ``obj`` selected by ``tree`` (from ``parse_fields``)."""
    if tree is None:
        return obj
    if isinstance(obj, list):
        return [apply_fields(item, tree) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = dict(obj) if "*" in tree else {}
    for name, sub in tree.items():
        if name == "*" or name not in obj:
            continue
        out[name] = apply_fields(obj[name], sub)
    return out
