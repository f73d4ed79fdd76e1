"""Issue 14: revisions in the Drive emulator (one per content upload; list/get/patch/delete; old downloads)."""

from __future__ import annotations

import hashlib
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


def test_every_upload_makes_a_revision_and_old_ones_download(fake_drive, drive, tmp_path):
    f = drive.CreateFile({"title": "w.bin"})
    for n, text in enumerate(["first", "second!", "third..."]):
        f.SetContentString(text)
        f.Upload()
        if n == 0:
            f.FetchMetadata(fields="headRevisionId")
            first_head = f["headRevisionId"]
    f.Upload()  # a metadata-only update is not a revision
    f.FetchMetadata()
    revisions = f.GetRevisions()
    assert len(revisions) == 3
    for rev in revisions:
        validate_resource(rev, "Revision")
    assert revisions[0]["id"] == first_head
    assert f["headRevisionId"] == revisions[-1]["id"]
    assert [r["fileSize"] for r in revisions] == ["5", "7", "8"]
    assert len({r["id"] for r in revisions}) == 3

    service = drive.auth.service
    old = service.files().get_media(fileId=f["id"], revisionId=revisions[0]["id"]).execute()
    assert old == b"first"
    # the revision's downloadUrl, through PyDrive2's authorized http
    resp, content = drive.auth.http.request(revisions[1]["downloadUrl"])
    assert resp.status == 200 and content == b"second!"
    assert f.GetContentString() == "third..."


def test_get_patch_delete_and_errors(fake_drive, service):
    fid = fake_drive.put("MyDrive/r.bin", b"v1")
    fake_drive.put("MyDrive/r.bin", b"v2-longer", replace=True)
    items = service.revisions().list(fileId=fid).execute()["items"]
    assert [i["md5Checksum"] for i in items] == [hashlib.md5(b"v1").hexdigest(), hashlib.md5(b"v2-longer").hexdigest()]
    first, head = items[0]["id"], items[1]["id"]

    got = service.revisions().get(fileId=fid, revisionId=first).execute()
    assert got["id"] == first and got["pinned"] is False and got["mimeType"] == "application/octet-stream"
    pinned = service.revisions().patch(fileId=fid, revisionId=first, body={"pinned": True}).execute()
    assert pinned["pinned"] is True

    with pytest.raises(HttpError) as info:
        service.revisions().delete(fileId=fid, revisionId=head).execute()
    assert info.value.resp.status == 400
    service.revisions().delete(fileId=fid, revisionId=first).execute()
    assert [i["id"] for i in service.revisions().list(fileId=fid).execute()["items"]] == [head]
    with pytest.raises(HttpError) as info:
        service.revisions().get(fileId=fid, revisionId=first).execute()
    assert info.value.resp.status == 404
    with pytest.raises(HttpError) as info:
        service.files().get_media(fileId=fid, revisionId=first).execute()
    assert info.value.resp.status == 404
    assert fake_drive.get(fid) == b"v2-longer"
    assert not list(fake_drive.store.blob_dir.glob(f"{fid}.rev-*"))  # the old bytes are gone


def test_revision_paging_and_purge_limit(fake_drive, service):
    fake_drive.store.max_revisions = 3
    fid = fake_drive.put("MyDrive/many.bin", b"0")
    for i in range(1, 6):
        fake_drive.put("MyDrive/many.bin", str(i).encode(), replace=True)
    items = service.revisions().list(fileId=fid).execute()["items"]
    assert [i["fileSize"] for i in items] == ["1", "1", "1"] and len(items) == 3
    assert service.files().get_media(fileId=fid, revisionId=items[0]["id"]).execute() == b"3"
    page = service.revisions().list(fileId=fid, maxResults=2).execute()
    assert len(page["items"]) == 2 and page["nextPageToken"]
    rest = service.revisions().list(fileId=fid, maxResults=2, pageToken=page["nextPageToken"]).execute()
    assert [i["id"] for i in page["items"] + rest["items"]] == [i["id"] for i in items]
