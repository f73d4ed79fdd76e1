"""Issue 14: Google Docs types in the Drive emulator: convert on upload, exportLinks, export, the BOM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from discovery_schema import validate_resource
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import drive_service, service_account_credentials

pytestmark = pytest.mark.emulator

DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
BOM = "\ufeff"


@pytest.fixture
def service(fake_drive: FakeDrive, sa_key: Path) -> Any:
    return drive_service(fake_drive, service_account_credentials(sa_key))


def upload(service: Any, title: str, data: bytes, mime: str, **kw: Any) -> dict[str, Any]:
    media = MediaInMemoryUpload(data, mimetype=mime, resumable=False)
    return service.files().insert(body={"title": title, "mimeType": mime}, media_body=media, **kw).execute()


@pytest.mark.parametrize(
    "mime, data, google, export_mime, expected",
    [
        ("text/plain", b"line one\nline two\n", DOC, "text/plain", f"{BOM}line one\r\nline two"),
        ("text/html", b"<html><body><h1>Title</h1><p>Hello <b>world</b></p></body></html>", DOC,
         "text/plain", f"{BOM}Title\r\nHello world"),
        ("text/csv", b"a,b\n1,2\n", SHEET, "text/csv", "a,b\n1,2\n"),
        ("text/csv", b"a,b\n1,2\n", SHEET, "text/tab-separated-values", "a\tb\n1\t2"),
    ],
    ids=["text", "html", "csv", "csv-as-tsv"],
)
def test_convert_true_makes_docs_that_export(service, mime, data, google, export_mime, expected):
    made = upload(service, "upload", data, mime, convert=True)
    validate_resource(made, "File")
    assert made["mimeType"] == google
    for absent in ("downloadUrl", "fileSize", "md5Checksum", "headRevisionId"):
        assert absent not in made
    assert export_mime in made["exportLinks"]
    assert made["capabilities"]["canDownload"] is True
    exported = service.files().export_media(fileId=made["id"], mimeType=export_mime).execute()
    assert exported.decode("utf-8") == expected


def test_without_convert_the_upload_stays_binary(service):
    plain = upload(service, "notes.txt", b"just text", "text/plain")
    assert plain["mimeType"] == "text/plain" and plain["fileSize"] == "9"


def test_pydrive2_content_string_and_file_with_and_without_bom(fake_drive, drive, tmp_path):
    fid = fake_drive.put("MyDrive/notes", b"alpha\nbeta\n", mime_type=DOC)
    doc = drive.CreateFile({"id": fid})
    assert doc.GetContentString(mimetype="text/plain") == f"{BOM}alpha\r\nbeta"
    assert doc.GetContentString(mimetype="text/plain", remove_bom=True) == "alpha\r\nbeta"
    assert "<p>alpha</p>" in doc.GetContentString(mimetype="text/html")

    doc.GetContentFile(str(tmp_path / "with.txt"), mimetype="text/plain")
    doc.GetContentFile(str(tmp_path / "without.txt"), mimetype="text/plain", remove_bom=True)
    assert (tmp_path / "with.txt").read_bytes() == BOM.encode() + b"alpha\r\nbeta"
    assert (tmp_path / "without.txt").read_bytes() == b"alpha\r\nbeta"
    # without a mimetype PyDrive2 tries get_media, gets 403 fileNotDownloadable and exports text/plain
    doc.GetContentFile(str(tmp_path / "default.txt"))
    assert (tmp_path / "default.txt").read_bytes() == BOM.encode() + b"alpha\r\nbeta"


def test_pydrive2_upload_with_convert(drive):
    f = drive.CreateFile({"title": "table.csv", "mimeType": "text/csv"})
    f.SetContentString("x,y\n3,4\n")
    f.Upload(param={"convert": True})
    assert f["mimeType"] == SHEET and "text/csv" in f["exportLinks"]
    assert drive.CreateFile({"id": f["id"]}).GetContentString(mimetype="text/csv") == "x,y\n3,4\n"


def test_downloading_a_doc_without_export_is_drives_error(fake_drive, service, drive):
    fid = fake_drive.put("MyDrive/a doc", b"words", mime_type=DOC)
    with pytest.raises(HttpError) as info:
        service.files().get_media(fileId=fid).execute()
    assert info.value.resp.status == 403 and info.value.error_details[0]["reason"] == "fileNotDownloadable"

    from pydrive2.files import FileNotDownloadableError

    with pytest.raises(FileNotDownloadableError):
        drive.CreateFile({"id": fid}).GetContentString()  # no mimetype: PyDrive2 finds no link
    with pytest.raises(HttpError) as info:
        service.files().export_media(fileId=fid, mimeType="application/pdf").execute()
    assert info.value.resp.status == 400
    binary = fake_drive.put("MyDrive/b.bin", b"b")
    with pytest.raises(HttpError) as info:
        service.files().export_media(fileId=binary, mimeType="text/plain").execute()
    assert info.value.resp.status == 403 and info.value.error_details[0]["reason"] == "fileNotExportable"


def test_export_links_need_access(fake_drive, drive, gauth):
    import urllib.error
    import urllib.request

    fid = fake_drive.put("MyDrive/private doc", b"secret", mime_type=DOC)
    f = drive.CreateFile({"id": fid})
    f.FetchMetadata()
    link = f["exportLinks"]["text/plain"]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(link, timeout=30)
    assert info.value.code == 404
    req = urllib.request.Request(link, headers={"Authorization": f"Bearer {gauth.credentials.access_token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.read() == BOM.encode() + b"secret"


def test_new_content_for_a_doc_is_converted_and_makes_a_revision(fake_drive, drive, service):
    fid = fake_drive.put("MyDrive/living doc", b"v1", mime_type=DOC)
    doc = drive.CreateFile({"id": fid})
    doc.FetchMetadata()
    doc.SetContentString("version two\nmore")
    doc.Upload()
    assert doc["mimeType"] == DOC
    assert doc.GetContentString(mimetype="text/plain", remove_bom=True) == "version two\r\nmore"
    revisions = service.revisions().list(fileId=fid).execute()["items"]
    assert len(revisions) == 2 and all("exportLinks" in r and "downloadUrl" not in r for r in revisions)
    with pytest.raises(HttpError) as info:
        service.revisions().delete(fileId=fid, revisionId=revisions[0]["id"]).execute()
    assert info.value.resp.status == 403
    media = MediaInMemoryUpload(b"\x00\x01", mimetype="application/octet-stream")
    with pytest.raises(HttpError) as info:
        service.files().update(fileId=fid, media_body=media).execute()
    assert info.value.resp.status == 400
