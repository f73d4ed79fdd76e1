"""The dataset panel's buttons for real (TensorFlow/Keras installed): Create puts the datasets
into the notebook's variables with the fields' options, Pack writes shards with the progress
bar; both downloads happen only on these clicks, never while previewing."""

from __future__ import annotations

import io

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("PIL")
pytestmark = pytest.mark.timeout(600)

ROOT = "MyDrive/datasets/colours"


def _jpeg(rgb, size=(24, 20)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture
def colours(drive_env):
    fd = drive_env
    for c, rgb in enumerate([(220, 30, 30), (30, 220, 30), (30, 30, 220)]):
        for i in range(10):
            fd.put(f"{ROOT}/{['red', 'green', 'blue'][c]}/{i:02d}.jpg", _jpeg((rgb[0], rgb[1] + i, rgb[2])))
    fd.reset_requests()
    return fd


def _media(requests) -> list:
    return [r for r in requests if (r.query or {}).get("alt") == "media"]


def test_create_button_puts_train_and_val_into_the_namespace(colours):
    import numpy as np

    import colabmodels as cm

    ns: dict = {}
    panel = cm.DatasetPanel(ROOT, namespace=ns)
    assert panel.wait(120)
    assert not _media(colours.requests)  # previewing downloaded nothing
    assert (panel.height.value, panel.width.value) == (20, 24)  # (height, width) of the images
    panel.batch_size.value = 8
    panel.seed.value = 3
    panel.create_button.click()
    assert panel.guard.last_trouble is None, panel.guard.text
    train, val = ns["train"], ns["val"]
    assert train.class_names == ["blue", "green", "red"]
    assert len(train.file_paths) == 24 and len(val.file_paths) == 6
    assert not set(train.file_paths) & set(val.file_paths)
    images, labels = next(iter(train))
    assert tuple(images.shape) == (8, 20, 24, 3) and labels.dtype.name == "int32"
    # the same split as the line the panel shows
    assert "train, val = cm.image_dataset_from_drive('MyDrive/datasets/colours', " \
           "image_size=(20, 24), batch_size=8, validation_split=0.2, subset='both', seed=3)" \
           in panel.code.value.replace("&#x27;", "'")
    same_train, _ = cm.image_dataset_from_drive(ROOT, image_size=(20, 24), batch_size=8,
                                                validation_split=0.2, subset="both", seed=3)
    assert same_train.file_paths == train.file_paths
    assert "Created `train` (24 files) and `val` (6 files), 3 classes" in panel.result.value
    assert np.asarray(images).max() > 100  # real pixels were read


def test_create_one_subset_into_one_variable(colours):
    import colabmodels as cm

    ns: dict = {}
    panel = cm.DatasetPanel(ROOT, namespace=ns, subset="validation")
    assert panel.wait(120)
    assert panel.variable.value == "val"
    panel.validation_split.value = 0.5
    panel.create_button.click()
    assert panel.guard.last_trouble is None, panel.guard.text
    assert list(ns) == ["val"] and len(ns["val"].file_paths) == 15


def test_pack_button_writes_shards_with_a_progress_bar(colours):
    import colabmodels as cm

    panel = cm.DatasetPanel(ROOT, namespace={})
    assert panel.wait(120)
    panel.pack_dest.value = "MyDrive/datasets/colours-packed"
    panel.pack_button.click()
    assert panel.guard.last_trouble is None, panel.guard.text
    assert panel.last_packed is not None
    assert colours.exists("MyDrive/datasets/colours-packed/colabmodels-dataset.json")
    assert panel.progress.bar.bar_style == "success" and panel.progress.done > 0
    assert "Packed into MyDrive/datasets/colours-packed" in panel.result.value
    train, val = cm.image_dataset_from_drive("MyDrive/datasets/colours-packed", image_size=(20, 24),
                                             validation_split=0.2, subset="both", seed=1337)
    assert len(train.file_paths) + len(val.file_paths) == 30
