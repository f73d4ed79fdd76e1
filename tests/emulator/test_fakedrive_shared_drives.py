"""Issue 14: shared drives in the Drive emulator (drives.*, teamdrives.*, files inside drives).

Checked with google-api-python-client and PyDrive2; every JSON body is validated
against the Drive v2 discovery schemas by the ``fake_drive`` fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from discovery_schema import validate_resource
from googleapiclient.errors import HttpError

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import (
    drive_service,
    pydrive2_drive,
    service_account_credentials,
)

pytestmark = pytest.mark.emulator

FOLDER = "application/vnd.google-apps.folder"


@pytest.fixture
def service(fake_drive: FakeDrive, sa_key: Path) -> Any:
    return drive_service(fake_drive, service_account_credentials(sa_key))


def service_as(fd: FakeDrive, user: str, tmp_path: Path) -> Any:
    key = tmp_path / f"{user}.json"
    fd.write_service_account(key, user=user)
    return drive_service(fd, service_account_credentials(key))


def error_of(info: pytest.ExceptionInfo[HttpError]) -> tuple[int, str]:
    return info.value.resp.status, info.value.error_details[0]["reason"]


def test_drives_insert_list_get_update_hide_and_delete(fake_drive, service):
    created = service.drives().insert(requestId="req-1", body={"name": "Team"}).execute()
    validate_resource(created, "Drive")
    drive_id = created["id"]
    assert created["kind"] == "drive#drive" and created["name"] == "Team"
    assert created["capabilities"]["canAddChildren"] and created["capabilities"]["canManageMembers"]
    assert len(drive_id) == 19 and drive_id.startswith("0A")

    with pytest.raises(HttpError) as info:
        service.drives().insert(requestId="req-1", body={"name": "Again"}).execute()
    assert error_of(info)[0] == 409

    service.drives().insert(requestId="req-2", body={"name": "Other"}).execute()
    listed = service.drives().list().execute()
    assert [d["name"] for d in listed["items"]] == ["Team", "Other"]
    assert [d["name"] for d in service.drives().list(q="name = 'Team'").execute()["items"]] == ["Team"]
    assert [d["name"] for d in service.drives().list(q="name contains 'oth'").execute()["items"]] == ["Other"]
    page = service.drives().list(maxResults=1).execute()
    assert len(page["items"]) == 1 and page["nextPageToken"]

    # the deprecated teamdrives collection shows the same drives
    team = service.teamdrives().get(teamDriveId=drive_id).execute()
    validate_resource(team, "TeamDrive")
    assert team["kind"] == "drive#teamDrive" and team["name"] == "Team"

    renamed = service.drives().update(driveId=drive_id, body={"name": "Team A"}).execute()
    assert renamed["name"] == "Team A"
    assert service.files().get(fileId=drive_id, supportsAllDrives=True).execute()["title"] == "Team A"

    assert service.drives().hide(driveId=drive_id).execute()["hidden"] is True
    assert [d["name"] for d in service.drives().list(q="hidden = true").execute()["items"]] == ["Team A"]
    assert service.drives().unhide(driveId=drive_id).execute()["hidden"] is False

    service.files().insert(body={"title": "x", "parents": [{"id": drive_id}]}, supportsAllDrives=True).execute()
    with pytest.raises(HttpError) as info:
        service.drives().delete(driveId=drive_id).execute()
    assert error_of(info)[0] == 403
    empty = service.drives().list(q="name = 'Other'").execute()["items"][0]["id"]
    service.drives().delete(driveId=empty).execute()
    with pytest.raises(HttpError) as info:
        service.drives().get(driveId=empty).execute()
    assert error_of(info) == (404, "notFound")


def test_files_in_a_drive_need_supports_all_drives(fake_drive, service):
    drive_id = fake_drive.add_shared_drive("Team")
    fid = fake_drive.put("Shareddrives/Team/models/a.bin", b"in the drive")
    mine = fake_drive.put("MyDrive/models/b.bin", b"in my drive")
    folder = fake_drive.resolve("Shareddrives/Team/models")

    meta = service.files().get(fileId=fid, supportsAllDrives=True).execute()
    validate_resource(meta, "File")
    assert meta["driveId"] == meta["teamDriveId"] == drive_id
    assert "owners" not in meta and meta["ownedByMe"] is False
    assert meta["parents"][0]["id"] == folder
    assert service.files().get_media(fileId=fid, supportsAllDrives=True).execute() == b"in the drive"
    root = service.files().get(fileId=drive_id, supportsAllDrives=True).execute()
    assert (root["mimeType"], root["title"], root["driveId"]) == (FOLDER, "Team", drive_id)

    # Apps that do not declare shared-drive support do not see drive items at all.
    with pytest.raises(HttpError) as info:
        service.files().get(fileId=fid).execute()
    assert error_of(info) == (404, "notFound")
    with pytest.raises(HttpError) as info:
        service.files().insert(body={"title": "n", "parents": [{"id": folder}]}).execute()
    assert error_of(info)[0] == 404

    def titles(**kw: Any) -> set[str]:
        return {f["title"] for f in service.files().list(q="trashed = false", **kw).execute()["items"]}

    assert titles() == {"models", "b.bin"}  # My Drive only
    assert {f["title"] for f in service.files().list(
        q="'me' in owners", supportsAllDrives=True, includeItemsFromAllDrives=True).execute()["items"]} == {
        "models", "b.bin"}  # items in shared drives have no owner
    assert titles(supportsAllDrives=True, includeItemsFromAllDrives=True) == {"models", "a.bin", "b.bin"}
    assert titles(corpora="drive", driveId=drive_id, supportsAllDrives=True,
                  includeItemsFromAllDrives=True) == {"models", "a.bin"}
    assert titles(corpora="allDrives", supportsAllDrives=True, includeItemsFromAllDrives=True) == {
        "models", "a.bin", "b.bin"}
    for bad in (
        {"corpora": "drive", "supportsAllDrives": True, "includeItemsFromAllDrives": True},  # no driveId
        {"driveId": drive_id, "supportsAllDrives": True, "includeItemsFromAllDrives": True},  # no corpora
        {"includeItemsFromAllDrives": True},  # without supportsAllDrives
    ):
        with pytest.raises(HttpError) as info:
            service.files().list(**bad).execute()
        assert error_of(info)[0] == 400, bad
    with pytest.raises(HttpError) as info:
        service.files().list(corpora="drive", driveId="0AnotARealDriveUk9PVA", supportsAllDrives=True,
                             includeItemsFromAllDrives=True).execute()
    assert error_of(info) == (404, "notFound")
    assert mine


def test_members_roles_and_non_members(fake_drive, tmp_path):
    drive_id = fake_drive.add_shared_drive("Lab", members={"bob": "reader", "carol": "writer"})
    fid = fake_drive.put("Shareddrives/Lab/data.bin", b"abc")
    fake_drive.add_user("mallory")
    bob, carol, mallory = (service_as(fake_drive, u, tmp_path) for u in ("bob", "carol", "mallory"))

    assert [d["id"] for d in bob.drives().list().execute()["items"]] == [drive_id]
    assert mallory.drives().list().execute()["items"] == []
    with pytest.raises(HttpError) as info:
        mallory.files().get(fileId=fid, supportsAllDrives=True).execute()
    assert error_of(info) == (404, "notFound")

    seen = bob.files().get(fileId=fid, supportsAllDrives=True).execute()
    assert seen["userPermission"]["role"] == "reader" and seen["capabilities"]["canEdit"] is False
    with pytest.raises(HttpError) as info:
        bob.files().update(fileId=fid, body={"title": "x"}, supportsAllDrives=True).execute()
    assert error_of(info)[0] == 403

    made = carol.files().insert(body={"title": "c.txt", "parents": [{"id": drive_id}]},
                                supportsAllDrives=True).execute()
    assert made["driveId"] == drive_id and made["capabilities"]["canEdit"] is True
    assert made["capabilities"]["canDelete"] is False  # writers (contributors) cannot delete

    members = bob.permissions().list(fileId=drive_id, supportsAllDrives=True).execute()["items"]
    assert {(p["emailAddress"], p["role"]) for p in members} == {
        ("ada@example.com", "organizer"), ("bob@example.com", "reader"), ("carol@example.com", "writer")}
    # the organizer adds mallory; then mallory sees the drive
    fd_service = service_as(fake_drive, "ada", tmp_path)
    fd_service.permissions().insert(fileId=drive_id, supportsAllDrives=True,
                                    body={"type": "user", "role": "reader", "value": "mallory@example.com"}).execute()
    assert mallory.files().get(fileId=fid, supportsAllDrives=True).execute()["id"] == fid


def test_moving_a_folder_into_a_drive_moves_its_contents(fake_drive, service):
    drive_id = fake_drive.add_shared_drive("Team")
    fid = fake_drive.put("MyDrive/proj/sub/w.bin", b"w")
    proj = fake_drive.resolve("MyDrive/proj")
    service.files().patch(fileId=proj, addParents=drive_id, removeParents=fake_drive.root_id(),
                          supportsAllDrives=True, body={}).execute()
    assert service.files().get(fileId=fid, supportsAllDrives=True).execute()["driveId"] == drive_id
    assert fake_drive.resolve("Shareddrives/Team/proj/sub/w.bin") == fid


def test_pydrive2_lists_uploads_and_reads_in_a_shared_drive(fake_drive, sa_key, tmp_path):
    drive_id = fake_drive.add_shared_drive("Team")
    drive = pydrive2_drive(fake_drive, sa_key)
    f = drive.CreateFile({"title": "notes.txt", "parents": [{"id": drive_id}]})
    f.SetContentString("shared words")
    f.Upload(param={"supportsAllDrives": True})
    assert f["driveId"] == drive_id

    listing = drive.ListFile({
        "q": f"'{drive_id}' in parents and trashed = false",
        "corpora": "drive", "driveId": drive_id,
        "includeItemsFromAllDrives": True, "supportsAllDrives": True,
    }).GetList()
    assert [x["title"] for x in listing] == ["notes.txt"]
    again = drive.CreateFile({"id": f["id"]})
    assert again.GetContentString() == "shared words"
    again.Trash()
    assert drive.CreateFile({"id": f["id"]}).GetContentString() == "shared words"
    again.FetchMetadata()
    assert again["labels"]["trashed"] is True


def test_drives_revisions_grants_and_changes_survive_a_restart(tmp_path):
    data = tmp_path / "state"
    with FakeDrive(data_dir=data) as fd:
        drive_id = fd.add_shared_drive("Keep", members={"bob": "writer"})
        fid = fd.put("Shareddrives/Keep/a.bin", b"one")
        fd.put("Shareddrives/Keep/a.bin", b"two", replace=True)
        fd.add_group("g@example.com", ["carol"])
        fd.write_service_account(tmp_path / "key1.json")
        service = drive_service(fd, service_account_credentials(tmp_path / "key1.json"))
        service.permissions().insert(fileId=fid, supportsAllDrives=True,
                                     body={"type": "group", "role": "reader", "value": "g@example.com"}).execute()
        token = service.changes().getStartPageToken().execute()["startPageToken"]
        revisions = service.revisions().list(fileId=fid).execute()["items"]
    with FakeDrive(data_dir=data) as fd:
        fd.write_service_account(tmp_path / "key2.json")
        service = drive_service(fd, service_account_credentials(tmp_path / "key2.json"))
        assert [d["id"] for d in service.drives().list().execute()["items"]] == [drive_id]
        again = service.revisions().list(fileId=fid).execute()["items"]
        assert [(r["id"], r["md5Checksum"], r["modifiedDate"]) for r in again] == [
            (r["id"], r["md5Checksum"], r["modifiedDate"]) for r in revisions]
        old = service.files().get_media(fileId=fid, revisionId=revisions[0]["id"], supportsAllDrives=True).execute()
        assert old == b"one"
        assert service.changes().getStartPageToken().execute()["startPageToken"] == token
        perms = service.permissions().list(fileId=fid, supportsAllDrives=True).execute()["items"]
        assert ("group", "g@example.com") in {(p["type"], p.get("emailAddress")) for p in perms}
        assert fd.store.groups["g@example.com"] == ["carol@example.com"]
