"""Issue 14: permissions of the Drive emulator (insert/list/get/patch/delete, their effect on access).

PyDrive2's InsertPermission/GetPermissions/DeletePermission unchanged, and
googleapiclient for the rest; every JSON body is schema-checked by ``fake_drive``.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from discovery_schema import validate_resource
from googleapiclient.errors import HttpError

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import drive_service, service_account_credentials

pytestmark = pytest.mark.emulator

USER_ID = re.compile(r"^\d{20}$")


def service_as(fd: FakeDrive, user: str, tmp_path: Path) -> Any:
    key = tmp_path / f"{user}.json"
    fd.write_service_account(key, user=user)
    return drive_service(fd, service_account_credentials(key))


def status_of(call: Any) -> int:
    try:
        call.execute()
    except HttpError as e:
        return int(e.resp.status)
    return 200


def signed_out_download(fd: FakeDrive, file_id: str) -> int:
    try:
        with urllib.request.urlopen(f"{fd.url}uc?id={file_id}&export=download", timeout=30) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_pydrive2_anyone_permission_makes_a_file_readable_by_link_and_delete_revokes(fake_drive, drive):
    fid = fake_drive.put("MyDrive/share/me.bin", b"payload")
    f = drive.CreateFile({"id": fid})
    assert signed_out_download(fake_drive, fid) == 403

    perm = f.InsertPermission({"type": "anyone", "role": "reader", "withLink": True})
    validate_resource(perm, "Permission")
    assert (perm["id"], perm["type"], perm["role"], perm["withLink"]) == ("anyoneWithLink", "anyone", "reader", True)
    assert signed_out_download(fake_drive, fid) == 200
    perms = f.GetPermissions()
    # real Drive lists an anyone permission first
    assert [(p["type"], p["role"]) for p in perms] == [("anyone", "reader"), ("user", "owner")]
    assert USER_ID.match(perms[1]["id"]) and perms[1]["id"] == drive.GetAbout()["permissionId"]
    assert f["shared"] is True

    f.DeletePermission(perm["id"])
    assert signed_out_download(fake_drive, fid) == 403
    assert [p["type"] for p in f.GetPermissions()] == ["user"]


def test_user_roles_ids_and_patch(fake_drive, drive, tmp_path):
    fid = fake_drive.put("MyDrive/doc.bin", b"d")
    fake_drive.add_user("bob")
    bob = service_as(fake_drive, "bob", tmp_path)
    assert status_of(bob.files().get(fileId=fid)) == 404

    f = drive.CreateFile({"id": fid})
    perm = f.InsertPermission({"type": "user", "role": "reader", "value": "bob@example.com"})
    assert USER_ID.match(perm["id"])
    assert perm["emailAddress"] == "bob@example.com" and perm["role"] == "reader"
    assert bob.about().get().execute()["permissionId"] == perm["id"]
    assert bob.permissions().getIdForEmail(email="bob@example.com").execute()["id"] == perm["id"]
    assert status_of(bob.files().get(fileId=fid)) == 200
    assert status_of(bob.files().patch(fileId=fid, body={"title": "x"})) == 403

    service = drive.auth.service
    got = service.permissions().get(fileId=fid, permissionId=perm["id"]).execute()
    assert got["role"] == "reader"
    commenter = service.permissions().patch(fileId=fid, permissionId=perm["id"],
                                            body={"role": "reader", "additionalRoles": ["commenter"]}).execute()
    assert (commenter["role"], commenter["additionalRoles"]) == ("reader", ["commenter"])
    writer = service.permissions().patch(fileId=fid, permissionId=perm["id"], body={"role": "writer"}).execute()
    assert writer["role"] == "writer" and writer["id"] == perm["id"]
    assert status_of(bob.files().patch(fileId=fid, body={"title": "by bob"})) == 200
    assert status_of(bob.files().delete(fileId=fid)) == 403  # writers cannot delete

    f.DeletePermission(perm["id"])
    assert status_of(bob.files().get(fileId=fid)) == 404
    assert status_of(service.permissions().get(fileId=fid, permissionId=perm["id"])) == 404


def test_group_and_domain_permissions(fake_drive, drive, tmp_path):
    fake_drive.add_user("outsider@other.org")
    fake_drive.add_group("team@example.com", ["carol"])
    g = fake_drive.put("MyDrive/group.bin", b"g")
    d = fake_drive.put("MyDrive/domain.bin", b"d")
    carol = service_as(fake_drive, "carol", tmp_path)
    outsider = service_as(fake_drive, "outsider@other.org", tmp_path)
    service = drive.auth.service

    gp = service.permissions().insert(fileId=g, body={"type": "group", "role": "writer",
                                                      "value": "team@example.com"}).execute()
    assert gp["type"] == "group" and USER_ID.match(gp["id"])
    assert status_of(carol.files().patch(fileId=g, body={"title": "g2"})) == 200
    assert status_of(outsider.files().get(fileId=g)) == 404

    dp = service.permissions().insert(fileId=d, body={"type": "domain", "role": "reader",
                                                      "value": "example.com"}).execute()
    assert dp["type"] == "domain" and dp["domain"] == "example.com" and re.fullmatch(r"\d{20}k", dp["id"])
    assert status_of(carol.files().get(fileId=d)) == 200  # carol@example.com
    assert status_of(outsider.files().get(fileId=d)) == 404  # another domain
    service.permissions().delete(fileId=d, permissionId=dp["id"]).execute()
    assert status_of(carol.files().get(fileId=d)) == 404


def test_folder_permissions_are_inherited_and_the_owner_stays(fake_drive, drive, tmp_path):
    fake_drive.add_user("bob")
    folder = fake_drive.mkdir("MyDrive/shared")
    inner = fake_drive.put("MyDrive/shared/sub/w.bin", b"w")
    bob = service_as(fake_drive, "bob", tmp_path)
    service = drive.auth.service
    service.permissions().insert(fileId=folder, body={"type": "user", "role": "reader",
                                                      "value": "bob@example.com"}).execute()
    assert bob.files().get_media(fileId=inner).execute() == b"w"
    owner_id = drive.GetAbout()["permissionId"]
    with pytest.raises(HttpError) as info:
        service.permissions().delete(fileId=folder, permissionId=owner_id).execute()
    assert info.value.resp.status == 403 and info.value.error_details[0]["reason"] == "cannotRemoveOwner"
    with pytest.raises(HttpError) as info:
        service.permissions().insert(fileId=folder, body={"type": "user", "role": "boss",
                                                          "value": "bob@example.com"}).execute()
    assert info.value.resp.status == 400
    with pytest.raises(HttpError) as info:
        service.permissions().get(fileId=folder, permissionId="12345678901234567890").execute()
    assert info.value.resp.status == 404


def test_transfer_ownership(fake_drive, drive, tmp_path):
    fake_drive.add_user("bob")
    fid = fake_drive.put("MyDrive/give.bin", b"g")
    service = drive.auth.service
    perm = service.permissions().insert(fileId=fid, body={"type": "user", "role": "writer",
                                                          "value": "bob@example.com"}).execute()
    with pytest.raises(HttpError):
        service.permissions().patch(fileId=fid, permissionId=perm["id"], body={"role": "owner"}).execute()
    service.permissions().patch(fileId=fid, permissionId=perm["id"], body={"role": "owner"},
                                transferOwnership=True).execute()
    meta = service.files().get(fileId=fid).execute()
    assert meta["owners"][0]["emailAddress"] == "bob@example.com"
    assert meta["userPermission"]["role"] == "writer"
    roles = {(p["emailAddress"], p["role"]) for p in service.permissions().list(fileId=fid).execute()["items"]}
    assert roles == {("bob@example.com", "owner"), ("ada@example.com", "writer")}
