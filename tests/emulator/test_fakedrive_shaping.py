"""Latency, bandwidth caps, concurrency and fault injection of the Drive emulator."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from colabmodels.testing import FakeDrive
from colabmodels.testing.fakedrive.client import pydrive2_drive
from colabmodels.testing.fakedrive.shaping import FaultPlan, TokenBucket

pytestmark = pytest.mark.emulator


def _token(fd: FakeDrive) -> str:
    client_id, secret, refresh = fd.issue_refresh_token()
    form = urlencode(
        {"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret, "refresh_token": refresh}
    ).encode()
    with urllib.request.urlopen(fd.url + "token", data=form, timeout=10) as resp:
        return json.loads(resp.read())["access_token"]


def _get(fd: FakeDrive, target: str, token: str | None = None, conn: http.client.HTTPConnection | None = None):
    """GET ``target``; returns (status, headers, body) or raises on a dropped connection."""
    url = urlsplit(fd.url)
    own = conn is None
    conn = conn or http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("GET", target, headers={"Authorization": f"Bearer {token}"} if token else {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        if own:
            conn.close()


def _blob(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# ----------------------------------------------------------------- faults


def _fault_run(seed: int, faults: dict[str, float], n: int = 80) -> tuple[list[object], list[object]]:
    with FakeDrive(faults=faults, seed=seed) as fd:
        fid = fd.put("MyDrive/f.bin", _blob(20000), public=True)
        token = _token(fd)
        outcomes: list[object] = []
        for i in range(n):
            target = (
                f"/drive/v2/files/{fid}?alt=media",
                "/drive/v2/about",
                f"/download?id={fid}&export=download",
            )[i % 3]
            try:
                outcomes.append(_get(fd, target, token)[0])
            except (ConnectionError, http.client.HTTPException):
                outcomes.append("dropped")
        records = [(r.path, r.fault) for r in fd.requests]
        assert [f for p, f in records if p == "/token"] == [None]
        return outcomes, [(p, f) for p, f in records if p != "/token"]


def test_same_seed_gives_the_same_faults():
    faults = {"rate": 0.3, "quota": 0.1}
    first = _fault_run(11, faults)
    again = _fault_run(11, faults)
    other = _fault_run(12, faults)

    assert first == again
    assert first[1] != other[1]
    kinds = [k for _, k in first[1] if k]
    assert {"503", "500", "429", "403-rate", "drop"} <= set(kinds)
    assert 10 <= len(kinds) <= 45
    assert "dropped" in first[0]
    # quota only ever hits downloads.
    assert all(path != "/drive/v2/about" for path, k in first[1] if k == "quota")


def test_faults_never_hit_the_token_endpoint():
    with FakeDrive(faults={"503": 1.0}) as fd:
        token = _token(fd)  # would fail if /token were faulted
        status, _, body = _get(fd, "/drive/v2/about", token)
        assert status == 503
        assert json.loads(body)["error"]["errors"][0]["reason"] == "backendError"
        assert [r.fault for r in fd.requests] == [None, "503"]


def test_scripted_faults(fake_drive):
    fid = fake_drive.put("MyDrive/s.bin", b"scripted")
    token = _token(fake_drive)
    media = f"/drive/v2/files/{fid}?alt=media"

    fake_drive.fail_next("429")
    status, headers, body = _get(fake_drive, "/drive/v2/about", token)
    assert (status, headers["Retry-After"]) == (429, "1")
    assert json.loads(body)["error"]["errors"][0]["reason"] == "rateLimitExceeded"

    fake_drive.fail_next("403-user-rate")
    status, _, body = _get(fake_drive, "/drive/v2/about", token)
    assert status == 403
    assert json.loads(body)["error"]["errors"][0]["reason"] == "userRateLimitExceeded"

    fake_drive.fail_next("quota")  # skips non-downloads, hits the next download
    assert _get(fake_drive, "/drive/v2/about", token)[0] == 200
    status, _, body = _get(fake_drive, media, token)
    assert status == 403
    assert json.loads(body)["error"]["errors"][0]["reason"] == "downloadQuotaExceeded"

    fake_drive.fail_next("500", path_contains="alt=media", count=2)
    assert _get(fake_drive, "/drive/v2/about", token)[0] == 200
    assert [_get(fake_drive, media, token)[0] for _ in range(3)] == [500, 500, 200]

    fake_drive.fail_next("401")
    status, headers, _ = _get(fake_drive, "/drive/v2/about", token)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert fake_drive.fault_plan.pending_scripted() == 0


def test_drop_sends_part_of_the_body_then_resets(fake_drive):
    data = _blob(1_000_000, 3)
    fid = fake_drive.put("MyDrive/d.bin", data)
    token = _token(fake_drive)

    fake_drive.fail_next("drop", "alt=media", drop_after_bytes=1000)
    with pytest.raises((ConnectionError, http.client.IncompleteRead)):
        _get(fake_drive, f"/drive/v2/files/{fid}?alt=media", token)
    fake_drive.fail_next("drop", "alt=media")
    with pytest.raises((ConnectionError, http.client.IncompleteRead)):
        _get(fake_drive, f"/drive/v2/files/{fid}?alt=media", token)
    assert _get(fake_drive, f"/drive/v2/files/{fid}?alt=media", token)[2] == data

    media = [r for r in fake_drive.requests if r.query.get("alt") == "media"]
    assert [(r.fault, r.status) for r in media] == [("drop", 200), ("drop", 200), (None, 200)]
    assert media[0].bytes == 1000
    assert 0 < media[1].bytes < len(data)
    assert media[2].bytes == len(data)


def test_fault_plan_validates_its_input():
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultPlan({"418": 0.1})
    with pytest.raises(ValueError, match="more than 1"):
        FaultPlan({"503": 0.6, "rate": 0.6})
    with pytest.raises(ValueError):
        FaultPlan().fail_next("teapot")


# --------------------------------------------------------------- shaping


def test_token_bucket_rate_and_burst():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(1000, burst=100, clock=lambda: now[0], sleep=sleep)
    bucket.take(100)
    assert slept == []
    bucket.take(500)
    assert slept == [pytest.approx(0.5)]
    now[0] += 10  # idle: refills only up to the burst
    bucket.take(300)
    assert slept[-1] == pytest.approx(0.2)


def test_latency_is_added_to_every_request():
    with FakeDrive(latency_ms=200) as fd:
        t0 = time.monotonic()
        assert _get(fd, "/")[0] == 200
        assert time.monotonic() - t0 >= 0.2


def test_per_connection_bandwidth_cap_applies_to_downloads_and_uploads():
    with FakeDrive(bandwidth_bytes_per_s=1_000_000) as fd:
        data = _blob(400_000)
        fid = fd.put("MyDrive/bw.bin", data, public=True)
        t0 = time.monotonic()
        assert _get(fd, f"/download?id={fid}&export=download")[2] == data
        assert 0.3 <= time.monotonic() - t0 < 3

        # Four connections at once each get the full per-connection rate.
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as ex:
            bodies = list(ex.map(lambda _: _get(fd, f"/download?id={fid}&export=download")[2], range(4)))
        assert bodies == [data] * 4
        assert time.monotonic() - t0 < 1.5

        token = _token(fd)
        url = urlsplit(fd.url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        t0 = time.monotonic()
        conn.request(
            "POST",
            "/upload/drive/v2/files?uploadType=media",
            body=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"},
        )
        resp = conn.getresponse()
        created = json.loads(resp.read())
        conn.close()
        assert resp.status == 200 and fd.get(created["id"]) == data
        assert time.monotonic() - t0 >= 0.3


def test_total_bandwidth_cap_is_shared_by_all_connections():
    with FakeDrive(total_bandwidth_bytes_per_s=2_000_000) as fd:
        data = _blob(400_000)
        fid = fd.put("MyDrive/bw.bin", data, public=True)
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as ex:
            bodies = list(ex.map(lambda _: _get(fd, f"/download?id={fid}&export=download")[2], range(4)))
        elapsed = time.monotonic() - t0
        assert bodies == [data] * 4
        assert 0.7 <= elapsed < 4  # 1.6 MB at 2 MB/s


# ------------------------------------------------------------ concurrency


def test_64_parallel_pydrive2_downloads(tmp_path: Path):
    with FakeDrive(latency_ms=150) as fd:
        key = tmp_path / "key.json"
        fd.write_service_account(key)
        drive = pydrive2_drive(fd, key)
        blobs = {fd.put(f"MyDrive/p/{i}.bin", _blob(64 * 1024, i)): _blob(64 * 1024, i) for i in range(64)}
        drive.GetAbout()  # sign in once, before the threads start
        fd.reset_requests()
        barrier = threading.Barrier(64)

        def fetch(fid: str) -> tuple[str, bytes]:
            barrier.wait(timeout=30)
            out = tmp_path / f"{fid}.bin"
            drive.CreateFile({"id": fid}).GetContentFile(str(out))
            return fid, out.read_bytes()

        t0 = time.monotonic()
        with ThreadPoolExecutor(64) as ex:
            results = dict(ex.map(fetch, blobs))
        elapsed = time.monotonic() - t0

        assert results == blobs
        media = [r for r in fd.requests if r.query.get("alt") == "media"]
        assert len(media) == 64 and {r.status for r in media} == {206}
        assert len({r.connection for r in media}) == 64
        # They really ran at the same time: 64 x 150 ms one after another would take 9.6 s.
        assert elapsed < 4
        starts = sorted(r.started for r in media)
        assert starts[-1] - starts[0] < 1.0


def test_keep_alive_connections_serve_many_requests(fake_drive):
    fid = fake_drive.put("MyDrive/k.bin", b"k" * 1000, public=True)
    url = urlsplit(fake_drive.url)

    def client(_: int) -> list[bytes]:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            return [_get(fake_drive, f"/download?id={fid}&export=download", conn=conn)[2] for _ in range(3)]
        finally:
            conn.close()

    with ThreadPoolExecutor(64) as ex:
        bodies = [b for chunk in ex.map(client, range(64)) for b in chunk]
    assert bodies == [b"k" * 1000] * 192
    by_conn: dict[int, int] = {}
    for r in fake_drive.requests:
        by_conn[r.connection] = by_conn.get(r.connection, 0) + 1
    assert len(by_conn) == 64 and set(by_conn.values()) == {3}
