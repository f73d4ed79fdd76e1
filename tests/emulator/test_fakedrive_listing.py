"""files.list of the Drive emulator: the folder index, cached ordered listings, ``sharedWithMe``.

A query whose conjunction requires ``'F' in parents`` is answered from the
store's children index and an ordered listing is sorted once for all of its
pages; both must give exactly what a scan of every file gives. The scan is
forced with a query of the same meaning that the planner cannot narrow
(``('F' in parents or starred = true) and starred = false``), and every check
goes through googleapiclient or PyDrive2 against the running emulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import (
    drive_service,
    pydrive2_drive,
    service_account_credentials,
)

pytestmark = pytest.mark.emulator

FOLDER_MIME = "application/vnd.google-apps.folder"


def service_as(fd: FakeDrive, user: str, tmp_path: Path) -> Any:
    key = tmp_path / f"{user}.json"
    fd.write_service_account(key, user=user)
    return drive_service(fd, service_account_credentials(key))


def list_all(svc: Any, q: str, order_by: str | None = None, page: int = 7) -> list[str]:
    """Titles of every match, following nextPageToken."""
    kwargs: dict[str, Any] = {"q": q, "maxResults": page}
    if order_by:
        kwargs["orderBy"] = order_by
    titles: list[str] = []
    token = None
    while True:
        resp = svc.files().list(pageToken=token, **kwargs).execute()
        titles += [f["title"] for f in resp["items"]]
        token = resp.get("nextPageToken")
        if not token:
            return titles


def indexed_and_scanned(svc: Any, folder: str, order_by: str | None) -> tuple[list[str], list[str]]:
    indexed = list_all(svc, f"'{folder}' in parents and starred = false", order_by)
    scanned = list_all(svc, f"('{folder}' in parents or starred = true) and starred = false", order_by)
    return indexed, scanned


@pytest.mark.parametrize("order_by", [None, "folder,title", "modifiedDate desc", "title desc,createdDate"])
def test_indexed_listing_equals_a_full_scan_through_every_kind_of_move(fake_drive, tmp_path, order_by):
    fd = fake_drive
    svc = service_as(fd, fd.default_user, tmp_path)
    box = fd.mkdir("MyDrive/box")
    other = fd.mkdir("MyDrive/other")
    ids = {f"f{i:02d}": fd.put(f"MyDrive/box/f{i:02d}.bin", bytes([i])) for i in range(20)}
    sub = fd.mkdir("MyDrive/box/sub")
    fd.put("MyDrive/other/o1.bin", b"o")

    def check() -> list[str]:
        indexed, scanned = indexed_and_scanned(svc, box, order_by)
        assert indexed == scanned
        return indexed

    assert len(check()) == 21
    files = svc.files()
    # patch with addParents/removeParents (a move), update with a new parents list
    files.patch(fileId=ids["f00"], body={}, addParents=other, removeParents=box).execute()
    files.update(fileId=ids["f01"], body={"parents": [{"id": other}, {"id": box}]}).execute()
    # parents.insert / parents.delete, children.insert / children.delete
    svc.parents().delete(fileId=ids["f02"], parentId=box).execute()
    svc.parents().insert(fileId=ids["f02"], body={"id": other}).execute()
    svc.children().insert(folderId=box, body={"id": fd.resolve("MyDrive/other/o1.bin")}).execute()
    svc.children().delete(folderId=box, childId=ids["f03"]).execute()
    # rename, star (leaves the listing), trash, delete, insert, copy
    files.patch(fileId=ids["f04"], body={"title": "zz-renamed.bin"}).execute()
    files.patch(fileId=ids["f05"], body={"labels": {"starred": True}}).execute()
    files.trash(fileId=ids["f06"]).execute()
    files.delete(fileId=ids["f07"]).execute()
    files.insert(body={"title": "new.bin", "parents": [{"id": box}]}).execute()
    files.copy(fileId=ids["f08"], body={"title": "a-copy.bin", "parents": [{"id": box}]}).execute()
    files.insert(body={"title": "inner", "mimeType": FOLDER_MIME, "parents": [{"id": sub}]}).execute()
    titles = check()
    assert "f00.bin" not in titles and "f02.bin" not in titles and "f03.bin" not in titles
    assert {"f01.bin", "o1.bin", "zz-renamed.bin", "new.bin", "a-copy.bin", "f06.bin"} <= set(titles)
    assert "f05.bin" not in titles and "f07.bin" not in titles and "inner" not in titles
    # the trashed one leaves a 'trashed = false' listing, from the index as from a scan
    q_live = f"'{box}' in parents and trashed = false and starred = false"
    q_scan = f"('{box}' in parents or starred = true) and not starred = true and trashed = false"
    assert list_all(svc, q_live, order_by) == list_all(svc, q_scan, order_by)
    assert "f06.bin" not in list_all(svc, q_live, order_by)
    # trashing the folder hides its children from 'trashed = false' (inherited trash)
    files.trash(fileId=sub).execute()
    files.trash(fileId=box).execute()
    assert list_all(svc, q_live, order_by) == [] == list_all(svc, q_scan, order_by)


def test_ordered_pages_see_a_change_made_between_them(fake_drive, tmp_path):
    fd = fake_drive
    svc = service_as(fd, fd.default_user, tmp_path)
    box = fd.mkdir("MyDrive/box")
    for i in range(10):
        fd.put(f"MyDrive/box/f{i}.bin", b"x")
    q = f"'{box}' in parents and trashed = false"
    first = svc.files().list(q=q, orderBy="title", maxResults=4).execute()
    assert [f["title"] for f in first["items"]] == ["f0.bin", "f1.bin", "f2.bin", "f3.bin"]
    # an unchanged store gives the same second page however often it is asked
    again = [svc.files().list(q=q, orderBy="title", maxResults=4, pageToken=first["nextPageToken"]).execute()
             for _ in range(2)]
    assert [f["title"] for f in again[0]["items"]] == ["f4.bin", "f5.bin", "f6.bin", "f7.bin"] == [
        f["title"] for f in again[1]["items"]
    ]
    # a rename sorts f0 to the end: the next page reflects it (offset paging, as before)
    svc.files().patch(fileId=first["items"][0]["id"], body={"title": "zz.bin"}).execute()
    second = svc.files().list(q=q, orderBy="title", maxResults=4, pageToken=first["nextPageToken"]).execute()
    assert [f["title"] for f in second["items"]] == ["f5.bin", "f6.bin", "f7.bin", "f8.bin"]
    # a change through the Python helpers is seen too
    fd.trash("MyDrive/box/f9.bin")
    assert list_all(svc, q, "title", page=3)[-2:] == ["f8.bin", "zz.bin"]
    # different users do not share a cached listing
    bob = service_as(fd, "bob@example.com", tmp_path)
    assert list_all(svc, q, "title") != [] == list_all(bob, q, "title")
    fd.share("MyDrive/box", readers=["bob"])
    assert list_all(bob, q, "title") == list_all(svc, q, "title")


def test_or_of_folders_and_persistence_reload_keep_the_index(tmp_path):
    data = tmp_path / "data"
    with FakeDrive(data) as fd:
        a, b = fd.mkdir("MyDrive/a"), fd.mkdir("MyDrive/b")
        for i in range(3):
            fd.put(f"MyDrive/a/a{i}.bin", b"a")
            fd.put(f"MyDrive/b/b{i}.bin", b"b")
        fd.put("MyDrive/loose.bin", b"l")
        svc = service_as(fd, fd.default_user, tmp_path)
        svc.files().patch(fileId=fd.resolve("MyDrive/a/a0.bin"), body={}, addParents=b, removeParents=a).execute()
        fd.save()
    with FakeDrive(data) as fd:
        svc = service_as(fd, fd.default_user, tmp_path)
        either = list_all(svc, f"'{a}' in parents or '{b}' in parents", "title")
        assert either == ["a0.bin", "a1.bin", "a2.bin", "b0.bin", "b1.bin", "b2.bin"]
        assert list_all(svc, f"'{a}' in parents", "title") == ["a1.bin", "a2.bin"]
        assert list_all(svc, f"'{b}' in parents") == ["a0.bin", "b0.bin", "b1.bin", "b2.bin"]  # creation order
        assert "loose.bin" in list_all(svc, f"'{a}' in parents or title = 'loose.bin'", "title")


def test_shared_with_me_is_only_what_was_shared_with_the_user_itself(fake_drive, tmp_path):
    fd = fake_drive
    ada = fd.default_user
    fd.add_user("bob@example.com")
    fd.put("MyDrive/theirs/net.pth", b"n", owner="bob")
    fd.put("MyDrive/theirs/sub/deep.pth", b"d", owner="bob")
    fd.put("MyDrive/theirs/direct.pth", b"x", owner="bob")
    fd.put("MyDrive/single.pth", b"s", owner="bob")
    fd.put("MyDrive/granted.pth", b"g", owner="bob")
    fd.put("MyDrive/by-link.pth", b"l", owner="bob")
    fd.put("MyDrive/mine.pth", b"m")
    fd.share("MyDrive/theirs", readers=[ada], owner="bob")
    fd.share("MyDrive/theirs/direct.pth", writers=[ada], owner="bob")
    fd.share("MyDrive/single.pth", readers=[ada], owner="bob")
    bob = service_as(fd, "bob@example.com", tmp_path)
    bob.permissions().insert(
        fileId=fd.resolve("MyDrive/granted.pth", owner="bob"),
        body={"type": "user", "role": "reader", "value": ada},
        sendNotificationEmails=False,
    ).execute()
    bob.permissions().insert(
        fileId=fd.resolve("MyDrive/by-link.pth", owner="bob"),
        body={"type": "anyone", "role": "reader", "withLink": True},
    ).execute()

    svc = service_as(fd, ada, tmp_path)
    shared = sorted(list_all(svc, "sharedWithMe = true and trashed = false", "title"))
    # the shared folder, not what is inside it; a file inside it shared by name is there too
    assert shared == ["direct.pth", "granted.pth", "single.pth", "theirs"]
    theirs = fd.resolve("MyDrive/theirs", owner="bob")
    inside = list_all(svc, f"'{theirs}' in parents and trashed = false", "title")
    assert inside == ["direct.pth", "net.pth", "sub"]  # still listable through the folder
    not_shared = list_all(svc, f"'{theirs}' in parents and sharedWithMe = false", "title")
    assert not_shared == ["net.pth", "sub"]
    # the resource agrees: sharedWithMeDate only on items shared with ada directly
    for title, expected in [("theirs", True), ("direct.pth", True), ("granted.pth", True), ("net.pth", False)]:
        item = svc.files().list(q=f"title = '{title}'").execute()["items"][0]
        assert ("sharedWithMeDate" in item) is expected, title
        assert ("sharingUser" in item) is expected, title
    # PyDrive2 sees the same "Shared with me"
    key = tmp_path / "ada-pydrive.json"
    fd.write_service_account(key, user=ada)
    drive = pydrive2_drive(fd, key)
    titles = sorted(f["title"] for f in drive.ListFile({"q": "sharedWithMe = true and trashed = false"}).GetList())
    assert titles == shared
    # and bob, the owner, has nothing shared with him
    assert list_all(bob, "sharedWithMe = true") == []
