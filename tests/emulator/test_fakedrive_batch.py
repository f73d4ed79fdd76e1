"""Issue 14: batch requests (googleapiclient BatchHttpRequest against /batch/drive/v2)."""

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


def test_batch_deletes_and_updates_many_files_in_one_request(fake_drive, service):
    ids = [fake_drive.put(f"MyDrive/b/{i}.bin", b"x") for i in range(6)]
    fake_drive.reset_requests()
    results: dict[str, Any] = {}

    def collect(request_id: str, response: Any, exception: Exception | None) -> None:
        results[request_id] = exception if exception is not None else response

    batch = service.new_batch_http_request(callback=collect)
    for i, fid in enumerate(ids[:3]):
        batch.add(service.files().delete(fileId=fid), request_id=f"del-{i}")
    for i, fid in enumerate(ids[3:]):
        batch.add(service.files().patch(fileId=fid, body={"title": f"renamed-{i}.bin"}, fields="id,title"),
                  request_id=f"patch-{i}")
    batch.add(service.files().get(fileId="1" + "n" * 32), request_id="missing")
    batch.execute()

    outer = [r for r in fake_drive.requests if r.path == "/batch/drive/v2"]
    assert len(outer) == 1 and outer[0].status == 200
    assert all(not fake_drive.exists(fid) for fid in ids[:3])
    assert {k: v for k, v in results.items() if k.startswith("patch")} == {
        f"patch-{i}": {"id": fid, "title": f"renamed-{i}.bin"} for i, fid in enumerate(ids[3:])
    }
    assert [results[f"del-{i}"] for i in range(3)] == [""] * 3  # 204: empty answers
    assert isinstance(results["missing"], HttpError) and results["missing"].resp.status == 404
    # each call is logged as its own request too
    calls = [(r.method, r.status) for r in fake_drive.requests if r.path.startswith("/drive/v2/files/")]
    assert sorted(calls) == sorted([("DELETE", 204)] * 3 + [("PATCH", 200)] * 3 + [("GET", 404)])


def test_batch_calls_need_credentials_and_at_most_100_calls(fake_drive, service):
    import urllib.error
    import urllib.request

    body = (b"--x\r\nContent-Type: application/http\r\n\r\nGET /drive/v2/about HTTP/1.1\r\n\r\n\r\n--x--\r\n")
    req = urllib.request.Request(fake_drive.url + "batch/drive/v2", data=body, method="POST",
                                 headers={"Content-Type": "multipart/mixed; boundary=x"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 401

    batch = service.new_batch_http_request()
    fid = fake_drive.put("MyDrive/one.bin", b"1")
    for _ in range(101):
        batch.add(service.files().get(fileId=fid, fields="id"))
    with pytest.raises(HttpError) as err:
        batch.execute()
    assert err.value.resp.status == 400
