"""The Drive session: an implicit sign-in sends no request of its own, and a changed endpoint is
followed (configuration is read at call time)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import colabmodels as cm
import colabmodels.drive.session
from colabmodels.refs import Ref
from colabmodels.storage import backend_for

CHILD = """
import sys, colabmodels as cm
print(cm.fetch(sys.argv[1], progress=False), flush=True)
"""


def api_requests(fd, since=0):
    return [r for r in fd.requests[since:] if r.path.startswith("/drive/v2/")]


def about_requests(fd, since=0):
    return [r for r in api_requests(fd, since) if r.path.rstrip("/").endswith("/about")]


def _child_env(fd):
    return {**os.environ, "COLABMODELS_DRIVE_ENDPOINT": fd.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(fd.key_path)}


@pytest.mark.parametrize("shape", ["id", "path"])
def test_cache_hit_in_a_fresh_process_costs_one_request(drive_env, shape):
    fid = drive_env.put("MyDrive/hit/model.bin", b"w" * 50_000)
    ref = fid if shape == "id" else "MyDrive/hit/model.bin"
    first = subprocess.run([sys.executable, "-c", CHILD, ref], env=_child_env(drive_env),
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    before = len(drive_env.requests)
    again = subprocess.run([sys.executable, "-c", CHILD, ref], env=_child_env(drive_env),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    new = api_requests(drive_env, before)
    assert about_requests(drive_env, before) == [], "an implicit sign-in asks nothing"
    assert len(new) == 1 and new[0].query.get("alt") != "media", [r.path for r in new]


def test_mount_still_says_who_is_signed_in(drive_env):
    fid = drive_env.put("MyDrive/who/model.bin", b"w")
    cm.fetch(fid, progress=False)  # an implicit session first
    assert about_requests(drive_env) == []
    session = cm.mount()
    assert session is colabmodels.drive.session.current_session()
    assert f"Signed in as {drive_env.default_user}" in session.describe()
    assert len(about_requests(drive_env)) == 1


@pytest.fixture
def second_drive(isolated):
    from colabmodels.testing import FakeDrive

    with FakeDrive(seed=2) as fd:
        fd.write_service_account(isolated / "key-2.json")  # fd.key_path
        yield fd


def test_a_new_endpoint_in_the_environment_is_followed(drive_env, second_drive, monkeypatch):
    first_id = drive_env.put("MyDrive/a/one.bin", b"from the first")
    assert cm.fetch(first_id, progress=False).read_bytes() == b"from the first"
    old = colabmodels.drive.session.current_session()
    second_id = second_drive.put("MyDrive/a/two.bin", b"from the second")
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", second_drive.url)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(second_drive.key_path))
    drive_env.stop()  # the old endpoint is gone: talking to it would fail
    assert cm.fetch(second_id, progress=False).read_bytes() == b"from the second"
    assert cm.fetch("MyDrive/a/two.bin", progress=False).read_bytes() == b"from the second"
    session = colabmodels.drive.session.current_session()
    assert session is not old and session.endpoint == second_drive.url
    assert about_requests(second_drive) == []


def test_mount_with_another_endpoint_is_followed(drive_env, second_drive):
    first_id = drive_env.put("MyDrive/b/one.bin", b"first")
    cm.fetch(first_id, progress=False)
    second_id = second_drive.put("MyDrive/b/two.bin", b"second")
    session = cm.mount(endpoint=second_drive.url, service_account=str(second_drive.key_path))
    assert session.endpoint == second_drive.url
    drive_env.stop()
    ref = Ref("drive", id=second_id)
    assert backend_for(ref).read_range(ref, 0, None) == b"second"
    assert cm.fetch(second_id, progress=False).read_bytes() == b"second"
    assert colabmodels.drive.session.current_session() is session
