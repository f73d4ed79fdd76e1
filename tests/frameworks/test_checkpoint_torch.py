"""DriveCheckpoint for a torch training loop, against the Drive emulator (issue 23).

The loop of the README: restore() -> None on a new destination, save() a checkpoint dict
(model, optimizer, scheduler, epoch, RNG states) each epoch, wait() at the end. A run stopped
half-way and resumed in a fresh model reaches the uninterrupted run's weights exactly.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import pytest

import colabmodels as cm

torch = pytest.importorskip("torch")

EPOCHS = 6


def _train(ckpt, *, epochs=EPOCHS, stop_after=None, seed=0):
    """The README's loop; returns the model (and stops after ``stop_after`` epochs)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, generator=gen)
    y = x.sum(dim=1, keepdim=True)
    start = 0
    torch.manual_seed(123)  # the run's RNG; restored from the checkpoint on resume
    state = ckpt.restore() if ckpt is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        start = state["epoch"]
    for epoch in range(start, epochs):
        model.train()
        for i in range(0, 64, 16):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[i:i + 16]), y[i:i + 16])
            loss.backward()
            opt.step()
        sched.step()
        if ckpt is not None:
            ckpt.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                       "scheduler": sched.state_dict(), "epoch": epoch + 1,
                       "rng": {"torch": torch.get_rng_state(), "python": random.getstate()}},
                      step=epoch + 1, metrics={"loss": float(loss.detach())})
        if stop_after is not None and epoch + 1 == stop_after:
            break
    if ckpt is not None:
        assert ckpt.wait() == []
    return model


def test_restore_on_a_new_destination_is_none(drive_env):
    assert cm.DriveCheckpoint("MyDrive/runs/nothing-yet").restore() is None


def test_resumed_loop_ends_with_the_uninterrupted_weights(drive_env):
    want = _train(None).state_dict()
    dest = "MyDrive/runs/torch"
    _train(cm.DriveCheckpoint(dest, keep_last=2, monitor="loss"), stop_after=3)
    got = _train(cm.DriveCheckpoint(dest, keep_last=2, monitor="loss"), seed=99).state_dict()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)

    versions = cm.versions(dest)
    steps = [v.metadata["step"] for v in versions]
    assert steps == sorted(steps) and steps[-1] == EPOCHS  # some may be skipped (latest wins)
    assert all(isinstance(v.metadata["loss"], float) for v in versions)
    best = [v for v in versions if "best" in v.tags]
    newest_two = {v.version for v in versions[-2:]}
    assert len(best) == 1
    assert len(versions) == (2 if best[0].version in newest_two else 3)  # keep_last=2 (+ best)
    assert versions[-1].format == "torch-state-dict"

    state = cm.load_model(f"{dest}@latest", progress=False)  # weights_only, no trust needed
    assert state["epoch"] == EPOCHS and state["optimizer"]["state"]
    best_state = cm.load_model(f"{dest}@best", progress=False)
    assert best_state["epoch"] == best[0].metadata["step"]


def test_a_torch_process_does_not_import_tensorflow(drive_env, tmp_path):
    script = textwrap.dedent("""
        import sys, torch
        import colabmodels as cm
        ckpt = cm.DriveCheckpoint("MyDrive/runs/no-tf")
        assert ckpt.restore() is None
        ckpt.save({"w": torch.ones(3), "epoch": 1}, step=1)
        assert ckpt.wait() == []
        assert ckpt.restore()["epoch"] == 1
        assert not isinstance(ckpt, type) and "tensorflow" not in sys.modules, "tf imported"
        assert "keras" not in sys.modules, "keras imported"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
