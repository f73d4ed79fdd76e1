"""Real clients on gdrive:// against the Drive emulator: pandas, PyTorch Lightning (a new process
resumes from a checkpoint in Drive), Ray Data through pyarrow, and webdataset on our shards."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import pytest

from colabmodels.gdrivefs import GDriveFileSystem
from colabmodels.testing import FakeDrive

pytestmark = pytest.mark.frameworks


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    """One emulator for the module; colabmodels pointed at it the way a user would do it
    (a key in GOOGLE_APPLICATION_CREDENTIALS and the endpoint), so fsspec users need no options."""
    import colabmodels.drive.session as session

    home = tmp_path_factory.mktemp("gdrive-clients")
    with FakeDrive() as fd, pytest.MonkeyPatch.context() as mp:
        fd.key_file = home / "key.json"
        fd.write_service_account(fd.key_file)
        mp.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fd.key_file))
        mp.setenv("COLABMODELS_DRIVE_ENDPOINT", fd.url)
        mp.setenv("COLABMODELS_CACHE_DIR", str(home / "cache"))
        mp.setenv("COLABMODELS_CONFIG_DIR", str(home / "config"))
        mp.delenv("COLABMODELS_OFFLINE", raising=False)
        session.reset()
        GDriveFileSystem.clear_instance_cache()
        yield fd
        session.reset()
        GDriveFileSystem.clear_instance_cache()


def test_pandas_read_csv_and_to_parquet(drive):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    drive.put("MyDrive/data/train.csv", b"x,y\n1,a\n2,b\n3,c\n")
    df = pd.read_csv("gdrive://MyDrive/data/train.csv")
    assert df.to_dict("list") == {"x": [1, 2, 3], "y": ["a", "b", "c"]}
    df.to_parquet("gdrive://MyDrive/data/out/train.parquet")
    assert drive.get("MyDrive/data/out/train.parquet")[:4] == b"PAR1"
    back = pd.read_parquet("gdrive://MyDrive/data/out/train.parquet")
    assert back.equals(df)
    # explicit storage options instead of the environment
    options = {"service_account": str(drive.key_file), "endpoint": drive.url}
    df.to_csv("gdrive://MyDrive/data/out/copy.csv", index=False, storage_options=options)
    assert pd.read_csv("gdrive://MyDrive/data/out/copy.csv", storage_options=options).equals(df)


_LIGHTNING_JOB = textwrap.dedent('''
    import json, sys
    import torch
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    root, epochs = sys.argv[1], int(sys.argv[2])
    ckpt = sys.argv[3] if len(sys.argv) > 3 else None
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    trainer = L.Trainer(default_root_dir=root, max_epochs=epochs, accelerator="cpu",
                        logger=CSVLogger(root), log_every_n_steps=1, enable_progress_bar=False,
                        enable_model_summary=False)
    model = Tiny()
    trainer.fit(model, data, ckpt_path=ckpt)
    print(json.dumps({"global_step": trainer.global_step, "epoch": trainer.current_epoch,
                      "checkpoint": trainer.checkpoint_callback.best_model_path,
                      "bias": model.layer.bias.item()}))
''')


def _lightning(tmp_path, *args: str) -> dict:
    script = tmp_path / "job.py"
    script.write_text(_LIGHTNING_JOB)
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_lightning_checkpoints_to_drive_and_a_new_process_resumes(drive, tmp_path):
    pytest.importorskip("lightning")
    root = "gdrive://MyDrive/runs/x"
    first = _lightning(tmp_path, root, "2")
    assert first["global_step"] == 8 and first["checkpoint"].startswith(root + "/")
    fs = GDriveFileSystem(skip_instance_cache=True)
    ckpts = fs.glob("MyDrive/runs/x/**/*.ckpt")
    assert ckpts == ["MyDrive/runs/x/lightning_logs/version_0/checkpoints/epoch=1-step=8.ckpt"]
    metrics = fs.cat_file("MyDrive/runs/x/lightning_logs/version_0/metrics.csv").decode()
    assert metrics.startswith("epoch,loss,step") and len(metrics.splitlines()) == 9  # CSVLogger
    second = _lightning(tmp_path, root, "4", "gdrive://" + ckpts[0])
    assert second["global_step"] == 16  # continued at epoch 2, step 8: not trained from scratch
    assert second["epoch"] == 4
    # the resumed ModelCheckpoint kept its one best file, removing the older ones with fs.rm
    last = "MyDrive/runs/x/lightning_logs/version_1/checkpoints/epoch=3-step=16.ckpt"
    assert fs.glob("MyDrive/runs/x/**/*.ckpt", refresh=True) == [last]
    import torch

    with fs.open(last, "rb") as f:
        state = torch.load(f, map_location="cpu", weights_only=False)
    assert state["global_step"] == 16 and state["epoch"] == 3
    assert state["state_dict"]["layer.bias"].item() == pytest.approx(second["bias"])


def _png(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (seed * 40 % 256, 10, 200)).save(buf, format="PNG")
    return buf.getvalue()


def test_ray_data_reads_an_image_folder_through_pyarrow(drive):
    ray = pytest.importorskip("ray")
    pytest.importorskip("PIL")
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    for cls in ("cats", "dogs"):
        for i in range(3):
            drive.put(f"MyDrive/datasets/pets/{cls}/{i}.png", _png(i))
    # explicit options: the workers get the filesystem pickled and sign in from it
    fs = GDriveFileSystem(service_account=str(drive.key_file), endpoint=drive.url)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
             configure_logging=False, ignore_reinit_error=True)
    try:
        ds = ray.data.read_images("MyDrive/datasets/pets", filesystem=PyFileSystem(FSSpecHandler(fs)),
                                  include_paths=True)
        rows = ds.take_all()
    finally:
        ray.shutdown()
    assert sorted(r["path"] for r in rows) == [
        f"MyDrive/datasets/pets/{cls}/{i}.png" for cls in ("cats", "dogs") for i in range(3)]
    assert all(r["image"].shape == (6, 8, 3) for r in rows)


def test_webdataset_reads_our_shards_by_gdrive_url(drive):
    wds = pytest.importorskip("webdataset")
    pytest.importorskip("PIL")
    import fsspec

    import colabmodels as cm

    for cls in ("a", "b"):
        for i in range(4):
            drive.put(f"MyDrive/ds/{cls}/{i}.png", _png(i))
    ref = cm.pack("MyDrive/ds", shard_bytes=1_000, progress=False)
    fs = GDriveFileSystem(skip_instance_cache=True)
    shards = sorted(fs.glob(f"{ref.path}/*.tar"))
    assert len(shards) > 1
    # webdataset opens URLs through its gopen table; one line teaches it any fsspec protocol
    wds.gopen_schemes["gdrive"] = lambda url, mode="rb", bufsize=8192, **kw: fsspec.open(url, mode).open()
    try:
        urls = [f"gdrive://{s}" for s in shards]
        samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb").to_tuple("png", "cls"))
    finally:
        del wds.gopen_schemes["gdrive"]
    assert len(samples) == 8
    assert sorted(int(label) for _, label in samples) == [0] * 4 + [1] * 4
    assert all(image.shape == (6, 8, 3) for image, _ in samples)
