"""Stop means stop: SIGINT (the notebook's Stop button) mid-download and mid-upload.

A child process fetches (or uploads) a 64 MiB file from the emulator, capped at 8 MiB/s in
all; the test sends SIGINT part-way. The child's ``except KeyboardInterrupt`` reports how long
after the signal it ran and whether the cache lock is free. What the emulator's request log
says decides the test: the bytes stop flowing right away (far fewer than the whole file were
ever sent), and a second fetch resumes (it asks only for what is missing).
"""

from __future__ import annotations

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

MiB = 1024 * 1024
SIZE = 64 * MiB
RATE = 8 * MiB
HANG_GUARD_S = 60  # only so a broken build fails instead of hanging; not a timing assertion


def payload(n: int, seed: int = 0) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def media_bytes(fd, since: int = 0) -> int:
    return sum(r.bytes for r in fd.requests[since:] if r.query.get("alt") == "media")


def upload_bytes(fd) -> int:
    return sum(r.request_bytes for r in fd.requests if r.path.startswith("/upload/"))


DOWNLOAD_CHILD = r"""
import json, signal, sys, time
from pathlib import Path
import colabmodels as cm
from colabmodels import config

signalled = []

def on_sigint(signum, frame):
    signalled.append(time.monotonic())
    raise KeyboardInterrupt

signal.signal(signal.SIGINT, on_sigint)
try:
    cm.fetch(sys.argv[1], progress=False)
    print(json.dumps({"finished": True}), flush=True)
except KeyboardInterrupt:
    elapsed = time.monotonic() - signalled[0]
    from filelock import FileLock, Timeout
    free = []
    for lock_file in (config.cache_dir() / "locks").glob("*.lock"):
        lock = FileLock(str(lock_file))
        try:
            lock.acquire(timeout=0)
            lock.release()
            free.append(True)
        except Timeout:
            free.append(False)
    print(json.dumps({"interrupted": True, "elapsed_s": elapsed, "locks": free}), flush=True)
"""

UPLOAD_CHILD = r"""
import json, signal, sys, time
from pathlib import Path
import colabmodels as cm
from colabmodels.refs import parse_ref
from colabmodels.storage import backend_for

signalled = []

def on_sigint(signum, frame):
    signalled.append(time.monotonic())
    raise KeyboardInterrupt

signal.signal(signal.SIGINT, on_sigint)
cm.mount()
dest = parse_ref(sys.argv[2])
backend = backend_for(dest, write=True)
sent = [0]

def progress(n):
    sent[0] += n
    print(json.dumps({"sent": sent[0]}), flush=True)

try:
    backend.upload(Path(sys.argv[1]), dest, progress=progress)
    print(json.dumps({"finished": True}), flush=True)
except KeyboardInterrupt:
    print(json.dumps({"interrupted": True, "elapsed_s": time.monotonic() - signalled[0]}),
          flush=True)
"""


def _env(fd, key: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "COLABMODELS_DRIVE_ENDPOINT": fd.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(key),
            "COLABMODELS_CACHE_DIR": os.environ["COLABMODELS_CACHE_DIR"],
            "COLABMODELS_CONFIG_DIR": os.environ["COLABMODELS_CONFIG_DIR"], **extra}


def _bytes_on_disk(partial_dir: Path) -> int:
    """What the child's part record says has arrived (0 while there is none)."""
    total = 0
    for record in partial_dir.glob("*.parts.json"):
        try:
            state = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        part = state["part_bytes"]
        total += len(state["done"]) * part
        total += sum(pos - int(i) * part for i, pos in state["offsets"].items())
    return total


def _last_line(child: subprocess.Popen) -> dict:
    out, err = child.communicate(timeout=HANG_GUARD_S)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"the child printed nothing; stderr:\n{err[-3000:]}"
    return json.loads(lines[-1])


@pytest.fixture
def slow_drive(isolated, monkeypatch):
    from colabmodels.testing import FakeDrive

    with FakeDrive(total_bandwidth_bytes_per_s=RATE) as fd:
        key = isolated / "key.json"
        fd.write_service_account(key)
        monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fd.url)
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        fd.key_path = key
        yield fd


def test_sigint_stops_every_part_of_a_download_and_it_resumes(slow_drive, isolated):
    fd = slow_drive
    data = payload(SIZE, seed=12)
    fid = fd.put("MyDrive/big/stop.bin", data)
    partial_dir = Path(os.environ["COLABMODELS_CACHE_DIR"]) / "partial"
    child = subprocess.Popen([sys.executable, "-c", DOWNLOAD_CHILD, fid], env=_env(fd, fd.key_path),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while _bytes_on_disk(partial_dir) < 8 * MiB and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        report = _last_line(child)
    finally:
        if child.poll() is None:
            child.kill()
    assert report.get("interrupted"), report
    assert report["locks"] and all(report["locks"]), "the cache lock must be released"
    time.sleep(0.5)  # let the emulator log the responses that were cut short
    sent_before = media_bytes(fd)
    # Every part stopped with the signal: nowhere near the whole file was sent. (Before the
    # fix, the workers kept downloading and the except block ran once all 64 MiB had arrived.)
    assert sent_before < SIZE // 2, f"{sent_before / MiB:.1f} MiB sent after the interrupt"
    kept = _bytes_on_disk(partial_dir)
    assert kept >= 4 * MiB, "the partial file and its part record stay for a resume"

    first_phase = len(fd.requests)
    fd.total_bandwidth_bytes_per_s = None
    path = cm.fetch(fid, progress=False)
    assert path.read_bytes() == data
    resumed = media_bytes(fd, first_phase)
    assert resumed <= SIZE - kept, "the second fetch asks only for what is missing"
    assert cache.verify() == []
    print(f"interrupt honoured {report['elapsed_s']:.2f}s after SIGINT; "
          f"{sent_before / MiB:.1f} MiB sent before, {resumed / MiB:.1f} MiB to finish")


def test_sigint_stops_a_chunked_upload(slow_drive, isolated):
    fd = slow_drive
    src = isolated / "upload.bin"
    src.write_bytes(payload(SIZE, seed=13))
    child = subprocess.Popen(
        [sys.executable, "-c", UPLOAD_CHILD, str(src), "MyDrive/up/stop.bin"],
        env=_env(fd, fd.key_path, COLABMODELS_CHUNK_BYTES=str(4 * MiB)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        for line in child.stdout:  # progress lines, one per chunk the server confirmed
            if json.loads(line).get("sent", 0) >= 8 * MiB:
                break
        child.send_signal(signal.SIGINT)
        report = _last_line(child)
    finally:
        if child.poll() is None:
            child.kill()
    assert report.get("interrupted"), report
    time.sleep(0.5)
    received = upload_bytes(fd)
    assert received < SIZE // 2, f"{received / MiB:.1f} MiB uploaded after the interrupt"
    assert fd.resolve("MyDrive/up/stop.bin") is None, "an interrupted upload leaves no file"
    print(f"upload interrupt honoured {report['elapsed_s']:.2f}s after SIGINT; "
          f"{received / MiB:.1f} MiB received")
