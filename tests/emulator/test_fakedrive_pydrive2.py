"""The real PyDrive2 (GoogleDrive, GoogleDriveFile, GDriveFileSystem) against the Drive emulator.

Every JSON body these tests make the emulator send is also validated against
the Drive v2 discovery schemas by the ``fake_drive`` fixture.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from discovery_schema import validate_resource

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import pydrive2_auth, pydrive2_drive

pytestmark = pytest.mark.emulator

FOLDER = "application/vnd.google-apps.folder"


def _blob(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _api_requests(fd: FakeDrive) -> list[Any]:
    return [r for r in fd.requests if r.path != "/token"]


@pytest.fixture
def upload_chunksize(monkeypatch: pytest.MonkeyPatch):
    """Force PyDrive2's resumable uploads to use a given chunk size (it has no option for it)."""
    import pydrive2.files
    from googleapiclient.http import MediaIoBaseUpload

    def force(chunksize: int) -> None:
        class ChunkedUpload(MediaIoBaseUpload):
            def __init__(self, fd: Any, mimetype: str, chunksize_ignored: int = 0, resumable: bool = True) -> None:
                super().__init__(fd, mimetype, chunksize=chunksize, resumable=resumable)

        monkeypatch.setattr(pydrive2.files, "MediaIoBaseUpload", ChunkedUpload)

    return force


# ------------------------------------------------------------------- auth


def test_service_account_login_goes_through_the_emulator_token_endpoint(fake_drive, drive):
    about = drive.GetAbout()

    validate_resource(about, "About")
    assert about["user"]["emailAddress"] == fake_drive.default_user == "ada@example.com"
    assert about["rootFolderId"] == fake_drive.root_id()
    token_calls = [r for r in fake_drive.requests if r.path == "/token"]
    assert [r.status for r in token_calls] == [200]
    about_calls = [r for r in fake_drive.requests if r.path == "/drive/v2/about"]
    assert [(r.status, r.user) for r in about_calls] == [(200, "ada@example.com")]
    assert about_calls[0].headers["authorization"].startswith("Bearer ya29.")


def test_request_without_token_gets_401_with_bearer_challenge(fake_drive):
    import urllib.error
    import urllib.request

    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        req = urllib.request.Request(fake_drive.url + "drive/v2/files", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        err = info.value
        assert err.code == 401
        assert err.headers["WWW-Authenticate"].startswith("Bearer ")
        body = json.loads(err.read())
        assert body["error"]["code"] == 401
        assert body["error"]["errors"][0]["reason"] == "authError"
    assert [r.status for r in fake_drive.requests] == [401, 401, 401]


def test_expired_tokens_make_pydrive2_refresh_and_retry(fake_drive, drive):
    drive.GetAbout()
    fake_drive.expire_tokens()
    fake_drive.reset_requests()

    about = drive.GetAbout()

    assert about["user"]["emailAddress"] == fake_drive.default_user
    assert [(r.path, r.status) for r in fake_drive.requests] == [
        ("/drive/v2/about", 401),
        ("/token", 200),
        ("/drive/v2/about", 200),
    ]


def _foreign_key(fake_drive: FakeDrive, tmp_path: Path, *, same_identity: bool) -> Path:
    """A key file pointing at ``fake_drive`` whose private key ``fake_drive`` never saw."""
    with FakeDrive() as other:
        info = other.service_account_info()
    if same_identity:
        # Known key id and account, wrong private key: the signature cannot verify.
        known = fake_drive.service_account_info()
        info = {**known, "private_key": info["private_key"]}
    info["token_uri"] = fake_drive.token_uri
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(info))
    return path


@pytest.mark.parametrize(
    ("same_identity", "message"),
    [(False, "account not found"), (True, "Invalid JWT Signature")],
)
def test_unknown_service_account_key_is_rejected(fake_drive, tmp_path, same_identity, message):
    from oauth2client.client import HttpAccessTokenRefreshError

    key = _foreign_key(fake_drive, tmp_path, same_identity=same_identity)
    drive = pydrive2_drive(fake_drive, key)

    with pytest.raises(HttpAccessTokenRefreshError, match="invalid_grant") as info:
        drive.GetAbout()

    assert message in str(info.value)
    assert [(r.path, r.status) for r in fake_drive.requests] == [("/token", 400)]


def test_google_auth_rejects_unknown_key_too(fake_drive, tmp_path):
    import google.auth.exceptions
    import google.auth.transport.requests
    from google.oauth2 import service_account

    key = _foreign_key(fake_drive, tmp_path, same_identity=False)
    creds = service_account.Credentials.from_service_account_file(
        str(key), scopes=["https://www.googleapis.com/auth/drive"]
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        creds.refresh(google.auth.transport.requests.Request())


# ---------------------------------------------------------------- listing


def test_list_pages_through_2500_files_in_one_folder(fake_drive, drive):
    folder = fake_drive.mkdir("MyDrive/many")
    for i in range(2500):
        fake_drive.put(f"MyDrive/many/f{i:04d}.bin", b"x")
    fake_drive.put("MyDrive/elsewhere.bin", b"y")
    fake_drive.reset_requests()

    files = drive.ListFile({"q": f"'{folder}' in parents and trashed=false"}).GetList()

    assert sorted(f["title"] for f in files) == [f"f{i:04d}.bin" for i in range(2500)]
    assert len({f["id"] for f in files}) == 2500
    calls = _api_requests(fake_drive)
    assert [r.path for r in calls] == ["/drive/v2/files"] * 3
    assert ["pageToken" in r.query for r in calls] == [False, True, True]
    assert {r.query["maxResults"] for r in calls} == {"1000"}
    assert [len(r.response_json["items"]) for r in calls] == [1000, 1000, 500]
    assert "nextPageToken" not in calls[-1].response_json

    pages = list(drive.ListFile({"q": f"'{folder}' in parents", "maxResults": 700}))
    assert [len(p) for p in pages] == [700, 700, 700, 400]


def test_root_alias_and_trashed_filter(fake_drive, drive):
    fake_drive.put("MyDrive/top.bin", b"1")
    fake_drive.put("MyDrive/sub/inner.bin", b"2")
    gone = fake_drive.put("MyDrive/gone.bin", b"3")
    fake_drive.trash(gone)

    top = drive.ListFile({"q": "'root' in parents and trashed=false"}).GetList()
    assert sorted(f["title"] for f in top) == ["sub", "top.bin"]
    assert all(f["parents"][0]["isRoot"] for f in top)
    trashed = drive.ListFile({"q": "'root' in parents and trashed=true"}).GetList()
    assert [f["title"] for f in trashed] == ["gone.bin"]

    root = drive.CreateFile({"id": "root"})
    root.FetchMetadata()
    assert root["id"] == fake_drive.root_id()
    assert root["mimeType"] == FOLDER
    assert root["parents"] == []


def test_unsupported_query_is_a_400_not_a_wrong_answer(fake_drive, drive):
    from pydrive2.files import ApiRequestError

    with pytest.raises(ApiRequestError) as info:
        drive.ListFile({"q": "fullText contains 'weights'"}).GetList()
    assert info.value.error["code"] == 400
    assert info.value.GetField("reason") == "invalid"
    assert info.value.GetField("location") == "q"


# --------------------------------------------------------------- metadata


def test_file_and_folder_metadata_use_v2_field_names(fake_drive, drive):
    data = _blob(3000)
    fid = fake_drive.put("MyDrive/models/vgg.pth", data, description="VGG16", properties={"acc": "0.93"})
    folder_id = fake_drive.resolve("MyDrive/models")

    f = drive.CreateFile({"id": fid})
    f.FetchMetadata(fetch_all=True)

    validate_resource(dict(f), "File")
    assert f["kind"] == "drive#file"
    assert f["title"] == "vgg.pth"
    assert f["fileSize"] == "3000"
    assert f["md5Checksum"] == _md5(data)
    assert f["description"] == "VGG16"
    assert [(p["key"], p["value"], p["visibility"]) for p in f["properties"]] == [("acc", "0.93", "PRIVATE")]
    assert [p["id"] for p in f["parents"]] == [folder_id]
    assert f["parents"][0]["isRoot"] is False
    assert f["labels"]["trashed"] is False
    assert f["downloadUrl"].startswith(fake_drive.url)
    assert f["webContentLink"].startswith(fake_drive.url + "uc?id=" + fid)
    assert f["owners"][0]["emailAddress"] == fake_drive.default_user
    assert f["userPermission"]["role"] == "owner"
    assert f["fileExtension"] == "pth"
    assert f["originalFilename"] == "vgg.pth"
    assert f["quotaBytesUsed"] == "3000"
    assert f["etag"].startswith('"')

    folder = drive.CreateFile({"id": folder_id})
    folder.FetchMetadata()
    assert folder["mimeType"] == FOLDER
    assert folder["parents"][0]["isRoot"] is True
    for absent in ("fileSize", "md5Checksum", "downloadUrl"):
        assert absent not in folder

    partial = drive.CreateFile({"id": fid})
    partial.FetchMetadata(fields="fileSize,title")
    assert set(partial) == {"id", "fileSize", "title"}


# --------------------------------------------------------------- download


def test_download_whole_and_by_ranges(fake_drive, drive, gauth, tmp_path):
    from googleapiclient.errors import HttpError

    data = _blob(3 * 1024 * 1024 + 17)
    fid = fake_drive.put("MyDrive/blob.bin", data)
    f = drive.CreateFile({"id": fid})

    # GetContentString fetches downloadUrl as given.
    assert f.GetContentString(encoding="latin-1").encode("latin-1") == data
    whole = [r for r in fake_drive.requests if r.query.get("alt") == "media"]
    assert [(r.status, r.bytes, r.query.get("source")) for r in whole] == [(200, len(data), "downloadUrl")]

    fake_drive.reset_requests()
    out = tmp_path / "out.bin"
    f.GetContentFile(str(out), chunksize=1024 * 1024)
    assert out.read_bytes() == data
    ranged = [r for r in fake_drive.requests if r.query.get("alt") == "media"]
    assert [r.range for r in ranged] == [
        "bytes=0-1048575",
        "bytes=1048576-2097151",
        "bytes=2097152-3145727",
        "bytes=3145728-4194303",
    ]
    assert [r.status for r in ranged] == [206] * 4
    assert [r.bytes for r in ranged] == [1048576] * 3 + [17]

    stream = f.GetContentIOBuffer(chunksize=512 * 1024)
    assert b"".join(stream) == data

    service = gauth.service
    req = service.files().get_media(fileId=fid)
    req.headers["Range"] = "bytes=100-199"
    assert req.execute() == data[100:200]
    req = service.files().get_media(fileId=fid)
    req.headers["Range"] = "bytes=-10"
    assert req.execute() == data[-10:]
    req = service.files().get_media(fileId=fid)
    req.headers["Range"] = f"bytes={len(data)}-"
    with pytest.raises(HttpError) as info:
        req.execute()
    assert info.value.resp.status == 416
    assert info.value.resp["content-range"] == f"bytes */{len(data)}"


def test_folders_are_not_downloadable(fake_drive, drive, tmp_path):
    from pydrive2.files import ApiRequestError

    folder_id = fake_drive.mkdir("MyDrive/just-a-folder")
    with pytest.raises(ApiRequestError) as info:
        drive.CreateFile({"id": folder_id}).GetContentFile(str(tmp_path / "x"))
    # PyDrive2 tries files.get(alt=media), gets fileNotDownloadable, then tries export.
    assert info.value.error["code"] == 403
    assert info.value.GetField("reason") == "fileNotExportable"
    media = [r for r in fake_drive.requests if r.path.startswith("/drive/v2/files/")]
    assert [(r.path.rsplit("/", 1)[-1], r.status) for r in media] == [(folder_id, 403), ("export", 403)]


# ----------------------------------------------------------------- upload


def test_create_folder_and_upload_small_file(fake_drive, drive):
    folder = drive.CreateFile({"title": "models", "mimeType": FOLDER})
    folder.Upload()
    assert fake_drive.metadata(folder["id"])["mimeType"] == FOLDER
    assert fake_drive.resolve("MyDrive/models") == folder["id"]

    fake_drive.reset_requests()
    f = drive.CreateFile({"title": "notes.txt", "parents": [{"id": folder["id"]}]})
    f.SetContentString("hello")
    f.Upload()

    assert fake_drive.get("MyDrive/models/notes.txt") == b"hello"
    assert f["md5Checksum"] == _md5(b"hello")
    assert f["mimeType"] == "text/plain"
    start, chunk = _api_requests(fake_drive)
    assert (start.method, start.path, start.query["uploadType"], start.status) == (
        "POST",
        "/upload/drive/v2/files",
        "resumable",
        200,
    )
    assert start.headers["x-upload-content-length"] == "5"
    assert chunk.method == "PUT" and "upload_id" in chunk.query
    assert (chunk.content_range, chunk.status) == ("bytes 0-4/5", 200)


def test_upload_6mb_in_forced_chunks(fake_drive, drive, upload_chunksize):
    upload_chunksize(1024 * 1024)
    data = _blob(6 * 1024 * 1024 + 5, seed=6)
    f = drive.CreateFile({"title": "six.bin"})
    f.content = io.BytesIO(data)
    f.Upload()

    assert fake_drive.get(f["id"]) == data
    assert f["fileSize"] == str(len(data))
    puts = [r for r in fake_drive.requests if r.method == "PUT"]
    assert [r.status for r in puts] == [308] * 6 + [200]
    assert puts[0].content_range == f"bytes 0-1048575/{len(data)}"
    assert puts[-1].content_range == f"bytes 6291456-6291460/{len(data)}"
    assert sum(r.request_bytes for r in puts) == len(data)


def test_upload_120mb_file_in_chunks_and_download_it_back(fake_drive, drive, upload_chunksize, tmp_path):
    upload_chunksize(32 * 1024 * 1024)
    src = tmp_path / "big.bin"
    block = _blob(1024 * 1024, seed=120)
    digest = hashlib.md5()
    with open(src, "wb") as out:
        for i in range(120):
            chunk = block[i:] + block[:i]
            out.write(chunk)
            digest.update(chunk)

    f = drive.CreateFile({"title": "big.bin"})
    f.SetContentFile(str(src))
    f.Upload()
    f.content.close()

    assert f["md5Checksum"] == digest.hexdigest()
    assert f["fileSize"] == str(120 * 1024 * 1024)
    assert (fake_drive.store.blob_path(fake_drive.store.get(f["id"]))).stat().st_size == 120 * 1024 * 1024
    puts = [r for r in fake_drive.requests if r.method == "PUT"]
    assert [r.status for r in puts] == [308, 308, 308, 200]

    fake_drive.reset_requests()
    back = tmp_path / "back.bin"
    drive.CreateFile({"id": f["id"]}).GetContentFile(str(back))
    got = hashlib.md5()
    with open(back, "rb") as fh:
        while chunk := fh.read(1 << 20):
            got.update(chunk)
    assert got.hexdigest() == digest.hexdigest()
    media = [r for r in fake_drive.requests if r.query.get("alt") == "media"]
    assert sum(r.bytes for r in media) == 120 * 1024 * 1024


def test_upload_interrupted_by_503_resumes_where_it_stopped(fake_drive, gauth):
    from googleapiclient.errors import HttpError
    from googleapiclient.http import MediaIoBaseUpload

    data = _blob(5 * 1024 * 1024 + 123, seed=5)
    media = MediaIoBaseUpload(io.BytesIO(data), "application/octet-stream", chunksize=1024 * 1024, resumable=True)
    request = gauth.service.files().insert(body={"title": "resumed.bin"}, media_body=media)
    response = None
    calls = 0
    failures = []
    while response is None:
        calls += 1
        # bounded: a server that keeps failing (a full disk) must fail the test, not loop on
        # (a clean-clone run on a full disk grew this loop's list of errors to 22 GB)
        assert calls <= 20, f"no response after {calls - 1} chunk requests: {failures[:10]}"
        if calls == 3:
            fake_drive.fail_next("503", "upload_id")
        if calls == 5:
            fake_drive.fail_next("drop", "upload_id")
        try:
            _, response = request.next_chunk()
        except HttpError as e:
            failures.append(e.resp.status)
        except ConnectionError as e:
            failures.append(type(e).__name__)

    assert failures == [503, "ConnectionResetError"]
    assert response["md5Checksum"] == _md5(data)
    assert fake_drive.get(response["id"]) == data
    puts = [r for r in fake_drive.requests if r.method == "PUT"]
    status_queries = [r for r in puts if r.content_range == f"bytes */{len(data)}"]
    assert [(r.status, r.bytes) for r in status_queries] == [(308, 0), (308, 0)]
    assert [r.fault for r in puts if r.fault] == ["503", "drop"]
    # Each failed chunk was sent again from the byte the 308 reported.
    ranges = [r.content_range for r in puts if r.fault is None and r.content_range != f"bytes */{len(data)}"]
    assert ranges.count(f"bytes 2097152-3145727/{len(data)}") == 1
    assert ranges.count(f"bytes 3145728-4194303/{len(data)}") == 1


def test_pydrive2_sees_json_error_reason_of_a_failed_upload(fake_drive, drive):
    from pydrive2.files import ApiRequestError

    fake_drive.fail_next("503", "upload_id")
    f = drive.CreateFile({"title": "x.bin"})
    f.SetContentString("abc")
    with pytest.raises(ApiRequestError) as info:
        f.Upload()
    assert info.value.error["code"] == 503
    assert info.value.GetField("reason") == "backendError"


# ---------------------------------------------------------------- updates


def test_update_content_and_metadata(fake_drive, drive):
    fid = fake_drive.put("MyDrive/a/notes.txt", b"v1")
    other = fake_drive.mkdir("MyDrive/b")
    before = fake_drive.metadata(fid)

    f = drive.CreateFile({"id": fid})
    f.FetchMetadata()
    fake_drive.reset_requests()
    f.SetContentString("version two")
    f.Upload()
    assert fake_drive.get(fid) == b"version two"
    assert f["md5Checksum"] == _md5(b"version two")
    assert int(f["version"]) > int(before["version"])
    assert f["modifiedDate"] >= before["modifiedDate"]
    start = _api_requests(fake_drive)[0]
    assert (start.method, start.path) == ("PUT", f"/upload/drive/v2/files/{fid}")

    fake_drive.reset_requests()
    f["title"] = "renamed.txt"
    f["description"] = "moved and renamed"
    f["parents"] = [{"id": other}]
    f.Upload()
    (patch,) = _api_requests(fake_drive)
    assert (patch.method, patch.path, patch.status) == ("PATCH", f"/drive/v2/files/{fid}", 200)
    assert fake_drive.resolve("MyDrive/b/renamed.txt") == fid
    assert fake_drive.resolve("MyDrive/a/notes.txt") is None
    assert fake_drive.metadata(fid)["description"] == "moved and renamed"
    assert fake_drive.get(fid) == b"version two"


def test_properties(fake_drive, drive, gauth):
    from googleapiclient.errors import HttpError

    fid = fake_drive.put("MyDrive/m.bin", b"m")
    props = gauth.service.properties()

    inserted = props.insert(fileId=fid, body={"key": "acc", "value": "0.93", "visibility": "PUBLIC"}).execute()
    assert (inserted["kind"], inserted["key"], inserted["value"]) == ("drive#property", "acc", "0.93")
    props.insert(fileId=fid, body={"key": "framework", "value": "torch"}).execute()
    listed = props.list(fileId=fid).execute()
    assert {(p["key"], p["visibility"]) for p in listed["items"]} == {("acc", "PUBLIC"), ("framework", "PRIVATE")}
    assert props.get(fileId=fid, propertyKey="acc", visibility="PUBLIC").execute()["value"] == "0.93"
    patched = props.patch(fileId=fid, propertyKey="acc", visibility="PUBLIC", body={"value": "0.95"}).execute()
    assert patched["value"] == "0.95"
    props.delete(fileId=fid, propertyKey="acc", visibility="PUBLIC").execute()
    with pytest.raises(HttpError) as info:
        props.get(fileId=fid, propertyKey="acc", visibility="PUBLIC").execute()
    assert info.value.resp.status == 404
    assert json.loads(info.value.content)["error"]["errors"][0]["reason"] == "notFound"

    # Through the file resource, as PyDrive2 users set them.
    f = drive.CreateFile({"id": fid})
    f.FetchMetadata()
    f["properties"] = [{"key": "note", "value": "fine-tuned"}]
    f.Upload()
    assert {p["key"]: p["value"] for p in fake_drive.metadata(fid)["properties"]} == {
        "framework": "torch",
        "note": "fine-tuned",
    }
    found = drive.ListFile({"q": "properties has { key='note' and value='fine-tuned' and visibility='PRIVATE' }"})
    assert [x["id"] for x in found.GetList()] == [fid]

    # Drive limits key + value to 124 bytes.
    with pytest.raises(HttpError) as info:
        props.insert(fileId=fid, body={"key": "big", "value": "x" * 200}).execute()
    assert info.value.resp.status == 400


def test_trash_untrash_delete(fake_drive, drive):
    from pydrive2.files import ApiRequestError

    folder_id = fake_drive.mkdir("MyDrive/dir")
    fid = fake_drive.put("MyDrive/dir/doomed.bin", b"bye")
    child = fake_drive.put("MyDrive/dir/child.bin", b"c")
    f = drive.CreateFile({"id": fid})

    f.Trash()
    assert fake_drive.metadata(fid)["labels"]["trashed"] is True
    assert fake_drive.metadata(fid)["explicitlyTrashed"] is True
    live = drive.ListFile({"q": f"'{folder_id}' in parents and trashed=false"}).GetList()
    assert [x["id"] for x in live] == [child]

    f.UnTrash()
    assert fake_drive.metadata(fid)["labels"]["trashed"] is False

    # Trashing a folder trashes what is inside it.
    drive.CreateFile({"id": folder_id}).Trash()
    assert fake_drive.metadata(child)["labels"]["trashed"] is True
    drive.CreateFile({"id": folder_id}).UnTrash()

    f.Delete()
    assert not fake_drive.exists(fid)
    with pytest.raises(ApiRequestError) as info:
        drive.CreateFile({"id": fid}).FetchMetadata()
    assert info.value.error["code"] == 404
    assert info.value.GetField("reason") == "notFound"


def test_copy(fake_drive, drive):
    fid = fake_drive.put("MyDrive/src/orig.bin", b"payload", properties={"k": "v"})
    target = drive.CreateFile({"id": fake_drive.mkdir("MyDrive/dst")})
    target.FetchMetadata()
    copied = drive.CreateFile({"id": fid}).Copy(target_folder=target, new_title="copy.bin")
    assert copied["id"] != fid
    assert fake_drive.get("MyDrive/dst/copy.bin") == b"payload"
    assert copied["md5Checksum"] == _md5(b"payload")
    assert fake_drive.get(fid) == b"payload"


# ------------------------------------------------------------ other users


def test_file_of_another_user_is_refused(fake_drive, drive, tmp_path):
    from pydrive2.files import ApiRequestError

    secret = fake_drive.put("MyDrive/private.bin", b"secret", owner="bob")
    assert fake_drive.metadata(secret)["owners"][0]["emailAddress"] == "bob@example.com"

    for action in (
        lambda f: f.FetchMetadata(),
        lambda f: f.GetContentFile(str(tmp_path / "x")),
        lambda f: f.Trash(),
        lambda f: f.Delete(),
    ):
        with pytest.raises(ApiRequestError) as info:
            action(drive.CreateFile({"id": secret}))
        assert info.value.error["code"] == 404
        assert info.value.GetField("reason") == "notFound"
    assert fake_drive.get(secret) == b"secret"
    assert secret not in {f["id"] for f in drive.ListFile({"q": "trashed=false"}).GetList()}

    # Visible (shared as reader) but not writable: 403.
    shared = fake_drive.put("MyDrive/shared.bin", b"read me", owner="bob")
    fake_drive.share(shared, readers=["ada@example.com"], owner="bob")
    f = drive.CreateFile({"id": shared})
    f.FetchMetadata()
    assert f["userPermission"]["role"] == "reader"
    assert f.GetContentString() == "read me"
    f.SetContentString("overwrite")
    with pytest.raises(ApiRequestError) as info:
        f.Upload()
    assert info.value.error["code"] == 403
    assert info.value.GetField("reason") == "insufficientFilePermissions"
    assert fake_drive.get(shared) == b"read me"


def test_public_file_of_another_user_is_readable_but_not_listed(fake_drive, drive):
    folder = fake_drive.mkdir("MyDrive/pub", owner="bob", public=True)
    fid = fake_drive.put("MyDrive/pub/model.bin", b"public bytes", owner="bob")

    f = drive.CreateFile({"id": fid})
    assert f.GetContentString() == "public bytes"
    assert f["userPermission"]["role"] == "reader"
    assert fid not in {x["id"] for x in drive.ListFile({"q": "trashed=false"}).GetList()}
    assert [x["id"] for x in drive.ListFile({"q": f"'{folder}' in parents"}).GetList()] == [fid]


# -------------------------------------------------------- GDriveFileSystem


def test_gdrive_filesystem(fake_drive, gauth, tmp_path):
    from pydrive2.fs import GDriveFileSystem

    fake_drive.put("MyDrive/data/a.txt", b"A")
    fake_drive.put("MyDrive/data/sub/b.txt", b"BB")
    fs = GDriveFileSystem("root", google_auth=gauth)

    listing = {d["name"]: d for d in fs.ls("root/data", detail=True)}
    assert set(listing) == {"root/data/a.txt", "root/data/sub/"}
    assert listing["root/data/a.txt"]["size"] == 1
    assert listing["root/data/sub/"]["type"] == "directory"
    assert sorted(fs.find("root/data")) == ["root/data/a.txt", "root/data/sub/b.txt"]
    info = fs.info("root/data/sub/b.txt")
    assert (info["type"], info["size"], info["checksum"]) == ("file", 2, _md5(b"BB"))
    assert fs.cat_file("root/data/sub/b.txt") == b"BB"
    fs.get_file("root/data/a.txt", str(tmp_path / "a.txt"))
    assert (tmp_path / "a.txt").read_bytes() == b"A"
    assert fs.exists("root/data/a.txt") and not fs.exists("root/data/nope.txt")

    local = tmp_path / "new.bin"
    local.write_bytes(b"new content")
    fs.put_file(str(local), "root/up/deeper/new.bin")
    assert fake_drive.get("MyDrive/up/deeper/new.bin") == b"new content"

    a_id = fake_drive.resolve("MyDrive/data/a.txt")
    fs.rm_file("root/data/a.txt")
    assert fake_drive.metadata(a_id)["labels"]["trashed"] is True
    assert not fs.exists("root/data/a.txt")


def test_gdrive_filesystem_retries_injected_errors(fake_drive, gauth):
    from pydrive2.fs import GDriveFileSystem

    fake_drive.put("MyDrive/r/x.bin", b"xyz")
    fs = GDriveFileSystem("root", google_auth=gauth)
    fake_drive.fail_next("503", "alt=media")
    fake_drive.fail_next("403-user-rate", "alt=media")
    assert fs.cat_file("root/r/x.bin") == b"xyz"
    media = [r for r in fake_drive.requests if r.query.get("alt") == "media"]
    assert [r.status for r in media] == [503, 403, 206]


def test_pydrive2_auth_helper_builds_service_on_emulator(fake_drive, sa_key):
    gauth = pydrive2_auth(fake_drive, sa_key)
    assert gauth.service._baseUrl == fake_drive.url + "drive/v2/"


# ------------------------------------------------------------------- permissions, as real Drive gives them
# PyDrive2's own suite (shipped as pydrive2/test, written against real Drive; run against the
# emulator by test_pydrive2_own_suite.py) checks these; here they are checked one by one.


def test_file_permissions_only_when_asked_for(fake_drive, drive):
    f = drive.CreateFile({"title": "perm.txt"})
    f.SetContentString("x")
    f.Upload()
    assert "permissions" not in f  # not among the fields Drive returns by default

    f.FetchMetadata(fields="permissions")
    assert [(p["type"], p["role"]) for p in f["permissions"]] == [("user", "owner")]
    assert f["permissions"][0]["emailAddress"] == fake_drive.default_user

    g = drive.CreateFile({"id": f["id"]})
    g.FetchMetadata(fetch_all=True)  # fields="*"
    assert "hasThumbnail" in g and "thumbnailVersion" in g
    assert [p["role"] for p in g["permissions"]] == ["owner"]
    validate_resource(g.metadata, "File")

    listed = drive.ListFile({"q": f"'{f['parents'][0]['id']}' in parents and trashed=false",
                             "fields": "items(id,permissions)"}).GetList()
    assert [p["role"] for p in next(i for i in listed if i["id"] == f["id"])["permissions"]] == ["owner"]
    plain = drive.ListFile({"q": f"'{f['parents'][0]['id']}' in parents"}).GetList()
    assert all("permissions" not in i for i in plain)


@pytest.mark.parametrize("body", [
    {"type": "anyone", "value": "anyone", "role": "reader"},
    {"type": "anyone", "role": "writer", "withLink": True},
])
def test_an_anyone_permission_is_listed_first_and_deleting_it_keeps_the_owner(fake_drive, drive, body):
    f = drive.CreateFile({"title": "shared.txt"})
    f.SetContentString("x")
    f.Upload()
    assert len(f.GetPermissions()) == 1

    f.InsertPermission(body)
    assert [p["type"] for p in f["permissions"]] == ["anyone", "user"]
    again = drive.CreateFile({"id": f["id"]})
    listed = again.GetPermissions()
    assert [p["type"] for p in listed] == ["anyone", "user"]

    f.DeletePermission(listed[0]["id"])  # the first one: the anyone permission, not the owner
    assert [(p["type"], p["role"]) for p in drive.CreateFile({"id": f["id"]}).GetPermissions()] \
        == [("user", "owner")]
