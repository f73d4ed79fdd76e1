"""image_dataset_from_drive gives what keras.utils.image_dataset_from_directory gives on a local copy.

One awkward dataset is written both to a local folder and to the Drive emulator: nested class
folders, mixed-case extensions, grayscale/RGBA/palette images, BMP and GIF, non-images,
``.ipynb_checkpoints`` at the top and inside a class, hidden files, a stray top-level image and
folder names whose string order differs from their component order (``a b`` vs ``a/``).
For many argument combinations the (path, label) pairs, their order, the class names and every
pixel must be equal.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _image(rng: np.random.RandomState, mode: str, size: tuple[int, int], fmt: str) -> bytes:
    from PIL import Image

    channels = {"L": 1, "RGB": 3, "RGBA": 4, "P": 1}[mode]
    arr = rng.randint(0, 255, (size[1], size[0], channels), dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr, "L" if mode in ("L", "P") else mode)
    if mode == "P":
        img = img.convert("P")
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def awkward_dataset() -> dict[str, bytes]:
    """rel path -> bytes.

    'birds' holds PNGs only and 'dogs' JPEGs only, so color modes that Keras itself refuses
    for some formats (rgba for JPEG, grayscale for GIF) can be tested on those classes.
    """
    rng = np.random.RandomState(42)
    files: dict[str, bytes] = {}
    for i in range(6):
        files[f"cats/{i}.jpg"] = _image(rng, "RGB", (40 + 3 * i, 30), "JPEG")
        files[f"dogs/{i}.JPG"] = _image(rng, "RGB", (31, 45 + i), "JPEG")
        files[f"birds/b{i}.png"] = _image(rng, "RGBA" if i % 2 else "RGB", (20 + i, 26), "PNG")
    files["cats/gray.Jpeg"] = _image(rng, "L", (33, 21), "JPEG")
    files["cats/sub/deeper/n.PNG"] = _image(rng, "RGBA", (18, 18), "PNG")
    files["cats/sub/p.gif"] = _image(rng, "P", (16, 12), "GIF")
    files["cats/.ipynb_checkpoints/0-checkpoint.jpg"] = _image(rng, "RGB", (12, 12), "JPEG")
    files["cats/.hidden.jpg"] = _image(rng, "RGB", (14, 10), "JPEG")
    files["cats/notes.txt"] = b"not an image"
    files["cats/photo.jpg.txt"] = b"not an image either"
    files["dogs/a b/1.jpg"] = _image(rng, "RGB", (20, 20), "JPEG")
    files["dogs/a/x/1.jpg"] = _image(rng, "RGB", (21, 20), "JPEG")
    files["dogs/a-b/1.jpg"] = _image(rng, "RGB", (22, 20), "JPEG")
    files["cats/sub/b.bmp"] = _image(rng, "RGB", (22, 20), "BMP")
    files["dogs/data.json"] = b"{}"
    files["birds/gray.png"] = _image(rng, "L", (19, 23), "PNG")
    files[".ipynb_checkpoints/x-checkpoint.jpg"] = _image(rng, "RGB", (10, 10), "JPEG")
    files["stray.jpg"] = _image(rng, "RGB", (11, 11), "JPEG")
    files["README.md"] = b"# flowers"
    return files


@pytest.fixture
def twin(drive_env, tmp_path):
    """The awkward dataset as a local folder and as MyDrive/ds in the emulator."""
    local = tmp_path / "local-ds"
    for rel, data in awkward_dataset().items():
        path = local / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        drive_env.put(f"MyDrive/ds/{rel}", data)
    return local, drive_env


def _is_media(r) -> bool:
    return (r.query or {}).get("alt") == "media"


def _rel_local(local: Path, paths: list[str]) -> list[str]:
    return [str(Path(p).relative_to(local)).replace("\\", "/") for p in paths]


def _rel_drive(paths: list[str]) -> list[str]:
    assert all(p.startswith("MyDrive/ds/") for p in paths), paths[:3]
    return [p[len("MyDrive/ds/"):] for p in paths]


def _assert_same(expected, got) -> int:
    """Same batches, element by element; returns the number of batches compared."""
    n = 0
    for a, b in zip(expected, got, strict=True):
        a, b = (a, b) if isinstance(a, tuple) else ((a,), (b,))
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x.numpy(), y.numpy())
        n += 1
    return n


def _compare(local: Path, kwargs: dict) -> tuple:
    from colabmodels import image_dataset_from_drive

    def fresh() -> dict:  # Keras shuffles a labels list in place: each call gets its own
        return {k: list(v) if isinstance(v, list) else v for k, v in kwargs.items()}

    expected = keras.utils.image_dataset_from_directory(str(local), verbose=False, **fresh())
    got = image_dataset_from_drive("MyDrive/ds", verbose=False, **fresh())
    pairs = (expected, got) if isinstance(expected, list) else ([expected], [got])
    for e, g in zip(*pairs, strict=True):
        assert _rel_drive(g.file_paths) == _rel_local(local, e.file_paths)
        assert g.class_names == e.class_names
        assert _assert_same(e, g) > 0
    return expected, got


CASES = [
    dict(seed=1, image_size=(24, 24), batch_size=4),
    dict(seed=7, validation_split=0.25, subset="training", image_size=(16, 20)),
    dict(seed=7, validation_split=0.25, subset="validation", image_size=(16, 20)),
    dict(seed=7, validation_split=0.3, subset="both", image_size=(16, 16), batch_size=5),
    dict(shuffle=False, labels=None, image_size=(12, 12), batch_size=3),
    dict(seed=3, label_mode="categorical", color_mode="grayscale", crop_to_aspect_ratio=True,
         image_size=(20, 10), class_names=["dogs", "birds"]),
    dict(seed=4, label_mode="binary", class_names=["dogs", "cats"], pad_to_aspect_ratio=True,
         image_size=(18, 18), interpolation="nearest"),
    dict(seed=5, class_names=["birds"], color_mode="rgba", batch_size=None, image_size=14,
         interpolation="bicubic", data_format="channels_first"),
    dict(shuffle=False, label_mode=None, image_size=(8, 8), interpolation="area"),
    dict(shuffle=True, seed=11, label_mode="int", follow_links=True, image_size=(9, 9),
         interpolation="lanczos3"),
]


@pytest.mark.parametrize("kwargs", CASES, ids=[str(i) for i in range(len(CASES))])
def test_same_pairs_and_pixels_as_keras(twin, kwargs):
    local, _ = twin
    _compare(local, dict(kwargs))


def test_selection_follows_keras_rules(twin):
    """The awkward cases land where Keras puts them (spelled out, so a shared bug shows)."""
    local, _ = twin
    _, got = _compare(local, dict(shuffle=False, image_size=(8, 8)))
    rel = _rel_drive(got.file_paths)
    assert got.class_names == ["birds", "cats", "dogs"]  # no .ipynb_checkpoints class
    assert "cats/.ipynb_checkpoints/0-checkpoint.jpg" in rel  # walked inside a class, as Keras
    assert "cats/.hidden.jpg" in rel and "cats/gray.Jpeg" in rel and "cats/sub/deeper/n.PNG" in rel
    assert not any(r.endswith((".txt", ".json", ".md")) for r in rel)
    assert "stray.jpg" not in rel
    dogs = [r for r in rel if r.startswith("dogs/")]
    # folders go in the order of their path strings: " " < "-" < "/"
    assert dogs.index("dogs/a b/1.jpg") < dogs.index("dogs/a-b/1.jpg") < dogs.index("dogs/a/x/1.jpg")
    _, no_labels = _compare(local, dict(shuffle=False, labels=None, image_size=(8, 8)))
    assert "stray.jpg" in _rel_drive(no_labels.file_paths)
    assert ".ipynb_checkpoints/x-checkpoint.jpg" in _rel_drive(no_labels.file_paths)


def test_explicit_labels_list(twin):
    local, _ = twin
    n = len(keras.utils.image_dataset_from_directory(str(local), labels=None, shuffle=False,
                                                     verbose=False).file_paths)
    labels = [i % 3 for i in range(n)]
    _compare(local, dict(labels=labels, shuffle=True, seed=2, image_size=(8, 8)))


BAD = [
    dict(labels="folders"),
    dict(labels=[0, 1], class_names=["a"]),
    dict(label_mode="sparse"),
    dict(color_mode="cmyk"),
    dict(image_size=(1, 2, 3)),
    dict(interpolation="cubic"),
    dict(validation_split=1.5, subset="training", seed=1),
    dict(subset="training"),
    dict(validation_split=0.2, subset="testing", seed=1),
    dict(validation_split=0.2, subset="training"),
    dict(label_mode="binary"),
    dict(class_names=["cats", "lions"]),
    dict(labels=[0, 1, 2]),
    dict(labels=None, class_names=None, label_mode="int", format="jax"),
]


@pytest.mark.parametrize("kwargs", BAD, ids=[str(i) for i in range(len(BAD))])
def test_same_errors_for_bad_arguments(twin, kwargs):
    from colabmodels import image_dataset_from_drive

    local, _ = twin
    with pytest.raises(ValueError) as expected:
        keras.utils.image_dataset_from_directory(str(local), verbose=False, **kwargs)
    with pytest.raises(ValueError) as got:
        image_dataset_from_drive("MyDrive/ds", verbose=False, **kwargs)
    assert str(got.value).replace("MyDrive/ds", str(local)) == str(expected.value)


def test_pad_and_crop_together_is_refused(twin):
    from colabmodels import image_dataset_from_drive

    local, _ = twin
    kwargs = dict(crop_to_aspect_ratio=True, pad_to_aspect_ratio=True, seed=1)
    with pytest.raises(ValueError) as expected:
        keras.utils.image_dataset_from_directory(str(local), verbose=False, **kwargs)
    with pytest.raises(ValueError) as got:
        image_dataset_from_drive("MyDrive/ds", verbose=False, **kwargs)
    assert str(got.value) == str(expected.value)


def test_second_epoch_and_second_call_download_nothing(twin):
    from colabmodels import image_dataset_from_drive

    _, fd = twin
    ds = image_dataset_from_drive("MyDrive/ds", seed=1, image_size=(8, 8), verbose=False)
    first = sum(int(x.shape[0]) for x, _ in ds)
    media = [r for r in fd.requests if _is_media(r)]
    assert len(media) == len(ds.file_paths) == first
    fd.reset_requests()
    assert sum(int(x.shape[0]) for x, _ in ds) == first  # second epoch
    assert fd.requests == []
    again = image_dataset_from_drive("MyDrive/ds", seed=1, image_size=(8, 8), verbose=False)
    assert sum(int(x.shape[0]) for x, _ in again) == first
    assert not [r for r in fd.requests if _is_media(r)]
    # the remembered listing is checked, not walked again: stat + one change query
    lists = [r for r in fd.requests if r.path.endswith("/files") and r.method == "GET"]
    assert len(lists) <= 2, [r.query for r in lists]


def test_keras_model_trained_on_drive_matches_local(twin):
    """Same seed, same data order and pixels: the same weights after two epochs."""
    from colabmodels import image_dataset_from_drive

    local, _ = twin
    kwargs = dict(seed=3, image_size=(8, 8), batch_size=4, validation_split=0.2, subset="both",
                  verbose=False)

    def train(make):
        keras.utils.set_random_seed(0)  # before the datasets: tf.data seeds depend on it
        train_ds, val_ds = make()
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                                  keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(3)])
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(train_ds, validation_data=val_ds, epochs=2, verbose=0)
        return model.get_weights(), history.history

    w_local, h_local = train(lambda: keras.utils.image_dataset_from_directory(str(local), **kwargs))
    w_drive, h_drive = train(lambda: image_dataset_from_drive("MyDrive/ds", **kwargs))
    assert len(w_local) == len(w_drive)
    for a, b in zip(w_local, w_drive, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_local["loss"], h_drive["loss"], rtol=1e-5)
    other, _ = train(lambda: keras.utils.image_dataset_from_directory(str(local),
                                                                      **{**kwargs, "seed": 4}))
    assert not np.allclose(w_drive[0], other[0])  # another split trains differently


def test_renamed_file_in_drive_is_still_read_from_the_cache(twin):
    """An id+md5 cache entry keeps the old name; a rename in Drive must not break the reader."""
    import colabmodels as cm
    from colabmodels import image_dataset_from_drive

    _, fd = twin
    kwargs = dict(shuffle=False, image_size=(8, 8), verbose=False, class_names=["dogs"])
    before = image_dataset_from_drive("MyDrive/ds", **kwargs)
    first = np.concatenate([x.numpy() for x, _ in before])
    fid = fd.resolve("MyDrive/ds/dogs/0.JPG")
    cm.mount().execute(lambda s: s.files().patch(fileId=fid, body={"title": "00-renamed.jpg"}),
                       what="rename")
    fd.reset_requests()
    after = image_dataset_from_drive("MyDrive/ds", **kwargs)
    assert "MyDrive/ds/dogs/00-renamed.jpg" in after.file_paths
    second = np.concatenate([x.numpy() for x, _ in after])
    assert not [r for r in fd.requests if _is_media(r)]  # same bytes: nothing downloaded
    np.testing.assert_array_equal(np.sort(first.ravel()), np.sort(second.ravel()))
