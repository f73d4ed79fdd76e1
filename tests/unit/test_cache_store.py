"""The cache's store path for small single files (what a cold dataset epoch runs per image):
the key's lock, one private stage renamed into place, meta.json's mtime as the last use, the
by-md5 index as a hard link. Real files in a temporary cache; other processes are real ones."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat
import time

import pytest

from colabmodels import cachestore
from colabmodels.cachestore import Cache, key_for


def _store(cache: Cache, name: str, data: bytes, *, fill=None):
    key = key_for(f"test:{name}")

    def write(target):
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as fh:
            fh.write(data)

    return cache.get_or_store(key, identity=f"test:{name}", source=f"drive:{name}", name=name,
                              kind="file", fill=fill or write,
                              known_md5={"": hashlib.md5(data).hexdigest()})


def _listing(root) -> dict[str, list[str]]:
    return {d: sorted(os.listdir(root / d)) if (root / d).is_dir() else []
            for d in ("entries", "partial", "locks")}


def test_a_small_file_is_stored_under_its_lock_and_read_back(tmp_path):
    cache = Cache(tmp_path)
    entry, made = _store(cache, "a.jpg", b"jpeg bytes")
    assert made and entry.path.read_bytes() == b"jpeg bytes"
    assert _listing(tmp_path) == {"entries": [entry.key], "partial": [],
                                  "locks": [f"{entry.key}.lock"]}
    assert sorted(os.listdir(entry.dir)) == ["data", "meta.json"]  # no "used" marker file
    again, made_again = _store(cache, "a.jpg", b"other bytes")
    assert not made_again and again.path.read_bytes() == b"jpeg bytes"
    assert cache.file_paths([(entry.key, "a.jpg", 10)]) == [entry.path]
    assert [e.key for e in cache.entries()] == [entry.key]
    assert cache.verify() == []


def _race(root: str, start: float, n: int, out) -> None:  # pragma: no cover - in a child
    cache = Cache(root)
    while time.time() < start:
        time.sleep(0.001)
    made = 0
    for i in range(n):
        _, now = _store(cache, f"img_{i}.jpg", f"image {i}".encode() * 100)
        made += now
    out.put(made)


def test_processes_storing_the_same_files_at_once_leave_one_whole_entry_each(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    n = 40
    start = time.time() + 1.5  # every child started and waiting before the first store
    procs = [ctx.Process(target=_race, args=(str(tmp_path), start, n, out)) for _ in range(3)]
    for p in procs:
        p.start()
    made = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sum(made) == n  # each file made once: the others waited and found it
    cache = Cache(tmp_path)
    entries = cache.entries()
    assert len(entries) == n
    assert _listing(tmp_path)["partial"] == []
    for e in entries:
        i = int(e.name[len("img_"):-len(".jpg")])
        assert e.path.read_bytes() == f"image {i}".encode() * 100
    assert cache.verify() == []


def test_a_failure_inside_fill_leaves_nothing_behind(tmp_path):
    cache = Cache(tmp_path)

    def half_then_fail(target):
        target.write_bytes(b"half an ima")
        raise ConnectionResetError("dropped mid-body")

    with pytest.raises(ConnectionResetError):
        _store(cache, "broken.jpg", b"", fill=half_then_fail)
    listing = _listing(tmp_path)
    assert listing["entries"] == [] and listing["partial"] == []
    assert not (tmp_path / "by-md5").exists() or os.listdir(tmp_path / "by-md5") == []
    entry, made = _store(cache, "broken.jpg", b"whole image")  # the next try stores it
    assert made and entry.path.read_bytes() == b"whole image"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX modes")
@pytest.mark.parametrize("umask", [0o022, 0o000, 0o077, 0o277])
def test_everything_stored_is_private_from_its_creation_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    cachestore._UMASK.clear()  # the umask is read once per process: read it again
    try:
        cache = Cache(tmp_path / "cache")
        entry, _ = _store(cache, "p.jpg", b"private")
    finally:
        os.umask(old)
        cachestore._UMASK.clear()

    def mode(p):
        return stat.S_IMODE(os.lstat(p).st_mode)

    assert mode(entry.dir) == mode(entry.dir / "data") == 0o700
    assert mode(entry.path) == mode(entry.dir / "meta.json") == 0o600
    index = tmp_path / "cache" / "by-md5" / hashlib.md5(b"private").hexdigest()
    assert mode(index) == 0o600 and mode(index.parent) == 0o700


def test_prune_sees_last_use_through_meta_json_and_old_used_markers(tmp_path):
    cache = Cache(tmp_path)
    a, _ = _store(cache, "a.jpg", b"a" * 100)
    b, _ = _store(cache, "b.jpg", b"b" * 100)
    c, _ = _store(cache, "c.jpg", b"c" * 100)
    hours = [time.time() - h * 3600 for h in (3, 2, 1)]
    for e, t in zip((a, b, c), hours, strict=True):
        os.utime(e.dir / "meta.json", (t, t))
    cache.touch(a)  # a used now: newest
    # an entry stored by an older version keeps a "used" marker: the later of the two counts
    os.utime(b.dir / "meta.json", (hours[0] - 600, hours[0] - 600))
    (b.dir / "used").write_bytes(b"")
    os.utime(b.dir / "used", (hours[2] + 60, hours[2] + 60))
    assert [e.key for e in cache.entries()] == [a.key, b.key, c.key]
    assert abs(cache.entry(b.key).last_used - (hours[2] + 60)) < 1
    removed = cache.prune(max_bytes=200)
    assert [e.key for e in removed] == [c.key]  # the least recently used goes first
    with cache.in_use(cache.entry(b.key)):  # reading an entry marks it as used
        pass
    assert cache.entry(b.key).last_used > time.time() - 60
    assert [e.key for e in cache.prune(max_bytes=100)] == [a.key]


def test_the_md5_index_is_a_link_to_the_entry_and_old_index_files_still_read(tmp_path):
    cache = Cache(tmp_path)
    data = b"the same bytes"
    md5 = hashlib.md5(data).hexdigest()
    entry, _ = _store(cache, "one.jpg", data)
    index = tmp_path / "by-md5" / md5
    assert os.path.samefile(index, entry.dir / "meta.json")
    assert json.loads(index.read_bytes())["key"] == entry.key
    assert cache.with_content(md5).key == entry.key
    # the same bytes under another name are linked from the cache, not fetched
    fetched = []
    other, made = _store(cache, "two.jpg", data, fill=lambda t: fetched.append(t))
    assert made and not fetched and other.path.read_bytes() == data
    assert cache.with_content(md5).key == other.key  # the index points at the newest
    # an index written by an older version: a small file holding the key
    index.unlink()
    index.write_text(entry.key)
    assert cache.with_content(md5).key == entry.key
    # an index whose entry is gone finds nothing
    cache.remove(entry)
    assert cache.with_content(md5) is None
