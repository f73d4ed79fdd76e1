"""Issue 14: ``fields=`` partial responses of the Drive emulator, as Drive gives them.

PyDrive2's ``FetchMetadata(fields=...)``/``ListFile`` and googleapiclient; every
JSON body is validated against the Drive v2 discovery schemas by ``fake_drive``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from discovery_schema import validate_resource
from googleapiclient.errors import HttpError

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import drive_service, service_account_credentials

pytestmark = pytest.mark.emulator


@pytest.fixture
def service(fake_drive: FakeDrive, sa_key: Path) -> Any:
    return drive_service(fake_drive, service_account_credentials(sa_key))


def test_get_returns_exactly_the_selected_fields_in_drive_shape(fake_drive, service):
    fid = fake_drive.put("MyDrive/f/a.bin", b"abcd", description="d", properties={"k": "v"})
    full = service.files().get(fileId=fid).execute()

    got = service.files().get(fileId=fid, fields="id,labels/starred,parents(id,isRoot),properties(key)").execute()
    assert got == {
        "id": fid,
        "labels": {"starred": False},
        "parents": [{"id": full["parents"][0]["id"], "isRoot": False}],
        "properties": [{"key": "k"}],
    }
    validate_resource(got, "File")
    # "kind" and everything else only when asked for
    assert service.files().get(fileId=fid, fields="kind,fileSize").execute() == {
        "kind": "drive#file", "fileSize": "4"}
    # every field of the full answer can be selected, alone, with the same value
    for name, value in full.items():
        assert service.files().get(fileId=fid, fields=name).execute() == {name: value}, name
    # '*' and an absent optional field
    star = service.files().get(fileId=fid, fields="*").execute()
    assert [p["role"] for p in star.pop("permissions")] == ["owner"]  # only when asked for
    assert star == full
    assert service.files().get(fileId=fid, fields="id,trashedDate").execute() == {"id": fid}


def test_list_selections_items_and_next_page_token(fake_drive, service):
    folder = fake_drive.mkdir("MyDrive/L")
    ids = [fake_drive.put(f"MyDrive/L/{i}.bin", b"x" * i) for i in range(3)]
    page = service.files().list(q=f"'{folder}' in parents", maxResults=2,
                                fields="nextPageToken,items(id,title)").execute()
    assert set(page) == {"nextPageToken", "items"}
    assert page["items"] == [{"id": ids[0], "title": "0.bin"}, {"id": ids[1], "title": "1.bin"}]
    last = service.files().list(q=f"'{folder}' in parents", maxResults=2, pageToken=page["nextPageToken"],
                                fields="nextPageToken,items(id,title)").execute()
    assert last == {"items": [{"id": ids[2], "title": "2.bin"}]}  # no token on the last page
    nested = service.files().list(q=f"'{folder}' in parents", fields="items/labels/trashed").execute()
    assert nested == {"items": [{"labels": {"trashed": False}}] * 3}


def test_pydrive2_fetch_metadata_with_fields(fake_drive, drive):
    fid = fake_drive.put("MyDrive/p.bin", b"12345")
    f = drive.CreateFile({"id": fid})
    f.FetchMetadata(fields="title,fileSize,labels/trashed")
    assert (f["title"], f["fileSize"], f["labels"]) == ("p.bin", "5", {"trashed": False})
    assert "md5Checksum" not in f.metadata
    listing = drive.ListFile({"q": "title = 'p.bin'", "fields": "items(id,md5Checksum)"}).GetList()
    assert [dict(x) for x in listing] == [{"id": fid, "md5Checksum": fake_drive.metadata(fid)["md5Checksum"]}]


@pytest.mark.parametrize(
    "fields, bad",
    [
        ("id,titel", "titel"),
        ("labels/stared", "labels/stared"),
        ("items(id)", "items"),  # a File has no "items"
        ("id,(", "id,("),
        ("parents(id", "parents(id"),
        ("name", "name"),  # Drive v3 name, not v2
    ],
)
def test_invalid_selections_are_400_invalid_parameter(fake_drive, service, fields, bad):
    fid = fake_drive.put("MyDrive/e.bin", b"e")
    with pytest.raises(HttpError) as info:
        service.files().get(fileId=fid, fields=fields).execute()
    assert info.value.resp.status == 400
    detail = info.value.error_details[0]
    assert (detail["reason"], detail["location"]) == ("invalidParameter", "fields")
    assert bad in detail["message"]


def test_fields_on_other_resources(fake_drive, service):
    fid = fake_drive.put("MyDrive/o.bin", b"o")
    about = service.about().get(fields="user/emailAddress,rootFolderId").execute()
    assert about == {"user": {"emailAddress": fake_drive.default_user}, "rootFolderId": fake_drive.root_id()}
    perms = service.permissions().list(fileId=fid, fields="items(role,type)").execute()
    assert perms == {"items": [{"role": "owner", "type": "user"}]}
    with pytest.raises(HttpError) as info:
        service.about().get(fields="title").execute()
    assert info.value.resp.status == 400


def test_list_items_rendered_for_a_selection_equal_the_full_items(fake_drive, service):
    """A listing renders only the selected fields of each file (the emulator skips the
    permission, trash and people look-ups that only other fields need): every field, alone
    or with others, has the value it has in the full listing, whatever the file's situation."""
    me = fake_drive.default_user
    folder = fake_drive.mkdir("MyDrive/mixed")
    fake_drive.put("MyDrive/mixed/mine.jpg", b"jpg", description="d", properties={"k": "v"})
    fake_drive.mkdir("MyDrive/mixed/sub")
    gone = fake_drive.put("MyDrive/mixed/gone.bin", b"g")
    fake_drive.trash(gone)
    theirs = fake_drive.put("MyDrive/shared/theirs.bin", b"t", owner="bob")
    fake_drive.share(theirs, writers=[me], owner="bob")
    fake_drive.add_shared_drive("Team", members={me: "writer"})
    fake_drive.put("Shareddrives/Team/t.bin", b"team")
    everything = (f"'{folder}' in parents or title = 'theirs.bin' or title = 't.bin'")
    full = service.files().list(q=everything, supportsAllDrives=True,
                                includeItemsFromAllDrives=True).execute()["items"]
    assert {i["title"] for i in full} == {"mine.jpg", "sub", "gone.bin", "theirs.bin", "t.bin"}
    assert {i["title"]: i["labels"]["trashed"] for i in full}["gone.bin"] is True
    assert {i["title"]: i["ownedByMe"] for i in full}["theirs.bin"] is False

    def listed(fields: str) -> list[dict]:
        return service.files().list(q=everything, supportsAllDrives=True,
                                    includeItemsFromAllDrives=True,
                                    fields=f"items({fields})").execute()["items"]

    names = sorted({name for item in full for name in item})
    assert {"capabilities", "labels", "owners", "userPermission", "shared", "etag"} <= set(names)
    for name in names:
        assert listed(name) == [{name: i[name]} if name in i else {} for i in full], name
    mixed = ["id", "etag", "labels", "capabilities", "shared", "owners", "lastModifyingUser"]
    assert listed(",".join(mixed)) == [{k: i[k] for k in mixed if k in i} for i in full]
