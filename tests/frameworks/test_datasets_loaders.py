"""DriveImageSequence (keras PyDataset), DriveImageFolder (torch Dataset) and broken images."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_datasets_keras import _image, awkward_dataset  # the same awkward dataset

keras = pytest.importorskip("keras")


@pytest.fixture
def twin(drive_env, tmp_path):
    local = tmp_path / "local-ds"
    for rel, data in awkward_dataset().items():
        path = local / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        drive_env.put(f"MyDrive/ds/{rel}", data)
    return local, drive_env


def _rel(paths: list[str], prefix: str) -> list[str]:
    return [str(p)[len(prefix):].lstrip("/") for p in paths]


# -- DriveImageSequence ---------------------------------------------------------------------

def test_sequence_selects_and_splits_like_keras(twin):
    from colabmodels import DriveImageSequence

    local, _ = twin
    for subset in ("training", "validation"):
        kwargs = dict(seed=5, validation_split=0.25, subset=subset, image_size=(10, 12))
        expected = keras.utils.image_dataset_from_directory(str(local), verbose=False, **kwargs)
        seq = DriveImageSequence("MyDrive/ds", batch_size=4, **kwargs)
        assert _rel(seq.file_paths, "MyDrive/ds") == _rel(expected.file_paths, str(local))
        assert seq.class_names == expected.class_names
        rel = _rel(expected.file_paths, str(local))
        labels = [expected.class_names.index(r.split("/")[0]) for r in rel]
        assert list(seq.labels) == labels
        assert len(seq) == -(-len(seq.file_paths) // 4)
        x, y = seq[0]
        assert x.shape == (4, 10, 12, 3) and x.dtype == np.float32
        assert list(y) == list(labels[:4])
    with pytest.raises(ValueError, match="one subset at a time"):
        DriveImageSequence("MyDrive/ds", seed=1, validation_split=0.2, subset="both")


def test_sequence_pixels_match_keras_for_lossless_images(twin):
    """PNGs decode identically in PIL and TensorFlow, and the resize is Keras' own."""
    from colabmodels import DriveImageSequence

    local, _ = twin
    kwargs = dict(shuffle=False, class_names=["birds"], image_size=(9, 7), color_mode="rgba",
                  crop_to_aspect_ratio=True)
    expected = keras.utils.image_dataset_from_directory(str(local), batch_size=3, verbose=False,
                                                        **kwargs)
    seq = DriveImageSequence("MyDrive/ds", batch_size=3, **kwargs)
    for i, (x, y) in enumerate(expected):
        got_x, got_y = seq[i]
        np.testing.assert_allclose(got_x, x.numpy(), atol=1e-3)
        np.testing.assert_array_equal(got_y, y.numpy())


def test_sequence_trains_a_model(twin):
    from colabmodels import DriveImageSequence

    seq = DriveImageSequence("MyDrive/ds", seed=1, image_size=(8, 8), batch_size=8,
                             label_mode="categorical")
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    history = model.fit(seq, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


# -- DriveImageFolder -----------------------------------------------------------------------

def _small_tensor(img):
    from colabmodels.datasets.torch_folder import to_tensor

    return to_tensor(img.resize((6, 6)))


def test_torch_folder_shape_and_contents(twin):
    from PIL import Image

    from colabmodels import DriveImageFolder

    torch = pytest.importorskip("torch")
    local, fd = twin
    ds = DriveImageFolder("MyDrive/ds", transform=_small_tensor, progress=False)
    assert ds.classes == ["birds", "cats", "dogs"]
    assert ds.class_to_idx == {"birds": 0, "cats": 1, "dogs": 2}
    expected = keras.utils.image_dataset_from_directory(str(local), shuffle=False, verbose=False)
    assert [p for p, _ in ds.samples] == ["MyDrive/ds/" + r for r in _rel(expected.file_paths, str(local))]
    assert ds.targets == [int(y) for y in np.concatenate([y for _, y in expected])]
    for i in (0, len(ds) - 1):
        img, target = ds[i]
        rel = ds.samples[i][0][len("MyDrive/ds/"):]
        want = _small_tensor(Image.open(local / rel).convert("RGB"))
        assert torch.equal(img, want) and target == ds.targets[i]
    fd.reset_requests()
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, shuffle=True)
    seen = sum(int(x.shape[0]) for x, _ in loader)
    assert seen == len(ds)
    assert fd.requests == []  # workers read the cache only


def test_torch_folder_lazy_workers_fetch_on_their_own(twin):
    from colabmodels import DriveImageFolder
    from colabmodels.datasets.torch_folder import to_tensor

    torch = pytest.importorskip("torch")
    _, fd = twin
    ds = DriveImageFolder("MyDrive/ds", transform=to_tensor, download="lazy")
    fd.reset_requests()
    ctx = torch.multiprocessing.get_context("fork")
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2,
                                         multiprocessing_context=ctx)
    shapes = [tuple(x.shape) for x, _ in loader]
    assert len(shapes) == len(ds) and all(s[0] == 3 for s in shapes)
    media = [r for r in fd.requests if (r.query or {}).get("alt") == "media"]
    assert len(media) == len(ds)
    assert len({r.connection for r in media}) >= 2  # each worker opened its own connections


def test_torch_folder_pickles_for_spawn(twin):
    import pickle

    from colabmodels import DriveImageFolder
    from colabmodels.datasets.torch_folder import to_tensor

    torch = pytest.importorskip("torch")
    ds = DriveImageFolder("MyDrive/ds", transform=to_tensor, progress=False)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.samples == ds.samples and torch.equal(clone[3][0], ds[3][0])
    lazy = pickle.loads(pickle.dumps(DriveImageFolder("MyDrive/ds", download="lazy")))
    assert lazy.classes == ds.classes
    ctx = torch.multiprocessing.get_context("spawn")
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=1,
                                         multiprocessing_context=ctx)
    assert sum(1 for _ in loader) == len(ds)


# -- broken images --------------------------------------------------------------------------

@pytest.fixture
def broken(drive_env):
    rng = np.random.RandomState(0)
    good = _image(rng, "RGB", (16, 16), "JPEG")
    png = _image(rng, "RGB", (16, 16), "PNG")
    fd = drive_env
    for i in range(5):
        fd.put(f"MyDrive/broken/cats/{i}.jpg", good)
        fd.put(f"MyDrive/broken/dogs/{i}.png", png)
    fd.put("MyDrive/broken/cats/garbage.jpg", b"this is not a jpeg at all")
    fd.put("MyDrive/broken/dogs/cut.png", png[: len(png) // 2])
    fd.put("MyDrive/broken/dogs/cut.jpg", good[: len(good) // 2])
    return fd


def test_broken_image_error_names_the_drive_path(broken):
    from colabmodels import image_dataset_from_drive

    ds = image_dataset_from_drive("MyDrive/broken", shuffle=False, image_size=(8, 8),
                                  batch_size=2, verbose=False)
    with pytest.raises(Exception, match=r"MyDrive/broken/cats/garbage\.jpg"):
        for _ in ds:
            pass


def test_broken_images_skipped_and_reported(broken, caplog):
    from colabmodels import DriveImageFolder, DriveImageSequence, image_dataset_from_drive

    bad = {"MyDrive/broken/cats/garbage.jpg", "MyDrive/broken/dogs/cut.png",
           "MyDrive/broken/dogs/cut.jpg"}
    caplog.set_level(logging.WARNING)
    ds = image_dataset_from_drive("MyDrive/broken", seed=2, image_size=(8, 8), batch_size=4,
                                  on_error="skip", verbose=False)
    n = sum(int(x.shape[0]) for x, _ in ds)
    assert n == 10 and set(ds.skipped) == bad
    assert all(p in caplog.text for p in bad)
    assert sum(int(x.shape[0]) for x, _ in ds) == 10  # the second epoch skips them too
    again = image_dataset_from_drive("MyDrive/broken", seed=2, image_size=(8, 8), batch_size=4,
                                     on_error="skip", verbose=False)  # all cached by now
    assert sum(int(x.shape[0]) for x, _ in again) == 10 and set(again.skipped) == bad
    with pytest.raises(Exception, match=r"MyDrive/broken/"):
        for _ in image_dataset_from_drive("MyDrive/broken", seed=2, image_size=(8, 8),
                                          verbose=False):
            pass

    seq = DriveImageSequence("MyDrive/broken", shuffle=False, image_size=(8, 8), batch_size=4,
                             on_error="skip")
    assert sum(seq[i][0].shape[0] for i in range(len(seq))) == 10 and set(seq.skipped) == bad

    folder = DriveImageFolder("MyDrive/broken", on_error="skip", progress=False)
    assert len(folder) == 10 and set(folder.skipped) == bad
    assert not bad & {p for p, _ in folder.samples}
    from colabmodels.errors import IntegrityError

    with pytest.raises(IntegrityError, match="MyDrive/broken/"):
        DriveImageFolder("MyDrive/broken", progress=False)


def test_unreadable_shortcut_in_a_dataset(drive_env):
    from colabmodels import image_dataset_from_drive
    from colabmodels.errors import AuthError

    rng = np.random.RandomState(1)
    fd = drive_env
    secret = fd.put("MyDrive/private/s.jpg", _image(rng, "RGB", (8, 8), "JPEG"), owner="bob")
    for i in range(3):
        fd.put(f"MyDrive/sc/cats/{i}.jpg", _image(rng, "RGB", (8, 8), "JPEG"))
    fd.put_shortcut("MyDrive/sc/cats/bobs.jpg", secret)
    with pytest.raises(AuthError, match=r"MyDrive/sc/cats/bobs\.jpg"):
        image_dataset_from_drive("MyDrive/sc", seed=1, image_size=(8, 8), verbose=False)
    ds = image_dataset_from_drive("MyDrive/sc", seed=1, image_size=(8, 8), verbose=False,
                                  on_error="skip")
    assert len(ds.file_paths) == 3 and ds.skipped == ["MyDrive/sc/cats/bobs.jpg"]



def test_sequence_on_the_torch_backend(twin, tmp_path):
    """A PyDataset works on every Keras backend: train on the torch backend in a new process."""
    import os
    import subprocess
    import sys

    pytest.importorskip("torch")
    script = tmp_path / "fit_torch_backend.py"
    script.write_text(
        "import keras, numpy as np\n"
        "from colabmodels import DriveImageSequence\n"
        "assert keras.backend.backend() == 'torch'\n"
        "seq = DriveImageSequence('MyDrive/ds', seed=1, image_size=(8, 8), batch_size=8,\n"
        "                         validation_split=0.25, subset='training', crop_to_aspect_ratio=True)\n"
        "model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),\n"
        "                          keras.layers.Dense(3)])\n"
        "model.compile('sgd', keras.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
        "h = model.fit(seq, epochs=1, verbose=0)\n"
        "print('LOSS', h.history['loss'][0], len(seq.file_paths))\n")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("LOSS"))
    loss, n = float(line.split()[1]), int(line.split()[2])
    assert np.isfinite(loss) and n == 21
