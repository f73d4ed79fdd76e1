"""The Drive emulator's HTTP surface: google-api-python-client, google-auth and raw HTTP.

Complements test_fakedrive_pydrive2.py with what PyDrive2 does not exercise:
the other grants and token checks, multipart/media uploads, method override,
``fields=``, ordering, permissions, the share-link web paths and persistence.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from discovery_schema import validate_error_body, validate_resource

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import (
    drive_service,
    oauth_credentials,
    service_account_credentials,
)

pytestmark = pytest.mark.emulator


# ----------------------------------------------------------------- helpers


def refresh_grant_token(fd: FakeDrive, user: str | None = None) -> str:
    """An access token for ``user`` obtained with the refresh_token grant over HTTP."""
    client_id, secret, refresh = fd.issue_refresh_token(user)
    form = urlencode(
        {"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret, "refresh_token": refresh}
    ).encode()
    with urllib.request.urlopen(fd.url + "token", data=form, timeout=10) as resp:
        return json.loads(resp.read())["access_token"]


def call(
    fd: FakeDrive,
    method: str,
    target: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One raw HTTP request; returns (status, headers, body)."""
    url = urlsplit(fd.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        conn.request(method, target, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


class _FormParser(HTMLParser):
    """Collects the virus-scan page's form action, hidden inputs and links."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: dict[str, str] = {}
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("type") == "hidden":
            self.inputs[a["name"]] = a.get("value", "")
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])


@pytest.fixture
def service(fake_drive: FakeDrive, sa_key: Path) -> Any:
    """googleapiclient drive v2 with google-auth service-account credentials."""
    return drive_service(fake_drive, service_account_credentials(sa_key))


# --------------------------------------------------------------------- auth


def test_google_auth_service_account_and_api_client(fake_drive, service):
    about = service.about().get().execute()
    assert about["user"]["emailAddress"] == fake_drive.default_user
    assert service.files().get(fileId="root").execute()["id"] == fake_drive.root_id()
    assert [r.status for r in fake_drive.requests if r.path == "/token"] == [200]


def test_refresh_token_grant(fake_drive):
    import google.auth.exceptions
    import google.auth.transport.requests
    from google.oauth2.credentials import Credentials

    fake_drive.add_user("carol")
    creds = oauth_credentials(fake_drive, "carol")
    service = drive_service(fake_drive, creds)
    assert service.about().get().execute()["user"]["emailAddress"] == "carol@example.com"

    bad_secret = Credentials(
        None, refresh_token=creds.refresh_token, token_uri=fake_drive.token_uri,
        client_id=creds.client_id, client_secret="wrong",
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_client"):
        bad_secret.refresh(google.auth.transport.requests.Request())
    bad_token = Credentials(
        None, refresh_token="1//nope", token_uri=fake_drive.token_uri,
        client_id=creds.client_id, client_secret=creds.client_secret,
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        bad_token.refresh(google.auth.transport.requests.Request())


def test_self_signed_service_account_jwt_is_accepted_as_bearer(fake_drive, sa_key):
    from google.auth import jwt

    creds = jwt.Credentials.from_service_account_file(str(sa_key), audience=fake_drive.url)
    service = drive_service(fake_drive, creds)
    assert service.about().get().execute()["user"]["emailAddress"] == fake_drive.default_user
    assert not [r for r in fake_drive.requests if r.path == "/token"]


def test_access_tokens_expire(fake_drive):
    fake_drive.token_lifetime_s = 1
    token = refresh_grant_token(fake_drive)
    assert call(fake_drive, "GET", "/drive/v2/about", token=token)[0] == 200
    time.sleep(1.2)
    status, headers, body = call(fake_drive, "GET", "/drive/v2/about", token=token)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(body)["error"]["errors"][0]["reason"] == "authError"


def _assertion(key: dict[str, str], **claims: Any) -> bytes:
    from google.auth import crypt, jwt

    signer = crypt.RSASigner.from_service_account_info(key)
    now = int(time.time())
    payload = {
        "iss": key["client_email"],
        "aud": key["token_uri"],
        "scope": "https://www.googleapis.com/auth/drive",
        "iat": now,
        "exp": now + 600,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(signer, payload, key_id=key["private_key_id"])


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({}, None),
        ({"aud": "https://elsewhere.example.com/token"}, "invalid_grant"),
        ({"aud": "https://oauth2.googleapis.com/token"}, None),  # what google-auth signs for
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "invalid_grant"),
        ({"exp": int(time.time()) + 7200}, "invalid_grant"),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant"),
        ({"scope": None}, "invalid_scope"),
        ({"sub": "nobody@example.com"}, "unauthorized_client"),
    ],
)
def test_jwt_bearer_grant_checks_the_assertion(fake_drive, claims, error):
    key = fake_drive.service_account_info()
    form = urlencode(
        {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": _assertion(key, **claims)}
    ).encode()
    status, _, body = call(
        fake_drive, "POST", "/token", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    answer = json.loads(body)
    if error is None:
        assert status == 200
        assert answer["token_type"] == "Bearer" and answer["expires_in"] > 0
    else:
        assert status in (400, 401)
        assert answer["error"] == error


def test_delegated_subject_signs_in_as_that_user(fake_drive):
    fake_drive.add_user("dave")
    key = fake_drive.service_account_info()
    form = urlencode(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": _assertion(key, sub="dave@example.com"),
        }
    ).encode()
    token = json.loads(call(fake_drive, "POST", "/token", body=form)[2])["access_token"]
    about = json.loads(call(fake_drive, "GET", "/drive/v2/about", token=token)[2])
    assert about["user"]["emailAddress"] == "dave@example.com"


# ------------------------------------------------------------------ uploads


def test_multipart_and_media_uploads(fake_drive, service):
    from googleapiclient.http import MediaIoBaseUpload

    data = b"multipart payload \x00\x01\n--not-a-boundary\n"
    created = service.files().insert(
        body={"title": "mp.bin", "description": "via multipart", "properties": [{"key": "k", "value": "v"}]},
        media_body=MediaIoBaseUpload(io.BytesIO(data), "application/x-test", resumable=False),
    ).execute()
    assert fake_drive.get(created["id"]) == data
    assert (created["title"], created["mimeType"], created["description"]) == (
        "mp.bin",
        "application/x-test",
        "via multipart",
    )
    assert created["md5Checksum"] == hashlib.md5(data).hexdigest()

    new = b"replaced with a simple media upload"
    updated = service.files().update(
        fileId=created["id"],
        media_body=MediaIoBaseUpload(io.BytesIO(new), "application/x-test", resumable=False),
    ).execute()
    assert fake_drive.get(created["id"]) == new
    assert updated["fileSize"] == str(len(new))
    kinds = [r.query.get("uploadType") for r in fake_drive.requests if r.path.startswith("/upload/")]
    assert kinds == ["multipart", "media"]


def test_multipart_with_crlf_line_breaks(fake_drive):
    token = refresh_grant_token(fake_drive)
    body = (
        b"--xyz\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        b'{"title": "crlf.txt"}\r\n'
        b"--xyz\r\nContent-Type: text/plain\r\n\r\n"
        b"line one\r\nline two\r\n"
        b"--xyz--\r\n"
    )
    status, _, raw = call(
        fake_drive,
        "POST",
        "/upload/drive/v2/files?uploadType=multipart",
        token=token,
        body=body,
        headers={"Content-Type": 'multipart/related; boundary="xyz"'},
    )
    assert status == 200
    created = json.loads(raw)
    assert created["title"] == "crlf.txt"
    assert fake_drive.get(created["id"]) == b"line one\r\nline two"


def test_resumable_upload_location_is_absolute_and_status_query_works(fake_drive):
    token = refresh_grant_token(fake_drive)
    status, headers, _ = call(
        fake_drive,
        "POST",
        "/upload/drive/v2/files?uploadType=resumable",
        token=token,
        body=b'{"title": "r.bin"}',
        headers={"Content-Type": "application/json", "X-Upload-Content-Length": "10"},
    )
    assert status == 200
    location = headers["Location"]
    assert location.startswith(fake_drive.url + "upload/drive/v2/files?")
    target = location[len(fake_drive.url) - 1 :]
    status, headers, _ = call(fake_drive, "PUT", target, token=token, body=b"", headers={"Content-Range": "bytes */10"})
    assert status == 308 and "Range" not in headers
    status, headers, _ = call(
        fake_drive, "PUT", target, token=token, body=b"01234", headers={"Content-Range": "bytes 0-4/10"}
    )
    assert (status, headers["Range"]) == (308, "bytes=0-4")
    status, headers, _ = call(fake_drive, "PUT", target, token=token, body=b"", headers={"Content-Range": "bytes */10"})
    assert (status, headers["Range"]) == (308, "bytes=0-4")
    status, _, raw = call(
        fake_drive, "PUT", target, token=token, body=b"56789", headers={"Content-Range": "bytes 5-9/10"}
    )
    assert status == 200
    assert fake_drive.get(json.loads(raw)["id"]) == b"0123456789"


# -------------------------------------------------------------------- files


def test_long_list_query_arrives_as_post_with_method_override(fake_drive, service):
    fid = fake_drive.put("MyDrive/n299.bin", b"z")
    q = " or ".join(f"title = 'n{i}.bin'" for i in range(300))
    assert len(q) > 2048

    result = service.files().list(q=q).execute()

    assert [f["id"] for f in result["items"]] == [fid]
    (listing,) = [r for r in fake_drive.requests if r.path == "/drive/v2/files"]
    assert (listing.wire_method, listing.method, listing.status) == ("POST", "GET", 200)
    assert listing.query["q"] == q


def test_fields_selects_parts_of_the_answer(fake_drive, service):
    fid = fake_drive.put("MyDrive/f/sel.bin", b"abc")
    got = service.files().get(fileId=fid, fields="id,title,parents(id),labels/trashed").execute()
    assert got == {
        "id": fid,
        "title": "sel.bin",
        "parents": [{"id": fake_drive.resolve("MyDrive/f")}],
        "labels": {"trashed": False},
    }
    validate_resource(got, "File")
    listing = service.files().list(q="title = 'sel.bin'", fields="nextPageToken,items(id,fileSize)").execute()
    assert listing == {"items": [{"id": fid, "fileSize": "3"}]}
    # A selector that does not parse is a 400, as on Drive (see test_fakedrive_fields.py).
    from googleapiclient.errors import HttpError

    with pytest.raises(HttpError) as info:
        service.files().get(fileId=fid, fields="id,(").execute()
    assert info.value.resp.status == 400 and info.value.error_details[0]["reason"] == "invalidParameter"


def test_order_by_and_paging(fake_drive, service):
    for name in ("b.bin", "d.bin", "a.bin", "c.bin", "e.bin"):
        fake_drive.put(f"MyDrive/o/{name}", b"1")
    folder = fake_drive.resolve("MyDrive/o")
    titles: list[str] = []
    token = None
    pages = 0
    while True:
        page = service.files().list(
            q=f"'{folder}' in parents", orderBy="title desc", maxResults=2, pageToken=token
        ).execute()
        titles += [f["title"] for f in page["items"]]
        pages += 1
        token = page.get("nextPageToken")
        if not token:
            break
    assert titles == ["e.bin", "d.bin", "c.bin", "b.bin", "a.bin"]
    assert pages == 3


def test_error_bodies_have_google_shape(fake_drive):
    token = refresh_grant_token(fake_drive)
    cases = [
        ("GET", "/drive/v2/files/1doesNotExist0000000000000000000x", 404, "notFound"),
        ("GET", "/drive/v2/files?maxResults=5000", 400, "invalid"),
        ("GET", "/drive/v2/files?q=" + urllib.request.quote("title = "), 400, "invalid"),
        ("GET", "/drive/v2/files?pageToken=garbage", 400, "invalid"),
        ("PATCH", "/drive/v2/files/root", 400, "parseError"),
    ]
    for method, target, code, reason in cases:
        status, headers, body = call(fake_drive, method, target, token=token, body=b"{" if method == "PATCH" else None)
        assert status == code, target
        assert headers["Content-Type"].startswith("application/json")
        parsed = json.loads(body)
        validate_error_body(parsed)
        assert parsed["error"]["errors"][0]["reason"] == reason
    assert json.loads(call(fake_drive, "GET", cases[0][1], token=token)[2])["error"]["errors"][0]["location"] == "fileId"


def test_copy_touch_children_parents_generate_ids_and_empty_trash(fake_drive, service):
    src = fake_drive.put("MyDrive/s/one.bin", b"one")
    folder = fake_drive.resolve("MyDrive/s")

    ids = service.files().generateIds(maxResults=3).execute()
    assert ids["kind"] == "drive#generatedIds"
    assert all(len(i) == 33 and re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids["ids"])
    made = service.files().insert(body={"id": ids["ids"][0], "title": "given-id.txt", "parents": [{"id": folder}]}).execute()
    assert made["id"] == ids["ids"][0]
    assert made["fileSize"] == "0"

    copy = service.files().copy(fileId=src, body={"title": "two.bin"}).execute()
    assert copy["parents"][0]["id"] == folder and fake_drive.get(copy["id"]) == b"one"
    touched = service.files().touch(fileId=src).execute()
    assert touched["modifiedDate"] >= fake_drive.metadata(copy["id"])["createdDate"]

    children = service.children().list(folderId=folder).execute()
    assert {c["id"] for c in children["items"]} == {src, copy["id"], made["id"]}
    parents = service.parents().list(fileId=src).execute()
    assert [p["id"] for p in parents["items"]] == [folder]

    service.files().trash(fileId=copy["id"]).execute()
    service.files().emptyTrash().execute()
    assert not fake_drive.exists(copy["id"]) and fake_drive.exists(src)


def test_permissions_make_a_file_public(fake_drive, service):
    fid = fake_drive.put("MyDrive/p/share.bin", b"shared bytes")
    web = f"/download?id={fid}&export=download"
    assert call(fake_drive, "GET", web)[0] == 403

    perm = service.permissions().insert(fileId=fid, body={"type": "anyone", "role": "reader"}).execute()
    assert (perm["type"], perm["role"]) == ("anyone", "reader")
    assert call(fake_drive, "GET", web)[2] == b"shared bytes"
    assert service.files().get(fileId=fid).execute()["shared"] is True
    roles = {p["role"] for p in service.permissions().list(fileId=fid).execute()["items"]}
    assert roles == {"owner", "reader"}

    service.permissions().delete(fileId=fid, permissionId=perm["id"]).execute()
    assert call(fake_drive, "GET", web)[0] == 403


def test_every_response_so_far_matches_the_discovery_schema(fake_drive, service, validate_responses):
    fake_drive.put("MyDrive/v/x.bin", b"x", properties={"a": "b"})
    fid = fake_drive.resolve("MyDrive/v/x.bin")
    service.about().get().execute()
    service.files().list(q="trashed = false").execute()
    service.files().get(fileId=fid).execute()
    service.files().patch(fileId=fid, body={"title": "y.bin"}).execute()
    service.properties().list(fileId=fid).execute()
    service.permissions().list(fileId=fid).execute()
    service.files().trash(fileId=fid).execute()
    service.files().untrash(fileId=fid).execute()
    assert validate_responses(fake_drive) == 8


def test_empty_files_upload_and_download(fake_drive, drive):
    f = drive.CreateFile({"title": "empty.txt"})
    f.SetContentString("")
    f.Upload()
    assert f["fileSize"] == "0" and fake_drive.get(f["id"]) == b""
    fresh = drive.CreateFile({"id": f["id"]})
    assert fresh.GetContentString() == ""
    assert b"".join(fresh.GetContentIOBuffer()) == b""


def test_head_request_sends_headers_only(fake_drive):
    fid = fake_drive.put("MyDrive/h.bin", b"0123456789", public=True)
    status, headers, body = call(fake_drive, "HEAD", f"/download?id={fid}&export=download")
    assert (status, headers["Content-Length"], body) == (200, "10", b"")
    (record,) = [r for r in fake_drive.requests if r.method == "HEAD"]
    assert record.bytes == 0


def test_stop_and_start_keeps_port_and_files(fake_drive):
    fid = fake_drive.put("MyDrive/r.bin", b"restart")
    url = fake_drive.url
    fake_drive.stop()
    with pytest.raises(RuntimeError):
        _ = fake_drive.url
    fake_drive.start()
    assert fake_drive.url == url
    assert call(fake_drive, "GET", f"/drive/v2/files/{fid}?alt=media", token=refresh_grant_token(fake_drive))[2] == (
        b"restart"
    )


# ------------------------------------------------------------ web downloads


def test_public_file_downloads_through_share_link_paths(fake_drive):
    data = bytes(range(256)) * 40
    fid = fake_drive.put("MyDrive/w/weights ä.bin", data, public=True)

    status, headers, _ = call(fake_drive, "GET", f"/uc?export=download&id={fid}")
    assert status == 303
    assert headers["Location"] == f"{fake_drive.url}download?id={fid}&export=download"
    with urllib.request.urlopen(f"{fake_drive.url}uc?export=download&id={fid}", timeout=10) as resp:
        assert resp.read() == data
        assert "attachment" in resp.headers["Content-Disposition"]
        assert "weights%20%C3%A4.bin" in resp.headers["Content-Disposition"]
    status, headers, body = call(
        fake_drive, "GET", f"/download?id={fid}&export=download", headers={"Range": "bytes=10-19"}
    )
    assert (status, body, headers["Content-Range"]) == (206, data[10:20], f"bytes 10-19/{len(data)}")
    assert not any(r.headers.get("authorization") for r in fake_drive.requests)


def test_large_public_file_needs_the_virus_scan_confirmation():
    with FakeDrive(virus_scan_threshold_bytes=1000) as fd:
        data = b"L" * 5000
        fid = fd.put("MyDrive/large.bin", data, public=True)
        with urllib.request.urlopen(f"{fd.url}uc?export=download&id={fid}", timeout=10) as resp:
            page = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/html")
        assert "can't scan this file for viruses" in page
        form = _FormParser()
        form.feed(page)
        assert form.inputs["confirm"] and form.inputs["uuid"] and form.inputs["id"] == fid
        assert "confirm=" in page and "uuid=" in page

        with urllib.request.urlopen(f"{form.action}?{urlencode(form.inputs)}", timeout=10) as resp:
            assert resp.read() == data
        legacy = next(link for link in form.links if "confirm=" in link)
        with urllib.request.urlopen(legacy, timeout=10) as resp:
            assert resp.read() == data
        req = urllib.request.Request(f"{form.action}?{urlencode(form.inputs)}", headers={"Range": "bytes=4990-"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 206 and resp.read() == data[4990:]


def test_private_missing_and_trashed_files_get_html_error_pages(fake_drive):
    private = fake_drive.put("MyDrive/private.bin", b"no")
    trashed = fake_drive.put("MyDrive/trashed.bin", b"gone", public=True)
    fake_drive.trash(trashed)
    for file_id, code in ((private, 403), ("1" + "x" * 32, 404), (trashed, 404)):
        status, headers, body = call(fake_drive, "GET", f"/download?id={file_id}&export=download")
        assert status == code
        assert headers["Content-Type"].startswith("text/html")
        assert b"<html" in body and b"no" not in body.split(b"</title>")[-1][:2]


def test_web_download_faults_are_html(fake_drive):
    fid = fake_drive.put("MyDrive/q.bin", b"q", public=True)
    fake_drive.fail_next("quota", "/download")
    status, headers, body = call(fake_drive, "GET", f"/download?id={fid}&export=download")
    assert status == 403 and headers["Content-Type"].startswith("text/html")
    assert b"Too many users have viewed or downloaded this file recently" in body
    assert call(fake_drive, "GET", f"/download?id={fid}&export=download")[2] == b"q"


def test_share_link_pages(fake_drive):
    fid = fake_drive.put("MyDrive/page.bin", b"p", public=True)
    status, _, body = call(fake_drive, "GET", f"/file/d/{fid}/view?usp=sharing")
    assert status == 200 and b"page.bin" in body
    status, headers, _ = call(fake_drive, "GET", f"/open?id={fid}")
    assert status == 302 and headers["Location"].endswith(f"/file/d/{fid}/view")


# -------------------------------------------------------------- persistence


def test_data_dir_keeps_files_ids_and_keys_across_restarts(tmp_path):
    data_dir = tmp_path / "drive"
    key = tmp_path / "key.json"
    with FakeDrive(data_dir=data_dir, seed=3) as fd:
        fid = fd.put("MyDrive/keep/me.bin", b"persisted", description="d")
        fd.write_service_account(key)
        port = fd.port
        service = drive_service(fd, service_account_credentials(key))
        made = service.files().insert(body={"title": "made-by-client", "mimeType": "application/vnd.google-apps.folder"}).execute()

    with FakeDrive(data_dir=data_dir, seed=3, port=port) as fd:
        assert fd.get(fid) == b"persisted"
        assert fd.resolve("MyDrive/keep/me.bin") == fid
        assert fd.metadata(fid)["description"] == "d"
        service = drive_service(fd, service_account_credentials(key))
        assert service.files().get(fileId=made["id"]).execute()["title"] == "made-by-client"
        assert service.files().get_media(fileId=fid).execute() == b"persisted"
        # New ids keep coming from where the last run stopped.
        assert fd.put("MyDrive/new.bin", b"n") not in {fid, made["id"]}


def test_ids_are_drive_shaped_and_follow_the_seed():
    def ids(seed: int) -> list[str]:
        with FakeDrive(seed=seed) as fd:
            return [fd.put(f"MyDrive/f{i}.bin", b"") for i in range(3)]

    first = ids(1)
    assert first == ids(1)
    assert first != ids(2)
    assert all(len(i) == 33 and re.fullmatch(r"1[A-Za-z0-9_-]{32}", i) for i in first)


@pytest.mark.unit
def test_importing_colabmodels_testing_is_cheap():
    code = (
        "import sys, colabmodels.testing as t; "
        "print(any(m.startswith('colabmodels.testing.fakedrive') for m in sys.modules), 'http.server' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_children_and_parents_insert_get_delete(fake_drive, service):
    a = fake_drive.mkdir("MyDrive/A")
    b = fake_drive.mkdir("MyDrive/B")
    fid = fake_drive.put("MyDrive/A/f.bin", b"f")
    ref = service.children().insert(folderId=b, body={"id": fid}).execute()
    validate_resource(ref, "ChildReference")
    assert ref["id"] == fid
    assert {p["id"] for p in service.parents().list(fileId=fid).execute()["items"]} == {a, b}
    assert service.children().get(folderId=b, childId=fid).execute()["id"] == fid
    service.children().delete(folderId=a, childId=fid).execute()
    assert [p["id"] for p in service.parents().list(fileId=fid).execute()["items"]] == [b]
    parent = service.parents().insert(fileId=fid, body={"id": a}).execute()
    validate_resource(parent, "ParentReference")
    assert service.parents().get(fileId=fid, parentId=a).execute()["id"] == a
    service.parents().delete(fileId=fid, parentId=b).execute()
    assert fake_drive.resolve("MyDrive/A/f.bin") == fid and fake_drive.resolve("MyDrive/B/f.bin") is None
    from googleapiclient.errors import HttpError

    with pytest.raises(HttpError) as info:
        service.children().get(folderId=b, childId=fid).execute()
    assert info.value.resp.status == 404
    with pytest.raises(HttpError) as info:
        service.children().insert(folderId=fid, body={"id": a}).execute()  # not a folder
    assert info.value.resp.status == 400
