"""Issue 26 (hardening, round two): planted links in the cache are never followed, a cache root
that someone else controls is refused, everything the cache writes is private, secrets stay out
of widgets, a save is remembered for offline use, and the emulator's permissions match Drive."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

import colabmodels as cm
from colabmodels.cachestore import cache
from colabmodels.errors import ConfigError, TransferError


@pytest.fixture(scope="module")
def fake_drive():
    """One emulator for the module (each test writes its own folder)."""
    from colabmodels.testing import FakeDrive

    with FakeDrive() as fd:
        yield fd


def _modes(root: Path) -> dict[str, int]:
    out = {str(root): stat.S_IMODE(root.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                out[p] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


# -- planted links are not followed ----------------------------------------------------------

def test_planted_links_in_partial_are_not_followed(drive_env, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 5)
    drive_env.put("MyDrive/links/model.bin", data)
    first = cm.fetch("MyDrive/links/model.bin", progress=False)
    key = first.parent.parent.name  # entries/<key>/data/<name>
    cache.remove(next(e for e in cache.entries() if e.key == key))

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    record_victim = tmp_path / "record-victim.txt"
    record_victim.write_text("also precious")
    partial = cache.partial_path(key)
    partial.symlink_to(victim)
    record_tmp = partial.with_name(partial.name + ".parts.json.tmp")
    record_tmp.symlink_to(record_victim)

    path = cm.fetch("MyDrive/links/model.bin", progress=False)
    assert victim.read_text() == "precious"
    assert record_victim.read_text() == "also precious"
    assert not path.is_symlink() and path.read_bytes() == data


def test_a_download_refuses_a_link_planted_while_it_runs(drive_env, tmp_path):
    """The engine opens its partial file with O_NOFOLLOW: a link there is never written through."""
    from colabmodels.storage import backend_for
    from colabmodels.transfer import download_to

    drive_env.put("MyDrive/links/other.bin", os.urandom(2 * 1024 * 1024))
    ref = cm.parse_ref("MyDrive/links/other.bin")
    backend = backend_for(ref)
    victim = tmp_path / "victim2.txt"
    victim.write_text("precious")
    partial = tmp_path / "dl" / "x.incomplete"
    partial.parent.mkdir()
    os.symlink(victim, partial)
    download_to(backend, backend.stat(ref), partial)  # the planted link is dropped, not followed
    assert victim.read_text() == "precious" and not partial.is_symlink()


# -- a cache root someone else controls ------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                    reason="needs root to make a folder owned by another user")
def test_a_cache_root_owned_by_another_user_is_refused(drive_env, tmp_path, monkeypatch):
    shared = tmp_path / "shared-cache"
    shared.mkdir(mode=0o700)
    os.chown(shared, 4242, 4242)
    monkeypatch.setenv("COLABMODELS_CACHE_DIR", str(shared))
    drive_env.put("MyDrive/root/a.bin", b"a" * 100)
    with pytest.raises(ConfigError) as info:
        cm.fetch("MyDrive/root/a.bin", progress=False)
    message = str(info.value)
    assert str(shared) in message and "another user" in message
    assert "COLABMODELS_CACHE_DIR" in message
    assert os.listdir(shared) == []  # nothing was written there


def test_a_cache_root_others_can_write_is_refused(drive_env, tmp_path, monkeypatch):
    shared = tmp_path / "open-cache"
    shared.mkdir()
    (shared / "entries").mkdir()  # already in use: someone may have planted something
    os.chmod(shared, 0o777)
    monkeypatch.setenv("COLABMODELS_CACHE_DIR", str(shared))
    drive_env.put("MyDrive/root/b.bin", b"b" * 100)
    with pytest.raises(ConfigError) as info:
        cm.fetch("MyDrive/root/b.bin", progress=False)
    message = str(info.value)
    assert str(shared) in message and "chmod 700" in message
    assert "COLABMODELS_CACHE_DIR" in message
    os.chmod(shared, 0o700)  # what the message says to do
    assert cm.fetch("MyDrive/root/b.bin", progress=False).read_bytes() == b"b" * 100


# -- private cache everywhere ----------------------------------------------------------------

def _image_bytes_no_pil() -> bytes:
    """A real 2x2 PNG written with zlib (the Colab-pinned env has no PIL)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\x10\x20\x30" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _image_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buf, "PNG")
    return buf.getvalue()


def test_broken_marks_and_partial_downloads_are_private(drive_env):
    pytest.importorskip("PIL")
    from colabmodels.datasets.feeder import Feeder
    from colabmodels.datasets.listing import index_drive_folder, resolve_folder
    from colabmodels.storage import backend_for
    from colabmodels.transfer import download_to

    old = os.umask(0o022)
    try:
        drive_env.put("MyDrive/priv/ds/a/good.png", _image_bytes())
        drive_env.put("MyDrive/priv/ds/a/bad.png", b"\x89PNG\r\n\x1a\nnot really")
        backend, _ = resolve_folder("MyDrive/priv/ds")
        files = index_drive_folder("MyDrive/priv/ds").stats.files
        feeder = Feeder(backend, files, on_error="skip")
        assert feeder.fetch_all().count(None) == 1 and feeder.skipped == ["MyDrive/priv/ds/a/bad.png"]

        drive_env.put("MyDrive/priv/big.bin", os.urandom(4 * 1024 * 1024))
        ref = cm.parse_ref("MyDrive/priv/big.bin")
        big = backend_for(ref)
        cancel = threading.Event()
        partial = cache.partial_path("ab" * 20)
        with pytest.raises(TransferError):
            download_to(big, big.stat(ref), partial, part_bytes=1024 * 1024, connections=1,
                        progress=lambda _: cancel.set(), cancel=cancel)
    finally:
        os.umask(old)
    modes = _modes(cache.root)
    assert any(p.endswith(".broken") for p in modes), modes
    assert partial.exists() and any(p.endswith(".parts.json") for p in modes), modes
    loose = {p: oct(m) for p, m in modes.items() if m & 0o077}
    assert loose == {}, f"readable by others: {loose}"


# -- secrets stay out of widget values and reprs ---------------------------------------------

SECRET = "s3cr3tSIGNATURE0123456789"


def _widget_texts(root) -> str:
    """Every state value of ``root`` and the widgets below it (what a saved .ipynb holds)."""
    import json

    seen, out, todo = set(), [], [root]
    while todo:
        widget = todo.pop()
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        state = widget.get_state()
        out.append(json.dumps({k: v for k, v in state.items() if isinstance(v, (str, list, tuple, dict))},
                              default=str))
        todo.extend(getattr(widget, "children", ()) or ())
        for value in state.values():
            if isinstance(value, str) and value.startswith("IPY_MODEL_"):
                from ipywidgets import Widget

                found = getattr(Widget, "widgets", None) or {}
                if value[10:] in found:
                    todo.append(found[value[10:]])
    return "\n".join(out)


SIGNED = [
    f"https://storage.googleapis.com/bucket/flowers/?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40p.iam&X-Goog-Signature={SECRET}",
    f"https://bucket.s3.amazonaws.com/flowers/?X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}",
    "DRIVE_LINK",
]


@pytest.mark.colab
@pytest.mark.parametrize("typed", SIGNED, ids=["gcs-signed", "s3-presigned", "drive-access-token"])
def test_signed_links_stay_out_of_the_dataset_panel(drive_env, typed):
    pytest.importorskip("ipywidgets")
    from colabmodels.widgets.dataset_panel import DatasetPanel

    if typed == "DRIVE_LINK":
        drive_env.put("MyDrive/signed-ds/a/x.png", _image_bytes_no_pil())
        fid = drive_env.resolve("MyDrive/signed-ds")
        typed = f"https://drive.google.com/drive/folders/{fid}?usp=sharing&access_token=ya29.{SECRET}"
    panel = DatasetPanel(typed, namespace={})
    panel.model.wait(60)
    panel.refresh_button.click()
    panel.model.wait(60)
    shown = _widget_texts(panel.widget) + repr(panel) + repr(panel.model)
    assert SECRET not in shown
    assert "<redacted>" in shown or "Signature" not in shown


@pytest.mark.colab
def test_signed_links_stay_out_of_the_drive_browser(drive_env):
    pytest.importorskip("ipywidgets")
    from colabmodels.widgets.browser import DriveBrowser

    drive_env.put("MyDrive/signed-browse/m.bin", b"x")
    fid = drive_env.resolve("MyDrive/signed-browse")
    start = f"https://drive.google.com/drive/folders/{fid}?access_token=ya29.{SECRET}"
    browser = DriveBrowser(start, namespace={})
    browser.model.wait(60)
    browser.search.value = f"https://example.com/x?access_token={SECRET}"
    browser.model.wait(60)
    shown = _widget_texts(browser.widget) + repr(browser) + repr(browser.model)
    assert SECRET not in shown


# -- the cache's locks without fcntl (Windows) -----------------------------------------------

NO_FCNTL = "import sys, filelock; sys.modules['fcntl'] = None  # as on Windows\n"


@pytest.fixture
def no_fcntl(monkeypatch):
    """As on Windows: no ``fcntl`` module (the cache falls back to ``filelock``'s lock), and no
    ``os.pread``/``os.pwrite`` (the engine seeks and reads/writes instead). ``os.fchmod`` stays:
    filelock's POSIX lock, which stands in for its Windows one here, needs it."""
    import sys

    import filelock  # noqa: F401  (it picks its own platform lock on import)

    monkeypatch.setitem(sys.modules, "fcntl", None)
    for name in ("pread", "pwrite"):
        monkeypatch.delattr(os, name)
    with pytest.raises(ImportError):
        import fcntl  # noqa: F401


def test_the_cache_works_without_fcntl(drive_env, no_fcntl):
    data = os.urandom(2 * 1024 * 1024 + 3)
    drive_env.put("MyDrive/portable/m.bin", data)
    drive_env.put("MyDrive/portable/tree/a.bin", b"a")
    assert cm.fetch("MyDrive/portable/m.bin", progress=False).read_bytes() == data
    assert (cm.fetch("MyDrive/portable/tree", progress=False) / "a.bin").read_bytes() == b"a"
    entry = next(e for e in cache.entries() if e.name == "m.bin")
    with cache.in_use(entry):
        assert cache.entry(entry.key) is not None
    assert {e.key for e in cache.prune(max_bytes=0)} >= {entry.key}
    assert cache.entries() == []


def test_without_fcntl_the_lock_still_excludes_another_process(drive_env, no_fcntl):
    import subprocess
    import sys

    key = "cd" * 20
    code = (NO_FCNTL + "from colabmodels.cachestore import cache, TransferError\n"
            "try:\n"
            "    with cache.lock(sys.argv[1], timeout=0.5):\n"
            "        print('got it')\n"
            "except TransferError as e:\n"
            "    print('refused:', e)\n")
    with cache.lock(key):
        held = subprocess.run([sys.executable, "-c", code, key], capture_output=True, text=True,
                              timeout=120)
    assert held.stdout.startswith("refused:"), held.stdout + held.stderr
    assert "another process" in held.stdout and "Wait for it" in held.stdout
    free = subprocess.run([sys.executable, "-c", code, key], capture_output=True, text=True,
                          timeout=120)
    assert free.stdout.strip() == "got it", free.stdout + free.stderr
