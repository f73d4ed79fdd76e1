"""Issue 23, "done when": training killed with SIGKILL at random points (one of them in the
middle of a checkpoint upload) and rerun, script unchanged, ends with the weights of a run
that was never interrupted.

The Drive emulator lives in this test process, so Drive's state survives the killed child;
the child's cache (and so its checkpoint spool) is kept between runs, as a local kernel's
would be. After every kill, every version that @latest could pick is complete.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import colabmodels as cm

torch = pytest.importorskip("torch")

EPOCHS = 10

SCRIPT = textwrap.dedent("""
    import random, sys, time
    import torch
    import colabmodels as cm

    dest, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(256, 64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    x = torch.randn(128, 64, generator=torch.Generator().manual_seed(1))
    ckpt = cm.DriveCheckpoint(dest, keep_last=2) if dest != "-" else None
    start = 0
    torch.manual_seed(42)
    state = ckpt.restore() if ckpt else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        start = state["epoch"]
    print("start", start, flush=True)
    for epoch in range(start, EPOCHS):
        for i in range(0, 128, 16):
            opt.zero_grad()
            loss = ((model(x[i:i + 16]) - x[i:i + 16]) ** 2).mean()
            loss.backward()
            opt.step()
        sched.step()
        time.sleep(0.2)  # an epoch takes a while, as real ones do: the kills land mid-training
        if ckpt:
            ckpt.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                       "scheduler": sched.state_dict(), "epoch": epoch + 1,
                       "rng": {"torch": torch.get_rng_state(), "python": random.getstate()}},
                      step=epoch + 1, metrics={"loss": float(loss.detach())})
        print("epoch", epoch + 1, flush=True)
    if ckpt:
        assert ckpt.wait() == []
    torch.save(model.state_dict(), out)
    print("done", flush=True)
""").replace("EPOCHS", str(EPOCHS))


def _run(script: Path, dest: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), dest, str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _complete_versions_only(fd, dest: str) -> list[int]:
    """Every version cm.versions lists has all its files on Drive; returns their numbers."""
    found = []
    for info in cm.versions(dest):
        for f in info.files:
            data = fd.get(f"{dest}/v{info.version}/{f['path']}")
            assert len(data) == f["size"], f"{info.ref}: {f['path']} is incomplete"
        found.append(info.version)
    return found


def test_sigkill_at_random_points_then_rerun_gives_the_uninterrupted_weights(drive_env, tmp_path):
    rng = random.Random(23)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    want_path = tmp_path / "uninterrupted.pt"
    plain = _run(script, "-", want_path)
    assert plain.wait(timeout=300) == 0, plain.stdout.read()[-3000:]
    want = torch.load(want_path, weights_only=True)

    dest = "MyDrive/runs/killed"
    drive_env.bandwidth_bytes_per_s = 1_500_000  # a checkpoint (~0.5 MB) uploads in ~0.3 s
    kills = []
    # 1: SIGKILL in the middle of a checkpoint upload (a resumable upload has begun)
    child = _run(script, dest, tmp_path / "out.pt")
    n0 = len(drive_env.requests)
    end = time.monotonic() + 300
    while time.monotonic() < end and child.poll() is None:
        began = [r for r in drive_env.requests[n0:]
                 if "/upload/" in r.path and r.method == "POST" and r.status == 200]
        if began:
            child.send_signal(signal.SIGKILL)
            kills.append("mid-upload")
            break
        time.sleep(0.002)
    child.wait(timeout=60)
    assert kills == ["mid-upload"]
    _complete_versions_only(drive_env, dest)

    # 2 and 3: SIGKILL at a random moment of the rerun: after a random epoch of it, inside the
    # next one (so the kill lands mid-training however fast this machine trains)
    for _ in range(2):
        child = _run(script, dest, tmp_path / "out.pt")
        assert child.stdout is not None
        start = int(next(line for line in child.stdout if line.startswith("start")).split()[1])
        kill_after = f"epoch {rng.randint(start + 1, max(start + 1, EPOCHS - 3))}"
        for line in child.stdout:
            if line.strip() == kill_after:
                break
        time.sleep(rng.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        kills.append("random")
        _complete_versions_only(drive_env, dest)

    # the same script, once more, to the end
    drive_env.bandwidth_bytes_per_s = None
    final = _run(script, dest, tmp_path / "out.pt")
    output = final.communicate(timeout=300)[0]
    assert final.returncode == 0, output[-3000:]
    started = int(next(line for line in output.splitlines() if line.startswith("start")).split()[1])
    assert 0 < started < EPOCHS  # it resumed (training from scratch would also match)
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    versions = cm.versions(dest)
    assert versions[-1].metadata["step"] == EPOCHS
    assert len(versions) == 2  # keep_last=2
