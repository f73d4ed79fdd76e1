"""Issue 25, "no byte sent twice", counted in the emulator's request log (never timed):

- a file whose md5 is already cached under another id is linked from the cache, not downloaded;
- a version whose files equal the previous version's is made by Drive-side copies, not uploads,
  and fetching it afterwards moves no media bytes;
- a multi-file version uploads its files at the same time (overlapping upload requests).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import colabmodels as cm
from colabmodels.cachestore import cache
from colabmodels.formats.info import SavedFiles
from colabmodels.refs import parse_ref
from colabmodels.registry import publish


def _payload(n: int, seed: int) -> bytes:
    out, i = bytearray(), 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def _media(fd, since: int = 0) -> list:
    return [r for r in fd.requests[since:] if r.query.get("alt") == "media"]


def _uploads(fd, since: int = 0) -> list:
    return [r for r in fd.requests[since:] if r.path.startswith("/upload/")]


def _copies(fd, since: int = 0) -> list:
    return [r for r in fd.requests[since:] if r.method == "POST" and r.path.endswith("/copy")]


def _peak_overlap(records: list) -> int:
    events = []
    for r in records:
        events += [(r.started, 1), (r.started + (r.duration_s or 0), -1)]
    level, peak = 0, 0
    for _, delta in sorted(events):
        level += delta
        peak = max(peak, level)
    return peak


def _stage(folder: Path, files: dict[str, bytes]) -> SavedFiles:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return SavedFiles(format="safetensors", framework="torch", framework_version="0",
                      files=sorted(files), model_path=sorted(files)[0])


def test_same_bytes_under_another_id_are_linked_not_downloaded(drive_env):
    data = _payload(300_000, seed=1)
    first = drive_env.put("MyDrive/a/weights.bin", data)
    second = drive_env.put("MyDrive/b/copy-of-weights.bin", data)  # another id, same md5
    other = drive_env.put("MyDrive/b/other.bin", _payload(300_000, seed=2))

    mark = len(drive_env.requests)
    assert cm.fetch(first, progress=False).read_bytes() == data
    assert sum(r.bytes for r in _media(drive_env, mark)) == len(data)

    mark = len(drive_env.requests)
    path = cm.fetch(second, progress=False)
    assert path.read_bytes() == data
    assert _media(drive_env, mark) == [], "the same md5 was downloaded a second time"
    assert path.name == "copy-of-weights.bin"  # its own entry, under its own name

    mark = len(drive_env.requests)
    cm.fetch(other, progress=False)  # different bytes still travel
    assert sum(r.bytes for r in _media(drive_env, mark)) == 300_000
    assert len({e.key for e in cache.entries()}) == 3


def test_a_version_equal_to_the_last_is_copied_on_drive_and_costs_no_media(drive_env, tmp_path):
    dest = parse_ref("MyDrive/models/same")
    files = {f"shard-{i:02d}.bin": _payload(40_000 + i, seed=10 + i) for i in range(6)}
    saved = _stage(tmp_path / "v1", files)
    info1 = publish(tmp_path / "v1", saved, dest, progress=False)
    assert info1.version == 1
    total = sum(map(len, files.values()))

    changed = dict(files, **{"shard-03.bin": _payload(40_003, seed=99)})
    mark = len(drive_env.requests)
    info2 = publish(tmp_path / "v2", _stage(tmp_path / "v2", changed), dest, progress=False)
    assert info2.version == 2
    uploaded = sum(r.request_bytes for r in _uploads(drive_env, mark))
    copies = _copies(drive_env, mark)
    assert len(copies) == 5, "the five unchanged files are Drive-side copies"
    # only the changed file (and the manifest) went up
    assert 40_003 <= uploaded < 40_003 + 20_000, uploaded
    assert uploaded < total / 2
    for rel, data in changed.items():
        assert drive_env.get(f"MyDrive/models/same/v2/{rel}") == data

    # fetching v1, then v2: v2's unchanged files come from the cache by md5
    assert (cm.fetch("MyDrive/models/same/v1", progress=False) / "shard-00.bin").read_bytes() \
        == files["shard-00.bin"]
    mark = len(drive_env.requests)
    folder = cm.fetch("MyDrive/models/same/v2", progress=False)
    for rel, data in changed.items():
        assert (folder / rel).read_bytes() == data
    fetched = sum(r.bytes for r in _media(drive_env, mark))
    assert fetched < 40_003 + 20_000, f"{fetched} media bytes for one changed file and a manifest"


def test_multi_file_versions_upload_at_the_same_time(drive_env, tmp_path):
    drive_env.latency_ms = 40.0  # long enough for overlap to be unmistakable
    try:
        files = {f"variables/part-{i:02d}.bin": _payload(20_000, seed=100 + i) for i in range(8)}
        mark = len(drive_env.requests)
        publish(tmp_path / "m", _stage(tmp_path / "m", files), parse_ref("MyDrive/models/par"),
                progress=False)
    finally:
        drive_env.latency_ms = 0.0
    uploads = [r for r in _uploads(drive_env, mark) if r.request_bytes >= 20_000]
    assert len(uploads) == 8
    assert _peak_overlap(uploads) >= 2, "multi-file uploads went one at a time"
