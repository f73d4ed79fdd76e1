"""06_lightning_checkpoints_gdrive: PyTorch Lightning checkpoints and CSV logs to gdrive://, a new
kernel resumes from the last checkpoint with ckpt_path=, pandas reads the metrics from Drive.

Jupyter kernel only: the Colab-pinned kernel environment has no Lightning (Colab does not ship
it either; there the notebook's first cell installs it)."""

from __future__ import annotations

import re

import pytest
from notebook_envs import assert_ran

pytest.importorskip("lightning")
pytest.importorskip("nbclient")
pytestmark = pytest.mark.timeout(1200)


@pytest.mark.parametrize("kernel", ["jupyter"], indirect=True)  # no Lightning in the Colab-pinned env
def test_lightning_resumes_from_drive_in_a_new_kernel(run_notebook, kernel):
    done = run_notebook("06", kernel)
    assert_ran(done)
    text = done.text
    kernels = re.findall(r"kernel (\d+): a fresh model", text)
    assert len(kernels) == 2 and kernels[0] != kernels[1], text[:3000]
    first = re.search(r"trained to global step (\d+); checkpoint: (\S+)", text)
    assert first and first.group(1) == "16", text[:3000]  # 256 samples / 32 = 8 steps an epoch
    assert first.group(2).startswith("gdrive://MyDrive/runs/lightning-demo/")
    listed = re.search(r"^(MyDrive/runs/lightning-demo/\S+/epoch=1-step=16\.ckpt) ([\d,]+) bytes",
                       text, re.MULTILINE)
    assert listed, text[:3000]
    resumed = re.search(r"resumed from (\S+) in kernel (\d+): now at epoch (\d+), global step (\d+)",
                        text)
    assert resumed, text[-3000:]
    assert resumed.groups() == ("epoch=1-step=16.ckpt", kernels[1], "4", "32")
    assert "Restoring states from the checkpoint path at gdrive://" in text
    # section 3: pandas read the resumed run's metrics (epochs 2 and 3) from Drive
    assert re.search(r"epoch\s+loss\s+step\n0\s+2\s+[\d.]+\s+23\n1\s+3\s+[\d.]+\s+31", text), \
        text[-1500:]
