"""The bulk tree engine on the Drive emulator: parallel remembered listing, many files in flight,
one cache entry per file, and local names that never escape the tree yet stay as Drive has them."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _media(requests) -> list:
    return [r for r in requests if (r.query or {}).get("alt") == "media"]


def _lists(requests) -> list:
    return [r for r in requests if r.method == "GET" and r.path.endswith("/drive/v2/files")]


def _max_overlap(requests) -> int:
    """Most requests in progress at one moment (from arrival and duration)."""
    events = sorted([(r.started, 1) for r in requests] + [(r.started + r.duration_s, -1) for r in requests])
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_folder_fetch_many_in_flight_one_entry_per_file(drive_env):
    import colabmodels as cm
    from colabmodels.cachestore import cache, identity_of, key_for

    fd = drive_env
    blobs = {f"MyDrive/many/c{i % 4}/f{i:03d}.bin": os.urandom(300 + i) for i in range(256)}
    for path, data in blobs.items():
        fd.put(path, data)
    fd.reset_requests()
    fd.latency_ms = 400  # long enough that the client, not the CPU, sets how many are in flight
    root = cm.fetch("MyDrive/many", progress=False)
    fd.latency_ms = 0
    media = _media(fd.requests)
    assert len(media) == len(blobs)
    assert _max_overlap(media) >= 64
    for path, data in blobs.items():
        assert (root / path[len("MyDrive/many/"):]).read_bytes() == data
    # every file is its own entry, the same one a single-file fetch uses
    from colabmodels.storage import backend_for

    backend = backend_for(cm.parse_ref("MyDrive/many"))
    one = backend.stat(cm.parse_ref("MyDrive/many/c1/f001.bin"))
    assert cache.entry(key_for(identity_of(one))) is not None
    fd.reset_requests()
    single = cm.fetch("MyDrive/many/c1/f001.bin", progress=False)
    assert single.read_bytes() == blobs["MyDrive/many/c1/f001.bin"] and not _media(fd.requests)


def test_cached_folder_is_not_walked_again_and_changes_are_seen(drive_env):
    import colabmodels as cm
    import colabmodels.tree as tree_walk

    fd = drive_env
    for i in range(40):
        fd.put(f"MyDrive/tree/d{i % 5}/sub/f{i}.txt", f"v1 {i}".encode())
    first = cm.fetch("MyDrive/tree", progress=False)
    fd.reset_requests()
    again = cm.fetch("MyDrive/tree", progress=False)
    assert again == first
    assert not _media(fd.requests)
    assert not [r for r in _lists(fd.requests) if "in parents" in r.query.get("q", "")]
    assert len(fd.requests) <= 3  # the folder's stat and the change feed

    # a new process (no in-memory memo): the listing on disk is checked, not walked
    tree_walk.forget_listings(on_disk=False)
    fd.reset_requests()
    assert cm.fetch("MyDrive/tree", progress=False) == first
    assert not [r for r in _lists(fd.requests) if "in parents" in r.query.get("q", "")]

    # one file added deep down, one changed, one deleted: only their folders are listed again
    fd.put("MyDrive/tree/d1/sub/new.txt", b"new")
    fd.put("MyDrive/tree/d2/sub/f2.txt", b"v2", replace=True)
    fd.delete("MyDrive/tree/d3/sub/f3.txt")
    fd.reset_requests()
    changed = cm.fetch("MyDrive/tree", progress=False)
    assert changed != first
    assert (changed / "d1/sub/new.txt").read_bytes() == b"new"
    assert (changed / "d2/sub/f2.txt").read_bytes() == b"v2"
    assert not (changed / "d3/sub/f3.txt").exists()
    relisted = [r for r in _lists(fd.requests) if "in parents" in r.query.get("q", "")]
    assert 1 <= len(relisted) <= 3
    assert len(_media(fd.requests)) == 2  # only the new and the changed file

    # refresh=True walks everything again
    fd.reset_requests()
    from colabmodels.storage import backend_for

    backend = backend_for(cm.parse_ref("MyDrive/tree"))
    tree = tree_walk.walk_tree(backend, backend.stat(cm.parse_ref("MyDrive/tree")), refresh=True)
    assert tree.stats.folders_listed == 11 and not tree.stats.remembered


def test_an_unchanged_remembered_tree_starts_no_listing_threads(drive_env, monkeypatch):
    """A new kernel on a remembered tree the change feed vouches for expands it on the calling
    thread (starting threads cost a warm kernel's first batch); folders that need a request,
    a changed one or one holding a shortcut, are still listed on the pool. The remembered
    listing keeps only what the walk reads."""
    from concurrent.futures import ThreadPoolExecutor

    import colabmodels as cm
    import colabmodels.tree as tree_walk
    from colabmodels.storage import backend_for

    fd = drive_env
    for i in range(12):
        fd.put(f"MyDrive/still/d{i % 3}/sub/f{i}.txt", f"{i}".encode())
    backend = backend_for(cm.parse_ref("MyDrive/still"))
    root = backend.stat(cm.parse_ref("MyDrive/still"))

    def shape(tree) -> list[str]:
        out, stack = [], [tree.root]
        while stack:
            node = stack.pop()
            out.append(node.local)
            stack.extend(node.children or [])
        return sorted(out)

    first = tree_walk.walk_tree(backend, root)
    # what a new kernel decodes: the items as the walk reads them, without parents and labels
    import json

    from colabmodels.cachestore import cache

    tree_walk._wait_for_writes()
    [memo] = (cache.root / "listings").glob("*.json")
    items = [i for v in json.loads(memo.read_text())["folders"].values() for i in v]
    assert len(items) == 3 + 3 + 12 and all({"id", "title", "mimeType"} <= set(i) for i in items)
    assert sum("md5Checksum" in i for i in items) == 12
    assert not [i for i in items if "parents" in i or "labels" in i]
    pools: list[int] = []

    class Counting(ThreadPoolExecutor):
        def __init__(self, *args, **kwargs) -> None:
            pools.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tree_walk, "ThreadPoolExecutor", Counting)
    tree_walk.forget_listings(on_disk=False)
    again = tree_walk.walk_tree(backend, root)
    assert again.stats.remembered and again.stats.folders_listed == 0
    assert pools == [] and shape(again) == shape(first) and len(shape(first)) == 1 + 3 + 3 + 12

    fd.put("MyDrive/still/d2/sub/new.txt", b"new")
    fd.put_shortcut("MyDrive/still/d0/link.txt", "MyDrive/still/d1/sub/f1.txt")
    changed = tree_walk.walk_tree(backend, root)
    assert pools == [1] and 1 <= changed.stats.folders_listed <= 3
    assert shape(changed) == sorted([*shape(first), "d2/sub/new.txt", "d0/link.txt"])


def test_same_titles_and_clashing_names_are_all_kept(drive_env):
    import colabmodels as cm

    fd = drive_env
    contents = {
        "a.jpg": b"plain", ".a.jpg": b"dotted", "b:c.jpg": b"colon", "b_c.jpg": b"underscore",
        ".ipynb_checkpoints/x.txt": b"checkpoint",
    }
    for name, data in contents.items():
        fd.put(f"MyDrive/clash/{name}", data)
    fd.put("MyDrive/clash/twin.txt", b"first twin")
    fd.put("MyDrive/clash/twin.txt", b"second twin")  # Drive allows two files with one title
    root = cm.fetch("MyDrive/clash", progress=False)
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert len(names) == len(contents) + 1 + 1
    # safe names stay exactly as Drive has them, leading dots included
    for name in ("a.jpg", ".a.jpg", "b_c.jpg", ".ipynb_checkpoints/x.txt"):
        assert (root / name).read_bytes() == contents[name]
    colon = [n for n in names if n.startswith("b_c~")]
    assert len(colon) == 1 and (root / colon[0]).read_bytes() == b"colon"
    twins = sorted((root / n).read_bytes() for n in names if n.startswith("twin"))
    assert twins == [b"first twin", b"second twin"]
    assert cm.cache.verify() == []  # every file's md5 was recorded and still matches


HOSTILE = ["..", ".", "/", "a/../../b", "../escape", "x\x00y", "nul", "CON", "con.txt", "aux.jpg",
           "COM1", "lpt9.png", "é" * 150 + ".jpg", "z" * 300, "trailing. ", " lead", "back\\slash",
           "ctl\x01\x1f", "a" * 199 + "é.png", ".", "\u202e-rtl.txt", "*?<>|\"", "~", ".."]


def _insert(session, parent_id: str, title: str, data: bytes) -> None:
    from googleapiclient.http import MediaIoBaseUpload

    media = MediaIoBaseUpload(io.BytesIO(data), mimetype="application/octet-stream")
    session.execute(lambda s: s.files().insert(body={"title": title, "parents": [{"id": parent_id}]},
                                               media_body=media), what="test upload")


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(titles=st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(min_size=1, max_size=260)),
                       min_size=1, max_size=8))
def test_hostile_titles_never_escape_the_tree(drive_env, titles):
    import colabmodels as cm

    fd = drive_env
    session = cm.mount()
    # a fresh folder per example: hypothesis may repeat a list of titles within one test
    folder = f"MyDrive/hostile-{uuid.uuid4().hex[:12]}"
    parent = fd.mkdir(folder)
    sub = fd.mkdir(f"{folder}/sub")
    expected = []
    for i, title in enumerate(titles):
        data = f"{i}:{title!r}".encode()
        _insert(session, parent if i % 2 else sub, title, data)
        expected.append(data)
    root = cm.fetch(folder, progress=False)
    found = [p for p in root.rglob("*") if p.is_file()]
    real_root = os.path.realpath(root)
    for p in found:
        assert os.path.realpath(p).startswith(real_root + os.sep)
        assert len(p.name.encode()) <= 255
        assert "\x00" not in str(p)
    assert sorted(p.read_bytes() for p in found) == sorted(expected)  # every file, distinct names
    for p in found:  # a safe title is kept exactly
        data = p.read_bytes()
        title = titles[expected.index(data)]
        from colabmodels.cachestore import sanitize_name

        if sanitize_name(title) == title and titles.count(title) == 1:
            assert p.name == title


def test_listing_gives_thumbnails_and_image_sizes(drive_env):
    from PIL import Image

    from colabmodels.datasets import index_drive_folder

    fd = drive_env
    for name, size in (("cats/a.png", (30, 20)), ("dogs/b.png", (12, 40))):
        buf = io.BytesIO()
        Image.new("RGB", size, "red").save(buf, "PNG")
        fd.put(f"MyDrive/thumbs/{name}", buf.getvalue())
    paths, labels, classes, stats = index_drive_folder("MyDrive/thumbs")
    assert classes == ["cats", "dogs"] and list(labels) == [0, 1]
    assert paths == ["MyDrive/thumbs/cats/a.png", "MyDrive/thumbs/dogs/b.png"]
    assert [f.image_size for f in stats.files] == [(30, 20), (12, 40)]
    assert all(f.thumbnail_link and f.md5 for f in stats.files)
    assert stats.class_counts == {"cats": 1, "dogs": 1}


def test_shortcuts_are_followed_like_symlinks(drive_env):
    from colabmodels.datasets import index_drive_folder

    fd = drive_env
    fd.put("MyDrive/elsewhere/extra/e.jpg", b"\xff\xd8 e")
    fd.put("MyDrive/elsewhere/single.jpg", b"\xff\xd8 s")
    fd.put("MyDrive/elsewhere/lions/l.jpg", b"\xff\xd8 l")
    fd.put("MyDrive/sc/cats/c.jpg", b"\xff\xd8 c")
    fd.put_shortcut("MyDrive/sc/cats/more", "MyDrive/elsewhere/extra")      # folder, inside a class
    fd.put_shortcut("MyDrive/sc/cats/linked.jpg", "MyDrive/elsewhere/single.jpg")  # file
    fd.put_shortcut("MyDrive/sc/lions", "MyDrive/elsewhere/lions")          # a class folder
    plain = index_drive_folder("MyDrive/sc")
    assert plain.class_names == ["cats", "lions"]
    assert plain.paths == ["MyDrive/sc/cats/c.jpg", "MyDrive/sc/cats/linked.jpg", "MyDrive/sc/lions/l.jpg"]
    linked = next(f for f in plain.stats.files if f.rel == "cats/linked.jpg")
    assert linked.stat.ref.id == fd.resolve("MyDrive/elsewhere/single.jpg")  # the target's bytes
    followed = index_drive_folder("MyDrive/sc", follow_links=True, refresh=True)
    assert "MyDrive/sc/cats/more/e.jpg" in followed.paths


def test_shortcut_to_a_file_you_cannot_read(drive_env):
    from colabmodels.datasets import index_drive_folder

    fd = drive_env
    secret = fd.put("MyDrive/private/s.jpg", b"\xff\xd8 s", owner="bob")
    fd.put("MyDrive/ds2/cats/ok.jpg", b"\xff\xd8 ok")
    fd.put_shortcut("MyDrive/ds2/cats/bobs.jpg", secret)
    index = index_drive_folder("MyDrive/ds2")
    assert index.paths == ["MyDrive/ds2/cats/ok.jpg"]
    [(where, why)] = index.stats.unreadable
    assert where == "MyDrive/ds2/cats/bobs.jpg" and "cannot read" in why


def test_folder_of_another_user_is_not_found(drive_env):
    from colabmodels.datasets import index_drive_folder
    from colabmodels.errors import NotFoundError

    fd = drive_env
    fd.put("MyDrive/theirs/cats/a.jpg", b"x", owner="bob")
    folder_id = fd.resolve("MyDrive/theirs", owner="bob")
    with pytest.raises(NotFoundError):
        index_drive_folder(folder_id)
    fd.share(folder_id, readers=["ada@example.com"], owner="bob")
    assert index_drive_folder(folder_id).class_names == ["cats"]


def test_google_docs_in_a_class_folder(drive_env):
    from colabmodels.datasets import index_drive_folder
    from colabmodels.errors import UnknownFormatError

    fd = drive_env
    fd.put("MyDrive/docs/cats/a.jpg", b"\xff\xd8 a")
    fd.put("MyDrive/docs/cats/notes", b"text", mime_type="application/vnd.google-apps.document")
    index = index_drive_folder("MyDrive/docs")
    assert index.paths == ["MyDrive/docs/cats/a.jpg"]
    assert index.stats.google_docs == ["MyDrive/docs/cats/notes"]
    fd.put("MyDrive/docs/cats/fake.jpg", b"text", mime_type="application/vnd.google-apps.document")
    with pytest.raises(UnknownFormatError, match=r"MyDrive/docs/cats/fake\.jpg"):
        index_drive_folder("MyDrive/docs", refresh=True)
    # cm.fetch of the folder leaves the Doc out (it has no bytes) and keeps the rest
    import colabmodels as cm

    root = cm.fetch("MyDrive/docs", progress=False)
    assert sorted(p.name for p in Path(root, "cats").iterdir()) == ["a.jpg"]


def test_a_first_walk_asks_the_feed_position_while_the_path_resolves(drive_env):
    """Issue 25: the change feed's position (taken before the first listing, so later changes
    show) is asked for in parallel with the path's look-ups, not after them: the walk of a new
    dataset folder waits one round trip less. The order that makes it right still holds: the
    position is answered before the folder's listing is asked for."""
    from colabmodels.datasets.listing import resolve_folder
    from colabmodels.tree import walk_tree

    fd = drive_env
    for c in ("a", "b"):
        fd.put(f"MyDrive/deep/sets/flowers/{c}/x.jpg", b"\xff\xd8\xff\xe0")
    fd.latency_ms = 150
    try:
        fd.reset_requests()
        backend, root = resolve_folder("MyDrive/deep/sets/flowers")
        tree = walk_tree(backend, root)
    finally:
        fd.latency_ms = 0
    assert sorted(n.rel for n in tree.file_nodes()) == ["a/x.jpg", "b/x.jpg"]
    reqs = fd.requests
    token = [r for r in reqs if r.path.endswith("/changes/startPageToken")]
    lookups = [r for r in _lists(reqs) if "title = " in r.query.get("q", "")]
    root_listing = [r for r in _lists(reqs) if r.query.get("q", "").startswith(f"'{root.ref.id}' in parents")]
    assert len(token) == 1 and len(lookups) == 3 and len(root_listing) == 1
    # asked before the last look-up of the path was answered (in parallel with them) ...
    assert token[0].started < lookups[-1].started + lookups[-1].duration_s
    # ... and answered before the listing was asked for
    assert token[0].started + token[0].duration_s <= root_listing[0].started


def test_a_remembered_folder_asks_no_early_feed_position(drive_env):
    """Only a folder never resolved here gets the early position (a remembered one uses the
    position its listing was taken at)."""
    from colabmodels.datasets.listing import resolve_folder
    from colabmodels.tree import walk_tree

    fd = drive_env
    fd.put("MyDrive/again/a/x.jpg", b"\xff\xd8\xff\xe0")
    backend, root = resolve_folder("MyDrive/again")
    walk_tree(backend, root)
    fd.reset_requests()
    backend, root = resolve_folder("MyDrive/again")
    walk_tree(backend, root)
    assert not [r for r in fd.requests if r.path.endswith("/changes/startPageToken")]
