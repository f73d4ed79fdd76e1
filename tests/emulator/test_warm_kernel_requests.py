"""Issue 25: a new kernel on a warm cache lists a dataset folder with at most one metadata
request (the change feed; the folder's own stat is remembered while the feed does not name it),
counted in the emulator's log for a fresh Python process each time. Changes are still seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from colabmodels.testing import FakeDrive

_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import colabmodels as cm
    from colabmodels.datasets import index_drive_folder
    cm.mount(interactive=False)
    t0 = time.time()
    try:
        index = index_drive_folder(sys.argv[1])
        out = {"paths": list(index.paths), "classes": index.class_names}
    except Exception as e:
        out = {"error": type(e).__name__, "message": str(e)}
    out["window"] = [t0, time.time()]
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    home = tmp_path_factory.mktemp("warm-kernel")
    with FakeDrive() as fd:
        key = home / "key.json"
        fd.write_service_account(key)
        env = {**os.environ, "COLABMODELS_DRIVE_ENDPOINT": fd.url,
               "GOOGLE_APPLICATION_CREDENTIALS": str(key),
               "COLABMODELS_CACHE_DIR": str(home / "cache"),
               "COLABMODELS_CONFIG_DIR": str(home / "config")}
        env.pop("COLABMODELS_OFFLINE", None)
        for c in range(3):
            for i in range(4):
                fd.put(f"MyDrive/data/flowers/class_{c}/img_{i}.jpg", b"\xff\xd8\xff" + bytes([c, i]))
        yield fd, env


def _kernel(fd, env, ref="MyDrive/data/flowers"):
    """A new process lists ``ref``; returns (its result, its Drive metadata requests)."""
    done = subprocess.run([sys.executable, "-c", _SCRIPT, ref], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    t0, t1 = out["window"]
    meta = [r for r in fd.requests if t0 <= r.started <= t1 and r.path.startswith("/drive/v2/")
            and r.query.get("alt") != "media"]
    return out, meta


def test_new_kernel_on_a_warm_cache_makes_one_metadata_request(emulator):
    fd, env = emulator
    cold, cold_meta = _kernel(fd, env)
    assert len(cold["paths"]) == 12 and cold["classes"] == ["class_0", "class_1", "class_2"]
    assert len(cold_meta) >= 4  # the path, the feed position, the folders

    warm, warm_meta = _kernel(fd, env)
    assert warm["paths"] == cold["paths"]
    assert len(warm_meta) <= 1, [(r.method, r.path) for r in warm_meta]
    assert all("/changes" in r.path for r in warm_meta)

    # a new file is seen: the feed names its folder, which alone is listed again
    fd.put("MyDrive/data/flowers/class_1/img_new.jpg", b"\xff\xd8\xffnew")
    after, after_meta = _kernel(fd, env)
    assert "MyDrive/data/flowers/class_1/img_new.jpg" in after["paths"] or \
        any(p.endswith("class_1/img_new.jpg") for p in after["paths"])
    assert len(after_meta) <= 3
    again, again_meta = _kernel(fd, env)
    assert again["paths"] == after["paths"] and len(again_meta) <= 1


def test_a_trashed_root_is_noticed_by_a_new_kernel(emulator):
    fd, env = emulator
    for i in range(2):
        fd.put(f"MyDrive/data/gone/a/{i}.png", b"\x89PNG" + bytes([i]))
    first, _ = _kernel(fd, env, "MyDrive/data/gone")
    assert len(first["paths"]) == 2
    _, warm_meta = _kernel(fd, env, "MyDrive/data/gone")
    assert len(warm_meta) <= 1
    fd.trash("MyDrive/data/gone")
    gone, gone_meta = _kernel(fd, env, "MyDrive/data/gone")
    assert gone.get("error") == "NotFoundError", gone
    assert any("/changes" in r.path for r in gone_meta)  # the feed named it, then it was asked
