"""DriveCheckpoint's uploads against the Drive emulator (issue 23): a dead network spools and
uploads when it is back, an expired sign-in keeps the checkpoint and says how to sign in,
keep_last prunes only after a newer version is complete (to Drive's trash, keeping @best),
lagging uploads coalesce (latest wins, a best-so-far is never dropped), @best resolves.

The checkpoints are dicts of numpy arrays (saved as safetensors), so no framework is needed.
"""

from __future__ import annotations

import itertools
import json
import time

import pytest

import colabmodels as cm
from colabmodels import presentation
from colabmodels.errors import AuthError, VersionError
from colabmodels.refs import parse_ref

np = pytest.importorskip("numpy")
pytest.importorskip("safetensors")


def _state(i: int, n: int = 1000) -> dict:
    return {"w": np.full(n, float(i), dtype="float32")}


def _steps(dest: str) -> list[int]:
    return [v.metadata["step"] for v in cm.versions(dest)]


def _snapshots(ckpt) -> list:
    return [p for p in ckpt.spool.iterdir() if p.is_dir()] if ckpt.spool.is_dir() else []


def test_best_is_a_version_tag():
    ref = parse_ref("MyDrive/runs/x@best")
    assert (ref.path, ref.version) == ("MyDrive/runs/x", "best")
    assert parse_ref("gs://b/runs/x@BEST").version == "best"
    assert parse_ref("MyDrive/runs/x@bestest").version is None  # just a name


def test_dead_network_spools_and_uploads_when_back(drive_env):
    dest = "MyDrive/runs/outage"
    ckpt = cm.DriveCheckpoint(dest, keep_last=1)
    ckpt.save(_state(1), step=1)
    assert ckpt.wait() == []
    drive_env.stop()  # every request now gets "connection refused"
    ckpt.save(_state(2), step=2)  # returns: training goes on
    with pytest.warns(UserWarning, match="network or Drive is down"):
        assert ckpt.wait() == ["step 2"]
    [kept] = _snapshots(ckpt)
    assert (kept / "checkpoint.json").exists()
    drive_env.start()
    assert _steps(dest) == [1]  # v1 is not pruned: no newer version is complete yet
    assert ckpt.wait() == []
    assert _steps(dest) == [2]  # keep_last=1, now that step 2 is complete
    assert _snapshots(ckpt) == []
    state = cm.load_model(f"{dest}@latest", progress=False)
    np.testing.assert_array_equal(state["w"], _state(2)["w"])


def test_failing_requests_keep_the_checkpoint_until_they_pass(drive_env, monkeypatch):
    monkeypatch.setenv("COLABMODELS_MAX_RETRIES", "1")
    dest = "MyDrive/runs/flaky"
    ckpt = cm.DriveCheckpoint(dest)
    drive_env.fail_next("503", count=2)
    ckpt.save(_state(1), step=1)
    reported = []
    with pytest.warns(UserWarning, match="kept in the local spool"):
        for _ in range(4):  # each wait() tries once more; two attempts meet a 503
            left = ckpt.wait()
            reported.append(left)
            if not left:
                break
    assert reported[0] == ["step 1"] and reported[-1] == []
    assert _steps(dest) == [1]


def test_expired_sign_in_keeps_the_checkpoint_and_says_how_to_sign_in(drive_env, tmp_path,
                                                                       monkeypatch):
    dest = "MyDrive/runs/signin"
    ckpt = cm.DriveCheckpoint(dest)
    ckpt.save(_state(1), step=1)
    assert ckpt.wait() == []
    key_id = json.loads(drive_env.key_path.read_text())["private_key_id"]
    drive_env.auth.forget(key_id)  # the key is revoked: refreshing gives invalid_grant
    drive_env.expire_tokens()      # the access token in use now gets 401
    ckpt.save(_state(2), step=2)
    with pytest.raises(AuthError) as refused:
        ckpt.wait()
    message = str(refused.value)
    assert "cm.mount(force_remount=True)" in message and "step 2" in message
    assert "spool" in message
    assert len(_snapshots(ckpt)) == 1

    new_key = tmp_path / "new-key.json"
    drive_env.write_service_account(new_key)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(new_key))
    cm.mount(service_account=str(new_key), force_remount=True)
    assert ckpt.wait() == []
    assert _steps(dest) == [1, 2]
    assert _snapshots(ckpt) == []


def test_keep_last_prunes_to_the_trash_and_keeps_the_best(drive_env):
    dest = "MyDrive/runs/prune"
    ckpt = cm.DriveCheckpoint(dest, keep_last=2, monitor="val_loss")
    for step, val in enumerate([5.0, 1.0, 3.0, 4.0, 6.0], start=1):
        ckpt.save(_state(step), step=step, metrics={"val_loss": val})
        assert ckpt.wait() == []
    versions = cm.versions(dest)
    assert [v.metadata["step"] for v in versions] == [2, 4, 5]  # best + the last two
    assert [v.tags for v in versions] == [["best"], [], ["latest"]]
    assert cm.load_model(f"{dest}@best", progress=False)["w"][0] == 2.0
    table = presentation.versions_table(versions, dest).to_text()
    assert "v2 (best)" in table
    trashed = {f["title"] for f in drive_env.files_of()
               if f.get("labels", {}).get("trashed") and f["title"].startswith("v")}
    assert trashed == {"v1", "v3"}


def test_without_monitor_there_is_no_best(drive_env):
    dest = "MyDrive/runs/nobest"
    ckpt = cm.DriveCheckpoint(dest)
    ckpt.save(_state(1), step=1)
    ckpt.wait()
    with pytest.raises(VersionError, match="monitor"):
        cm.load_model(f"{dest}@best", progress=False)


def test_lagging_uploads_coalesce_latest_wins_and_keep_a_best(drive_env):
    dest = "MyDrive/runs/lag"
    ckpt = cm.DriveCheckpoint(dest, keep_last=None, monitor="val_loss")
    drive_env.bandwidth_bytes_per_s = 150_000  # 400 kB a checkpoint: each upload takes seconds
    values = [5.0, 1.0, 2.0, 3.0, 4.0]
    for step, val in enumerate(values, start=1):
        ckpt.save(_state(step, 100_000), step=step, metrics={"val_loss": val})
        assert len(_snapshots(ckpt)) <= 3  # uploading + a best-so-far + the newest
        if step == 1:  # let the upload thread take step 1 before the next ones come
            end = time.monotonic() + 30
            while ckpt._up.current is None and time.monotonic() < end:
                time.sleep(0.01)
    assert len(_snapshots(ckpt)) == 3
    drive_env.bandwidth_bytes_per_s = None
    assert ckpt.wait() == []
    # step 1 was uploading; step 2 (a new best) waited; 3 and 4 were replaced by newer ones
    assert _steps(dest) == [1, 2, 5]
    assert ckpt._up.skipped[-2:] == ["step 3", "step 4"]
    assert [v.tags for v in cm.versions(dest)] == [[], ["best"], ["latest"]]


def test_a_killed_upload_leaves_nothing_latest_would_pick(drive_env):
    """A version folder without a manifest (a process died mid-upload) is invisible."""
    dest = "MyDrive/runs/half"
    ckpt = cm.DriveCheckpoint(dest, keep_last=1)
    ckpt.save(_state(1), step=1)
    ckpt.wait()
    drive_env.put(f"{dest}/v2/model.safetensors", b"half a file")  # no manifest.json
    assert _steps(dest) == [1]
    assert ckpt.restore()["w"][0] == 1.0
    ckpt.save(_state(3), step=3)
    ckpt.wait()
    assert [v.version for v in cm.versions(dest)] == [3]
    # the unfinished v2 is older than every kept checkpoint: it went to the trash as well
    assert not drive_env.exists(f"{dest}/v2") or drive_env.metadata(f"{dest}/v2")["labels"]["trashed"]


def test_save_returns_before_the_upload(drive_env):
    dest = "MyDrive/runs/fast"
    ckpt = cm.DriveCheckpoint(dest)
    drive_env.latency_ms = 300
    ckpt.save(_state(1), step=1)
    assert ckpt._up.busy()  # still uploading when save() returned
    drive_env.latency_ms = 0
    assert ckpt.wait() == []
    assert not ckpt._up.busy()


def test_a_multi_file_version_uploads_its_files_at_once(drive_env, tmp_path):
    from pathlib import Path

    from colabmodels.formats import SavedFiles
    from colabmodels.registry import publish

    names = ["model/a.bin", "model/b.bin", "model/c.bin"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode() * 50_000)
    saved = SavedFiles("tf-savedmodel", "tensorflow", "0", [Path(n) for n in names], {},
                       Path("model"))
    drive_env.latency_ms = 300
    n0 = len(drive_env.requests)
    info = publish(tmp_path, saved, parse_ref("MyDrive/runs/multi"), progress=False)
    drive_env.latency_ms = 0
    uploads = [r for r in drive_env.requests[n0:] if r.path.startswith("/upload/")]
    spans = sorted((r.started, r.started + r.duration_s) for r in uploads
                   if r.request_bytes >= 100_000)
    assert len(spans) >= 3  # (more when a loaded machine made a chunk go again)
    overlapping = sum(1 for (_, e0), (s1, _) in itertools.pairwise(spans) if s1 < e0)
    assert overlapping >= 1  # not one after the other
    assert [f["path"] for f in info.files] == names
    assert cm.versions("MyDrive/runs/multi")[0].format == "tf-savedmodel"


def test_load_model_magic_takes_best(drive_env, ip):
    dest = "MyDrive/runs/magic"
    ckpt = cm.DriveCheckpoint(dest, monitor="acc", mode="max")
    for step, acc in enumerate([0.5, 0.9, 0.7], start=1):
        ckpt.save(_state(step), step=step, metrics={"acc": acc})
        ckpt.wait()
    state = ip.run_line_magic("load_model", f"{dest}@best")
    assert state["w"][0] == 2.0
    table = ip.run_line_magic("models", dest)
    assert "v2 (best)" in table.to_text()
