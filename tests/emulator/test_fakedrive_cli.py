"""``python -m colabmodels.testing.fakedrive``: serves, writes the ready file, stops on signals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from colabmodels.testing.fakedrive.client import drive_service, service_account_credentials

pytestmark = pytest.mark.emulator


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, dict, Path]:
    ready = tmp_path / "ready.json"
    key = tmp_path / "key.json"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "colabmodels.testing.fakedrive",
            "--port", "0", "--ready-file", str(ready), "--service-account-file", str(key), *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"emulator exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("emulator did not write its ready file in 30 s")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text()), key


def _port_is_closed(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as s:
        return s.connect_ex((parts.hostname, parts.port)) != 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_demo_content_and_stops_cleanly(tmp_path, sig):
    demo = tmp_path / "demo"
    (demo / "models").mkdir(parents=True)
    (demo / "models" / "a.bin").write_bytes(b"AAA")
    (demo / "readme.txt").write_text("hi")

    proc, ready, key = _start(tmp_path, "--demo-content", str(demo), "--seed", "4")
    try:
        assert ready["url"].startswith("http://127.0.0.1:") and ready["pid"] == proc.pid
        with urllib.request.urlopen(ready["url"], timeout=10) as resp:
            assert resp.status == 200
        service = drive_service(ready["url"], service_account_credentials(key))
        items = service.files().list(q="trashed = false").execute()["items"]
        assert sorted(f["title"] for f in items) == ["a.bin", "models", "readme.txt"]
        (a,) = [f for f in items if f["title"] == "a.bin"]
        assert service.files().get_media(fileId=a["id"]).execute() == b"AAA"

        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        assert _port_is_closed(ready["url"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_data_dir_survives_a_restart(tmp_path):
    data = tmp_path / "data"
    first_dir = tmp_path / "one"
    first_dir.mkdir()
    proc, ready, key = _start(first_dir, "--data-dir", str(data))
    try:
        service = drive_service(ready["url"], service_account_credentials(key))
        folder = service.files().insert(
            body={"title": "kept", "mimeType": "application/vnd.google-apps.folder"}
        ).execute()
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    second_dir = tmp_path / "two"
    second_dir.mkdir()
    proc, ready, key = _start(second_dir, "--data-dir", str(data))
    try:
        service = drive_service(ready["url"], service_account_credentials(key))
        assert service.files().get(fileId=folder["id"]).execute()["title"] == "kept"
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_fault_rate_option(tmp_path):
    proc, ready, key = _start(tmp_path, "--fault-rate", "1.0", "--seed", "1")
    try:
        from googleapiclient.errors import HttpError

        service = drive_service(ready["url"], service_account_credentials(key))
        failures = 0
        for _ in range(5):
            try:
                service.about().get().execute()
            except HttpError:
                failures += 1
            except (ConnectionError, OSError):
                failures += 1
        assert failures == 5
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
