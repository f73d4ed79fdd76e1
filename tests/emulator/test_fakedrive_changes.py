"""Issue 14: the Drive v2 change feed of the emulator (changes.getStartPageToken/list/get).

Enough for a client to tell whether a folder changed since it cached a listing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import drive_service, service_account_credentials

pytestmark = pytest.mark.emulator


@pytest.fixture
def service(fake_drive: FakeDrive, sa_key: Path) -> Any:
    return drive_service(fake_drive, service_account_credentials(sa_key))


def all_changes(service: Any, token: str, **kw: Any) -> tuple[list[dict[str, Any]], str]:
    """Every change since ``token`` (following pages) and the new start token."""
    items: list[dict[str, Any]] = []
    while True:
        page = service.changes().list(pageToken=token, **kw).execute()
        items += page["items"]
        if "nextPageToken" in page:
            token = page["nextPageToken"]
            continue
        return items, page["newStartPageToken"]


def folder_changed(service: Any, token: str, folder_id: str) -> tuple[bool, str]:
    items, new_token = all_changes(service, token)
    hit = any(
        c["deleted"] or any(p["id"] == folder_id for p in c["file"].get("parents", [])) or c["fileId"] == folder_id
        for c in items
    )
    return hit, new_token


def test_a_cached_folder_listing_can_be_checked_for_changes(fake_drive, service):
    folder = fake_drive.mkdir("MyDrive/cached")
    fake_drive.put("MyDrive/cached/a.bin", b"a")
    other = fake_drive.put("MyDrive/elsewhere.bin", b"x")

    token = service.changes().getStartPageToken().execute()["startPageToken"]
    assert token.isdigit()
    assert folder_changed(service, token, folder) == (False, token)  # nothing happened yet

    service.files().patch(fileId=other, body={"title": "renamed.bin"}).execute()
    changed, token = folder_changed(service, token, folder)
    assert not changed  # a change outside the folder

    new = fake_drive.put("MyDrive/cached/b.bin", b"b")
    changed, token = folder_changed(service, token, folder)
    assert changed

    service.files().trash(fileId=new).execute()
    items, token2 = all_changes(service, token)
    assert [(c["fileId"], c["deleted"], c["file"]["labels"]["trashed"]) for c in items] == [(new, False, True)]

    service.files().delete(fileId=new).execute()
    items, _ = all_changes(service, token2)
    assert [(c["fileId"], c["deleted"], "file" in c) for c in items] == [(new, True, False)]


def test_change_ids_pages_and_largest_change_id(fake_drive, service):
    start = int(service.changes().getStartPageToken().execute()["startPageToken"])
    ids = [fake_drive.put(f"MyDrive/c{i}.bin", b"x") for i in range(5)]
    page = service.changes().list(pageToken=str(start), maxResults=2).execute()
    assert [c["fileId"] for c in page["items"]] == ids[:2]
    assert "newStartPageToken" not in page and page["nextPageToken"]
    assert int(page["largestChangeId"]) >= start + 4
    assert page["largestChangeId"] == service.about().get().execute()["largestChangeId"]
    change_ids = [int(c["id"]) for c in page["items"]]
    assert change_ids == sorted(change_ids) and change_ids[0] >= start

    # the v2 startChangeId works too, and a file changed twice shows once, with its newest change
    service.files().patch(fileId=ids[0], body={"description": "d"}).execute()
    items, _ = all_changes(service, str(start))
    assert [c["fileId"] for c in items] == ids[1:] + ids[:1]
    legacy = service.changes().list(startChangeId=str(start)).execute()
    assert [c["fileId"] for c in legacy["items"]] == ids[1:] + ids[:1]

    one = service.changes().get(changeId=items[0]["id"]).execute()
    assert one["fileId"] == ids[1] and one["kind"] == "drive#change"
    with pytest.raises(HttpError) as info:
        service.changes().list(pageToken="not-a-token").execute()
    assert info.value.resp.status == 400


def test_changes_are_per_user_and_shared_drive_aware(fake_drive, service, tmp_path):
    start = service.changes().getStartPageToken().execute()["startPageToken"]
    fake_drive.add_user("bob")
    fake_drive.put("MyDrive/bobs.bin", b"b", owner="bob")  # not visible to ada
    drive_id = fake_drive.add_shared_drive("Team")
    in_drive = fake_drive.put("Shareddrives/Team/t.bin", b"t")
    mine = fake_drive.put("MyDrive/mine.bin", b"m")

    plain, _ = all_changes(service, start)
    assert [c["fileId"] for c in plain] == [mine]
    with_drives, _ = all_changes(service, start, supportsAllDrives=True, includeItemsFromAllDrives=True)
    assert {c["fileId"] for c in with_drives} == {in_drive, mine}
    assert [c["driveId"] for c in with_drives if c["fileId"] == in_drive] == [drive_id]
    only_drive, _ = all_changes(service, start, driveId=drive_id, supportsAllDrives=True,
                                includeItemsFromAllDrives=True)
    assert [c["fileId"] for c in only_drive] == [in_drive]
