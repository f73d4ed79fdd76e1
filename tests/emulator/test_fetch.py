"""cm.fetch against the Drive emulator: ranges, faults, resume, many processes, the cache."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import colabmodels as cm
from colabmodels.cachestore import cache
from colabmodels.errors import OfflineError

MiB = 1024 * 1024


def media_requests(fd, file_id=None):
    return [r for r in fd.requests
            if r.query.get("alt") == "media" and (file_id is None or file_id in r.path)]


def metadata_requests(fd):
    return [r for r in fd.requests if r.path.startswith("/drive/v2/") and r.query.get("alt") != "media"]


def ranges_of(records):
    out = []
    for r in records:
        value = r.headers.get("range", "")
        if value.startswith("bytes="):
            start, _, end = value[6:].partition("-")
            out.append((int(start), int(end) + 1 if end else None))
    return out


def payload(n, seed=0):
    """Incompressible, reproducible bytes."""
    out, block, i = bytearray(), hashlib.sha256(str(seed).encode()).digest(), 0
    while len(out) < n:
        out += hashlib.sha256(block + i.to_bytes(8, "little")).digest() * 64
        i += 1
    return bytes(out[:n])


def link(file_id):
    return f"https://drive.google.com/file/d/{file_id}/view?usp=sharing"


def test_large_file_downloads_in_parallel_ranges_and_verifies(drive_env, monkeypatch):
    from colabmodels.testing import FakeDrive

    data = payload(64 * MiB, seed=1)
    with FakeDrive(bandwidth_bytes_per_s=32 * MiB) as fd:
        fd.write_service_account(drive_env.key_path)
        monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fd.url)
        fid = fd.put("MyDrive/models/big.bin", data)
        path = cm.fetch(link(fid), progress=False)
        assert path.read_bytes() == data
        media = media_requests(fd, fid)
        starts = sorted(r[0] for r in ranges_of(media))
        assert len(media) >= 8, "a 64 MiB file should arrive as several ranged requests"
        assert starts[0] == 0 and len(set(starts)) == len(starts)
        assert sum(r.bytes for r in media) == len(data)
        # several connections were open at once: the ranges overlapped in time
        peak_parallel = max(_overlaps(media))
        assert peak_parallel >= 2


def _overlaps(records):
    events = []
    for r in records:
        events += [(r.started, 1), (r.started + (r.duration_s or 0), -1)]
    level, out = 0, [0]
    for _, delta in sorted(events):
        level += delta
        out.append(level)
    return out


def test_faults_never_corrupt(drive_env, monkeypatch):
    from colabmodels.testing import FakeDrive

    monkeypatch.setenv("COLABMODELS_CHUNK_BYTES", str(256 * 1024))
    monkeypatch.setattr("colabmodels.retry.BACKOFF_BASE_S", 0.01)
    faults = {"503": 0.05, "drop": 0.02, "429": 0.02}
    with FakeDrive(faults=faults, seed=7) as fd:
        fd.write_service_account(drive_env.key_path)
        monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fd.url)
        blobs = {}
        for i in range(100):
            data = payload(4096 + i * 9973, seed=100 + i)
            blobs[fd.put(f"MyDrive/many/f{i}.bin", data)] = data
        for fid, data in blobs.items():
            assert cm.fetch(link(fid), progress=False).read_bytes() == data
        injected = [r for r in fd.requests if r.fault]
        assert len(injected) >= 5, "the faults were really injected"
    assert cache.verify() == []
    assert len(cache.entries()) == 100


def test_hit_costs_one_metadata_request_online_and_none_offline(drive_env, monkeypatch):
    fid = drive_env.put("MyDrive/models/a.pth", payload(300_000))
    first = cm.fetch(link(fid), progress=False)
    before = len(drive_env.requests)
    again = cm.fetch(link(fid), progress=False)
    new = drive_env.requests[before:]
    assert again == first
    assert len(new) == 1 and new[0].query.get("alt") != "media"
    monkeypatch.setenv("COLABMODELS_OFFLINE", "1")
    before = len(drive_env.requests)
    assert cm.fetch(link(fid), progress=False) == first
    assert cm.fetch(f"https://drive.google.com/open?id={fid}", progress=False) == first
    assert len(drive_env.requests) == before
    with pytest.raises(OfflineError, match="not in the cache"):
        cm.fetch("https://drive.google.com/file/d/1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx/view")


def test_path_hit_costs_one_metadata_request(drive_env):
    drive_env.put("MyDrive/models/deep/er/a.pth", payload(1000))
    first = cm.fetch("MyDrive/models/deep/er/a.pth", progress=False)
    before = len(drive_env.requests)
    assert cm.fetch("/content/drive/MyDrive/models/deep/er/a.pth", progress=False) == first
    assert len(drive_env.requests) - before == 1


def test_a_path_whose_file_was_trashed_and_made_again_reads_the_new_file(drive_env):
    """The remembered id of a path goes stale when its file is trashed and the path is made
    again (a model folder deleted and saved anew): the path resolves afresh, not to the trash."""
    drive_env.put("MyDrive/again/w.bin", b"the first file")
    assert cm.fetch("MyDrive/again/w.bin", progress=False).read_bytes() == b"the first file"
    cm.mount().drive.CreateFile({"id": cm.mount().resolve("MyDrive/again")}).Trash()
    with pytest.raises(FileNotFoundError):  # trashed, nothing new yet
        cm.fetch("MyDrive/again/w.bin", progress=False)
    drive_env.put("MyDrive/again/w.bin", b"the second file")
    assert cm.fetch("MyDrive/again/w.bin", progress=False).read_bytes() == b"the second file"


def test_five_link_shapes_make_one_entry(drive_env):
    data = payload(123_456)
    fid = drive_env.put("MyDrive/x/model.bin", data)
    shapes = [
        f"https://drive.google.com/file/d/{fid}/view?usp=sharing",
        f"https://drive.google.com/open?id={fid}",
        f"https://drive.google.com/uc?id={fid}&export=download",
        f"https://drive.usercontent.google.com/download?id={fid}&export=download",
        fid,
    ]
    paths = {cm.fetch(s, progress=False) for s in shapes}
    assert len(paths) == 1
    assert len(cache.entries()) == 1
    assert len(media_requests(drive_env, fid)) == 1


def test_changed_file_is_fetched_again(drive_env):
    fid = drive_env.put("MyDrive/m/w.bin", b"version one")
    assert cm.fetch(fid, progress=False).read_bytes() == b"version one"
    f = cm.mount().drive.CreateFile({"id": fid})  # the owner updates it with PyDrive2
    f.SetContentString("version two!")
    f.Upload()
    assert cm.fetch(fid, progress=False).read_bytes() == b"version two!"


def test_corrupted_blob_is_found_by_verify_and_fetched_again(drive_env):
    data = payload(50_000)
    fid = drive_env.put("MyDrive/c/model.bin", data)
    path = cm.fetch(fid, progress=False)
    stat = path.stat()
    with open(path, "r+b") as fh:  # flip a byte, keep size and mtime: only a hash can tell
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    bad = cache.verify()
    assert [e.name for e in bad] == ["model.bin"]
    assert cm.fetch(fid, progress=False).read_bytes() == data
    assert cache.verify() == []


def test_cap_evicts_least_recently_used(drive_env, monkeypatch):
    ids = [drive_env.put(f"MyDrive/lru/{i}.bin", payload(100_000, seed=i)) for i in range(4)]
    for fid in ids[:3]:
        cm.fetch(fid, progress=False)
        time.sleep(0.05)
    cm.fetch(ids[0], progress=False)  # 0 is now the most recently used; 1 the least
    monkeypatch.setenv("COLABMODELS_CACHE_MAX_BYTES", str(300_000))
    cm.fetch(ids[3], progress=False)
    names = sorted(e.name for e in cache.entries())
    assert names == ["0.bin", "2.bin", "3.bin"]


def test_entry_in_use_is_not_evicted(drive_env):
    a = drive_env.put("MyDrive/u/a.bin", payload(100_000, seed=1))
    b = drive_env.put("MyDrive/u/b.bin", payload(100_000, seed=2))
    cm.fetch(a, progress=False)
    cm.fetch(b, progress=False)
    entry_a = next(e for e in cache.entries() if e.name == "a.bin")
    with cache.in_use(entry_a):
        removed = cache.prune(max_bytes=0)
    assert [e.name for e in removed] == ["b.bin"]
    assert entry_a.path.exists()


def test_folder_is_fetched_as_a_tree(drive_env):
    drive_env.put("MyDrive/sm/model/saved_model.pb", b"pb")
    drive_env.put("MyDrive/sm/model/variables/variables.index", b"index")
    drive_env.put("MyDrive/sm/model/variables/variables.data-00000-of-00001", payload(70_000))
    path = cm.fetch("MyDrive/sm/model", progress=False)
    assert path.is_dir()
    assert (path / "saved_model.pb").read_bytes() == b"pb"
    assert (path / "variables" / "variables.index").read_bytes() == b"index"
    assert cache.verify() == []


def test_public_link_without_signing_in(isolated, fake_drive, monkeypatch):
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fake_drive.url)
    data = payload(200_000)
    fid = fake_drive.put("MyDrive/pub/model.bin", data, public=True)
    path = cm.fetch(link(fid), progress=False)
    assert path.read_bytes() == data
    assert all("authorization" not in r.headers for r in fake_drive.requests)


CHILD = """
import sys, colabmodels as cm
print(cm.fetch(sys.argv[1], progress=False), flush=True)
"""


def _child_env(fd, tmp, **extra):
    env = {**os.environ, "COLABMODELS_DRIVE_ENDPOINT": fd.url,
           "GOOGLE_APPLICATION_CREDENTIALS": str(fd.key_path),
           "COLABMODELS_CACHE_DIR": os.environ["COLABMODELS_CACHE_DIR"],
           "COLABMODELS_CONFIG_DIR": os.environ["COLABMODELS_CONFIG_DIR"], **extra}
    return env


def test_killed_download_resumes_only_missing_ranges(isolated, monkeypatch):
    from colabmodels.testing import FakeDrive

    data = payload(32 * MiB, seed=3)
    with FakeDrive(bandwidth_bytes_per_s=4 * MiB) as fd:
        fd.key_path = isolated / "key.json"
        fd.write_service_account(fd.key_path)
        monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fd.url)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fd.key_path))
        fid = fd.put("MyDrive/big/resume.bin", data)
        env = _child_env(fd, isolated, COLABMODELS_CHUNK_BYTES=str(2 * MiB), COLABMODELS_CONNECTIONS="2")
        child = subprocess.Popen([sys.executable, "-c", CHILD, fid], env=env)
        parts_files = []
        deadline = time.monotonic() + 60
        done_before: list[int] = []
        while time.monotonic() < deadline:
            parts_files = list((Path(os.environ["COLABMODELS_CACHE_DIR"]) / "partial").glob("*.parts.json"))
            if parts_files:
                try:
                    done_before = json.loads(parts_files[0].read_text())["done"]
                except (OSError, ValueError):
                    done_before = []
                if len(done_before) >= 6:
                    break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert len(done_before) >= 6, "the child should have finished some parts before the kill"
        state = json.loads(parts_files[0].read_text())
        done = set(state["done"])
        first_phase = len(fd.requests)
        monkeypatch.setenv("COLABMODELS_CHUNK_BYTES", str(2 * MiB))
        path = cm.fetch(fid, progress=False)
        assert path.read_bytes() == data
        resumed = [r for r in fd.requests[first_phase:] if r.query.get("alt") == "media"]
        for start, _ in ranges_of(resumed):
            assert start // (2 * MiB) not in done, \
                f"bytes from {start} belong to a part completed before the kill"
        sent_after = sum(r.bytes for r in resumed)
        assert sent_after <= len(data) - len(done) * 2 * MiB
        from colabmodels.transfer import CHECKPOINT_BYTES

        sent_in_all = sum(r.bytes for r in fd.requests if r.query.get("alt") == "media")
        # the child had 2 connections: each may re-fetch at most one checkpoint interval
        assert sent_in_all - len(data) <= 2 * CHECKPOINT_BYTES
        assert cache.verify() == []


def test_eight_processes_one_download(drive_env, isolated):
    data = payload(8 * MiB, seed=5)
    fid = drive_env.put("MyDrive/shared/one.bin", data)
    env = _child_env(drive_env, isolated)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, fid], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(8)]
    outs = [p.communicate(timeout=180)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 1
    assert Path(outs[0]).read_bytes() == data
    assert sum(r.bytes for r in media_requests(drive_env, fid)) == len(data)


def test_http_server_without_ranges_gets_one_stream(isolated, http_server, monkeypatch):
    data = payload(3 * MiB, seed=9)
    url = http_server.write("noranges.bin", data)
    http_server.reset()
    http_server.ignore_range = True
    monkeypatch.setenv("COLABMODELS_CHUNK_BYTES", str(512 * 1024))
    try:
        assert cm.fetch(url, progress=False).read_bytes() == data
        gets = [r for r in http_server.requests if r.method == "GET"]
    finally:
        http_server.reset()
    assert len(gets) == 1 and gets[0].bytes_sent == len(data)
