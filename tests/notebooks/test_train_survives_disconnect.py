"""07_train_survives_disconnect: Keras training with DriveCheckpoint cut off after epoch 4,
resumed in a new kernel by the same cell (epochs 5..8, the optimizer's step count continuing),
@best loaded; the torch loop resumed at epoch 4. In a Jupyter and a Colab-pinned kernel."""

from __future__ import annotations

import re

import pytest
from notebook_envs import assert_ran

pytest.importorskip("keras")
pytest.importorskip("torch")
pytest.importorskip("nbclient")
pytestmark = pytest.mark.timeout(1200)


def test_training_survives_a_kernel_restart(run_notebook, kernel):
    done = run_notebook("07", kernel)
    assert_ran(done)
    text = done.text
    kernels = re.findall(r"kernel (\d+): a fresh model, optimizer built: False", text)
    assert len(kernels) == 2 and kernels[0] != kernels[1], text[:3000]
    assert "runtime disconnected after epoch 4" in text
    resumed = re.search(r"trained epochs (\d+)\.\.(\d+) in kernel (\d+); optimizer steps: (\d+)",
                        text)
    assert resumed, text[-3000:]
    assert resumed.groups()[:2] == ("5", "8") and resumed.group(3) == kernels[1]
    assert resumed.group(4) == str(8 * 12)  # 384 samples / batch 32 = 12 steps an epoch
    assert re.search(r"^v\d+ \(best\)\s", text, re.MULTILINE), text[-3000:]  # %models marks it
    best = re.search(r"@best is v(\d+): epoch (\d+), val_loss ([0-9.]+)", text)
    assert best and 1 <= int(best.group(2)) <= 8
    assert re.search(r"its val_loss now: " + re.escape(best.group(3)), text)
    assert "epochs 1..3, loss" in text and "epochs 4..6, loss" in text
    steps = re.search(r"versions: \[(.*)\]", text).group(1)
    assert "6)" in steps  # the last checkpoint is step 6
