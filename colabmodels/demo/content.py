"""The demo content: small real models and an image dataset, generated on first use and kept.

A Keras classifier (HDF5), a torch state dict, VGG-style weights saved the way a DataParallel
training script saves them, a TF SavedModel, a TF checkpoint, and ``shapes/`` (circles, squares,
triangles) for notebook 03. ``stage`` puts the Drive part on an emulator.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["QUIET_TF_ENV", "SHAPES_DATASET", "make_content", "make_shapes", "small_vgg_class",
           "stage"]

QUIET_TF_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}
"""TensorFlow without its start-up log lines, for the demo's kernels and servers: level 2 hides
TF's C++ INFO and WARNING lines (errors still show), and the oneDNN notice (written by absl
before logging is set up, so no log level hides it) is not printed when the option is set."""

def small_vgg_class() -> Any:
    """The VGG-style torch architecture of the demo weights (``features`` conv blocks, an
    ``avgpool`` and a ``classifier`` MLP, like torchvision's VGG; 32x32 RGB in, 10 classes)."""
    from torch import nn

    class SmallVGG(nn.Module):
        def __init__(self, num_classes: int = 10) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
            self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(inplace=True),
                nn.Dropout(0.5), nn.Linear(64, num_classes))

        def forward(self, x: Any) -> Any:
            return self.classifier(self.avgpool(self.features(x)))

    return SmallVGG


def _atomic_target(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


SHAPES_DATASET = "MyDrive/datasets/shapes"
"""Where the demo image dataset lives on the emulator's Drive (notebook 03)."""


def make_shapes(folder: Path, *, per_class: int = 20, size: int = 64) -> Path:
    """A small image dataset: ``circles/``, ``squares/``, ``triangles/``, ``per_class`` JPEGs
    of ``size`` x ``size`` each (a shape of random colour, place and size; seeded). Kept."""
    if (folder / "triangles" / f"triangle_{per_class - 1:02d}.jpg").exists():
        return folder
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(3)
    tmp = _atomic_target(folder)
    for kind in ("circle", "square", "triangle"):
        (tmp / f"{kind}s").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            back = tuple(rng.randrange(150, 256) for _ in range(3))
            ink = tuple(rng.randrange(0, 110) for _ in range(3))
            img = Image.new("RGB", (size, size), back)
            draw = ImageDraw.Draw(img)
            r = rng.randrange(size // 5, size // 3)
            x, y = (rng.randrange(r + 2, size - r - 2) for _ in range(2))
            if kind == "circle":
                draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
            elif kind == "square":
                draw.rectangle((x - r, y - r, x + r, y + r), fill=ink)
            else:
                draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=ink)
            img.save(tmp / f"{kind}s" / f"{kind}_{i:02d}.jpg", "JPEG", quality=90)
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def make_content(folder: Path) -> dict[str, Path]:
    """Generate the demo files in ``folder`` (kept; only missing ones are made).

    Returns:
        ``{"keras": classifier.h5, "torch": encoder.pth, "savedmodel": standardizer/,
        "checkpoint": regressor-ckpt/, "vgg": small_vgg.pth, "shapes": shapes/}`` (shapes: the
        image dataset of notebook 03, see ``make_shapes``).
    """
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    out = {"keras": folder / "classifier.h5", "torch": folder / "encoder.pth",
           "savedmodel": folder / "standardizer", "checkpoint": folder / "regressor-ckpt",
           "vgg": folder / "small_vgg.pth"}
    if not out["keras"].exists():
        import keras

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")], name="demo_classifier")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        tmp = _atomic_target(out["keras"]).with_suffix(".h5")
        model.save(tmp)
        os.replace(tmp, out["keras"])
    if not out["torch"].exists():
        import torch

        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
        tmp = _atomic_target(out["torch"])
        torch.save(net.state_dict(), tmp)
        os.replace(tmp, out["torch"])
    if not out["vgg"].exists():
        import torch

        torch.manual_seed(0)
        vgg = small_vgg_class()()
        # saved like a training script with DataParallel does: wrapped, with "module." prefixes
        checkpoint = {"epoch": 12, "state_dict": {f"module.{k}": v for k, v in vgg.state_dict().items()}}
        tmp = _atomic_target(out["vgg"])
        torch.save(checkpoint, tmp)
        os.replace(tmp, out["vgg"])
    if not out["savedmodel"].exists() or not out["checkpoint"].exists():
        import tensorflow as tf

        if not out["savedmodel"].exists():
            class Standardizer(tf.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.mean = tf.Variable([1.0, 2.0, 3.0])
                    self.std = tf.Variable([0.5, 1.0, 2.0])

                @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
                def __call__(self, x: Any) -> Any:
                    return (x - self.mean) / self.std

            tmp = _atomic_target(out["savedmodel"])
            shutil.rmtree(tmp, ignore_errors=True)
            tf.saved_model.save(Standardizer(), str(tmp))
            os.replace(tmp, out["savedmodel"])
        if not out["checkpoint"].exists():
            class LinearRegressor(tf.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.w = tf.Variable([[1.5], [-2.0], [0.25]])
                    self.b = tf.Variable([0.5])

            tmp = _atomic_target(out["checkpoint"])
            shutil.rmtree(tmp, ignore_errors=True)
            tf.train.Checkpoint(model=LinearRegressor()).save(str(tmp / "ckpt"))
            os.replace(tmp, out["checkpoint"])
    out["shapes"] = make_shapes(folder / "shapes")
    return out


def stage(fd: Any, work: Path, content_dir: Path | None = None) -> dict[str, str]:
    """Put the Drive part of the demo content on the emulator ``fd``.

    Returns:
        the environment a notebook needs for Drive, plus ``DEMO_KERAS_LINK``/``DEMO_TORCH_LINK``.
    """
    content = make_content(content_dir or work / "content")
    keras_id = fd.put("MyDrive/demo/classifier.h5", content["keras"], public=True,
                      description="demo Keras classifier (HDF5)")
    torch_id = fd.put("MyDrive/demo/encoder.pth", content["torch"], public=True,
                      description="demo torch state dict")
    for rel, path in _tree_files(content["shapes"]):  # the image dataset of notebook 03
        fd.put(f"{SHAPES_DATASET.rsplit('/', 1)[0]}/{rel}", path)
    fd.put(f"{SHAPES_DATASET}.zip", _zipped(content["shapes"]))  # the same, zipped (notebook 03)
    key = work / "service-account.json"
    fd.write_service_account(key)
    return {
        "COLABMODELS_DRIVE_ENDPOINT": fd.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "COLABMODELS_CACHE_DIR": str(work / "cache"),
        "COLABMODELS_CONFIG_DIR": str(work / "config"),
        "DEMO_KERAS_LINK": f"https://drive.google.com/file/d/{keras_id}/view?usp=sharing",
        "DEMO_TORCH_LINK": f"https://drive.google.com/open?id={torch_id}",
        **QUIET_TF_ENV,
    }


def _zipped(folder: Path) -> bytes:
    """``folder`` as a zip holding one top folder (what zipping a folder makes)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel, path in _tree_files(folder):
            zf.write(path, rel)
    return buf.getvalue()


def _tree_files(root: Path) -> Iterator[tuple[str, Path]]:
    if root.is_file():
        yield root.name, root
        return
    for p in sorted(root.rglob("*")):
        if p.is_file():
            yield f"{root.name}/{p.relative_to(root).as_posix()}", p
