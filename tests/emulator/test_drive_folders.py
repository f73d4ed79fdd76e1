"""Creating Drive folders when several writers make the same path at once (Drive allows twins)."""

from __future__ import annotations

import threading

import colabmodels as cm
from colabmodels.refs import Ref
from colabmodels.storage.drive import DriveBackend


def test_concurrent_makedirs_share_one_folder(drive_env):
    session = cm.mount()
    for trial in range(10):
        backend = DriveBackend(session)
        path = f"MyDrive/race{trial}/models/x"
        got, errors = [], []

        def make(path=path, backend=backend, got=got, errors=errors):
            try:
                got.append(backend.makedirs(Ref("drive", path=path)).ref.id)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=make) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(set(got)) == 1, f"trial {trial}: writers got different folders {got}"
        session.forget_paths()
        assert session.resolve(path) == got[0]  # exactly one untrashed folder at every level


def test_folder_made_by_another_tool_is_adopted(drive_env):
    folder_id = drive_env.mkdir("MyDrive/handmade/models")
    backend = DriveBackend(cm.mount())
    assert backend.makedirs(Ref("drive", path="MyDrive/handmade/models")).ref.id == folder_id


def test_a_path_looked_up_now_brings_its_metadata_with_it(drive_env):
    """The stat of a path walks it one query per step; the last step's query asks for every
    field, so no ``files.get`` follows (one round trip less for every path-addressed load,
    listing or dataset). A remembered path is read afresh with one ``files.get``."""
    file_id = drive_env.put("MyDrive/models/deep/net.bin", b"weights")
    session = cm.mount()
    session.forget_paths()
    backend = DriveBackend(session)
    drive_env.reset_requests()
    stat = backend.stat(Ref("drive", path="MyDrive/models/deep/net.bin"))
    assert (stat.ref.id, stat.size, stat.name) == (file_id, 7, "net.bin")
    assert stat.checksum  # Drive's md5Checksum: the full metadata, not just id and title
    asked = [(r.method, r.path) for r in drive_env.requests]
    assert asked == [("GET", "/drive/v2/files")] * 3, asked
    drive_env.reset_requests()
    again = backend.stat(Ref("drive", path="MyDrive/models/deep/net.bin"))
    assert again.ref.id == file_id
    assert [(r.method, r.path) for r in drive_env.requests] == [
        ("GET", f"/drive/v2/files/{file_id}")]
