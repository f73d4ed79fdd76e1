"""Issue 25: a new kernel on a warm cache builds its dataset on the remembered listing while
Drive's change feed is read (one metadata request), and still returns Drive as of the call.

The dataset is built before the feed's answer arrives; when the answer names a change (a file
added, trashed or given new content, the folder itself trashed), everything is built again on
the listing as of now. Each image is one solid colour, so a dataset that kept a stale cached
copy shows the wrong colour.

The first test runs real new processes (each imports TensorFlow); the others run in this
process with the remembered listing dropped from memory (:func:`forget_listings` with
``on_disk=False``), which leaves exactly what a new process finds: the cache on disk.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

FOLDER = "MyDrive/data/colours"


def _png(colour: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, "PNG")
    return buf.getvalue()


def _colour(i: int) -> tuple[int, int, int]:
    return (10 + 20 * i, 200 - 15 * i, (37 * i) % 256)


def _populate(fd, folder: str = FOLDER) -> dict[str, tuple[int, int, int]]:
    """Three classes of four images; returns {Drive path: colour}."""
    colours = {}
    for c in range(3):
        for i in range(4):
            path = f"{folder}/class_{c}/img_{i}.png"
            colours[path] = _colour(4 * c + i)
            fd.put(path, _png(colours[path]))
    return colours


_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import tensorflow as tf
    import colabmodels as cm
    cm.mount(interactive=False)
    t0 = time.time()
    ds = cm.image_dataset_from_drive(sys.argv[1], image_size=(8, 8), batch_size=None,
                                     shuffle=False, verbose=False)
    seen = {}
    for path, (image, label) in zip(ds.file_paths, ds):
        seen[path] = [int(v) for v in image.numpy().mean(axis=(0, 1)).round()] + [int(label)]
    print(json.dumps({"seen": seen, "classes": ds.class_names, "window": [t0, time.time()]}))
""")


def _kernel(fd, env) -> tuple[dict, list, list]:
    """A new process makes the dataset and reads it; returns (what it saw, its metadata
    requests, its media requests) from the emulator's log."""
    done = subprocess.run([sys.executable, "-c", _SCRIPT, FOLDER], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    t0, t1 = out["window"]
    window = [r for r in fd.requests if t0 <= r.started <= t1]
    meta = [r for r in window if r.path.startswith("/drive/v2/") and r.query.get("alt") != "media"]
    media = [r for r in window if r.query.get("alt") == "media"]
    return out, meta, media


def _colours_of(seen: dict) -> dict[str, tuple[int, int, int]]:
    return {p: tuple(v[:3]) for p, v in seen.items()}


def test_new_kernels_see_every_change_with_one_request_when_nothing_changed(tmp_path):
    from colabmodels.testing import FakeDrive

    with FakeDrive() as fd:
        key = tmp_path / "key.json"
        fd.write_service_account(key)
        env = {**os.environ, "COLABMODELS_DRIVE_ENDPOINT": fd.url,
               "GOOGLE_APPLICATION_CREDENTIALS": str(key),
               "COLABMODELS_CACHE_DIR": str(tmp_path / "cache"),
               "COLABMODELS_CONFIG_DIR": str(tmp_path / "config"), "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("COLABMODELS_OFFLINE", None)
        colours = _populate(fd)

        cold, _, cold_media = _kernel(fd, env)
        assert _colours_of(cold["seen"]) == colours
        assert cold["classes"] == ["class_0", "class_1", "class_2"] and len(cold_media) == 12

        warm, warm_meta, warm_media = _kernel(fd, env)
        assert warm["seen"] == cold["seen"]
        assert len(warm_meta) <= 1 and all("/changes" in r.path for r in warm_meta), \
            [(r.method, r.path) for r in warm_meta]
        assert warm_media == []

        # between two kernels: one file added, one trashed, one given new content
        added, gone, changed = (f"{FOLDER}/class_0/new.png", f"{FOLDER}/class_1/img_0.png",
                                f"{FOLDER}/class_2/img_1.png")
        fd.put(added, _png((1, 2, 3)))
        fd.trash(gone)
        fd.put(changed, _png((250, 5, 120)), replace=True)
        expected = {**colours, added: (1, 2, 3), changed: (250, 5, 120)}
        del expected[gone]

        after, _, after_media = _kernel(fd, env)
        assert _colours_of(after["seen"]) == expected
        assert after["seen"][added][3] == 0 and after["seen"][changed][3] == 2
        assert len(after_media) == 2  # the new file and the new content, nothing else

        again, again_meta, again_media = _kernel(fd, env)
        assert again["seen"] == after["seen"]
        assert len(again_meta) <= 1 and again_media == []


# -- in this process, the remembered listing read from disk as a new process reads it -------

def _dataset(**kwargs):
    from colabmodels import image_dataset_from_drive

    ds = image_dataset_from_drive(FOLDER, image_size=(8, 8), batch_size=None, shuffle=False,
                                  **kwargs)
    seen = {}
    for path, (image, _) in zip(ds.file_paths, ds, strict=True):
        seen[path] = tuple(int(v) for v in image.numpy().mean(axis=(0, 1)).round())
    return ds, seen


def _as_a_new_kernel(fd):
    """Forget what this process remembers of listings; returns a request counter."""
    from colabmodels.tree import forget_listings

    forget_listings(on_disk=False)
    start = time.time()

    def requests() -> list:
        return [r for r in fd.requests if r.started >= start and r.path.startswith("/drive/v2/")
                and r.query.get("alt") != "media"]
    return requests


@pytest.fixture
def warm(drive_env):
    colours = _populate(drive_env)
    _, seen = _dataset(verbose=False)
    assert seen == colours
    return drive_env, colours


@pytest.mark.parametrize("change", ["added", "trashed", "deleted", "new content", "renamed"])
def test_one_change_is_seen_on_a_warm_cache(warm, change, capsys):
    fd, colours = warm
    expected = dict(colours)
    target = f"{FOLDER}/class_1/img_2.png"
    if change == "added":
        expected[f"{FOLDER}/class_2/zz.png"] = (9, 9, 9)
        fd.put(f"{FOLDER}/class_2/zz.png", _png((9, 9, 9)))
    elif change == "trashed":
        del expected[target]
        fd.trash(target)
    elif change == "deleted":
        del expected[target]
        fd.delete(target)
    elif change == "new content":
        expected[target] = (77, 66, 55)
        fd.put(target, _png((77, 66, 55)), replace=True)
    else:  # renamed in place (a Drive client's patch): same id and bytes, another name
        from colabmodels.testing.fakedrive.client import drive_service, service_account_credentials

        service = drive_service(fd, service_account_credentials(fd.key_path))
        service.files().patch(fileId=fd.resolve(target), body={"title": "img_9.png"}).execute()
        expected[f"{FOLDER}/class_1/img_9.png"] = expected.pop(target)
    requests = _as_a_new_kernel(fd)
    capsys.readouterr()
    ds, seen = _dataset(verbose=True)
    assert seen == expected
    assert ds.file_paths == sorted(expected)
    out = capsys.readouterr().out
    # the count printed once, the one of the dataset returned (not of the remembered listing)
    assert out.count("Found ") == 1 and f"Found {len(expected)} files" in out, out
    assert len(requests()) >= 2  # the feed, then the folder it named


def test_nothing_changed_costs_one_request_and_prints_once(warm, capsys):
    fd, colours = warm
    requests = _as_a_new_kernel(fd)
    capsys.readouterr()
    _, seen = _dataset(verbose=True, validation_split=0.25, subset="training", seed=3)
    made = requests()
    assert len(made) <= 1 and all("/changes" in r.path for r in made), [r.path for r in made]
    out = capsys.readouterr().out
    assert out.count("Found 12 files belonging to 3 classes.") == 1
    assert out.count("Using 9 files for training.") == 1
    assert len(seen) == 9 and set(seen.items()) <= set(colours.items())


def test_a_change_elsewhere_in_drive_keeps_the_remembered_listing(warm):
    fd, colours = warm
    fd.put("MyDrive/elsewhere/other.png", _png((0, 0, 0)))  # moves the feed on
    requests = _as_a_new_kernel(fd)
    _, seen = _dataset(verbose=False)
    assert seen == colours
    made = requests()
    assert len(made) <= 1 and all("/changes" in r.path for r in made)


def test_an_error_on_the_remembered_listing_counts_only_if_it_still_holds(warm):
    """Every class folder trashed: the build on the remembered listing succeeds but the
    answer is Drive's as of now (no images); then images come back and the call succeeds."""
    fd, _ = warm
    for c in range(3):
        fd.trash(f"{FOLDER}/class_{c}")
    requests = _as_a_new_kernel(fd)
    with pytest.raises(ValueError, match="No images found"):
        _dataset(verbose=False)
    assert len(requests()) >= 1
    # and the other way round: images come back, the call succeeds
    fd.put(f"{FOLDER}/class_5/a.png", _png((3, 4, 5)))
    _as_a_new_kernel(fd)
    _, seen = _dataset(verbose=False)
    assert seen == {f"{FOLDER}/class_5/a.png": (3, 4, 5)}


def test_a_trashed_folder_is_noticed_by_a_warm_kernel(warm):
    from colabmodels.errors import NotFoundError

    fd, _ = warm
    fd.trash(FOLDER)
    _as_a_new_kernel(fd)
    with pytest.raises(NotFoundError):
        _dataset(verbose=False)


def test_remembered_walk_reads_the_feed_once(warm):
    """:func:`walk_remembered` and its fallback walk together read the feed once."""
    from colabmodels.datasets.listing import resolve_folder
    from colabmodels.tree import walk_remembered

    fd, _ = warm
    fd.put(f"{FOLDER}/class_0/more.png", _png((5, 5, 5)))
    requests = _as_a_new_kernel(fd)
    backend, root = resolve_folder(FOLDER)
    early = walk_remembered(backend, root)
    assert early is not None
    assert len(early.tree.file_nodes()) == 12  # as remembered
    now = early.confirm()
    assert now is not early.tree and len(now.file_nodes()) == 13
    assert early.confirm() is now  # settled once
    feed = [r for r in requests() if "/changes" in r.path]
    assert len(feed) == 1, [r.path for r in requests()]
    assert all(n.stat.ref.id for n in now.file_nodes())


def test_no_collection_pauses_while_the_dataset_is_made(warm):
    """Python's automatic collections wait while the listing becomes objects (with TensorFlow
    loaded a full one walks a million objects); they are on again afterwards, and a caller
    who turned them off finds them off."""
    import gc

    from colabmodels import image_dataset_from_drive

    fd, _ = warm
    _as_a_new_kernel(fd)
    started: list[int] = []

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.collect()
    gc.callbacks.append(note)
    try:
        assert gc.isenabled()
        ds = image_dataset_from_drive(FOLDER, image_size=(8, 8), verbose=False)
        assert started == [] and gc.isenabled()
        gc.disable()
        image_dataset_from_drive(FOLDER, image_size=(8, 8), verbose=False)
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.remove(note)
    assert sum(int(x.shape[0]) for x, _ in ds) == 12


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (no image data behind it)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


def test_the_next_kernel_reads_no_image_headers_yet_never_passes_a_bomb(warm, monkeypatch):
    """The cold epoch (``warm``) noted the most pixels its files declare as it checked each
    download, and so does find_cached when it reads the headers; the next kernel on the same
    files reads that note instead of every header, unless the limit is now lower; a set of
    files with a bomb in it is checked file by file every time."""
    from PIL import Image

    from colabmodels.bulk import fetch_file_entry
    from colabmodels.datasets import feeder as feeder_module
    from colabmodels.datasets.feeder import Feeder
    from colabmodels.datasets.listing import index_drive_folder, resolve_folder

    fd, _ = warm
    reads: list[str] = []
    real = feeder_module.declared_size
    monkeypatch.setattr(feeder_module, "declared_size", lambda p: reads.append(p) or real(p))

    def cached(folder: str = FOLDER) -> int:
        backend, _ = resolve_folder(folder)
        return Feeder(backend, index_drive_folder(folder).stats.files).find_cached()

    from colabmodels.cachestore import cache

    assert cached() == 12 and reads == []  # the first new kernel after the cold epoch
    notes = list((cache.root / "checks").glob("*.pixels"))
    assert [int(n.read_text()) for n in notes] == [64]  # 8x8 images
    for n in notes:
        n.unlink()
    assert cached() == 12 and len(reads) == 12  # no note: every header read, and noted
    assert cached() == 12 and len(reads) == 12  # the note: no header read
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 40 pixels allowed, each image has 64
    assert cached() == 0 and len(reads) == 24
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)
    assert cached() == 12 and len(reads) == 24

    # a bomb that reached the cache by another route is refused whatever was noted
    fd.put(f"{FOLDER}/class_0/zz_bomb.png", _bomb_png(40_000, 40_000))
    _as_a_new_kernel(fd)
    backend, _ = resolve_folder(FOLDER)
    bomb = [f for f in index_drive_folder(FOLDER).stats.files if f.path.endswith("zz_bomb.png")]
    fetch_file_entry(backend, bomb[0].stat)
    for _ in range(2):
        before = len(reads)
        assert cached() == 12 and len(reads) - before == 13
