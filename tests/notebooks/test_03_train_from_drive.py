"""03_train_from_drive executed top to bottom against the demo servers (the generated shapes
dataset: 3 classes x 20 JPEGs of 64x64), in a Jupyter (ipywidgets 8) and a Colab-pinned
(ipywidgets 7.7.1) kernel: the dataset panel previews and creates the dataset, Keras trains
two epochs with preprocessing-layer augmentation, the torch variant trains with a DataLoader."""

from __future__ import annotations

import pytest
from notebook_envs import assert_ran

pytest.importorskip("torch")
pytest.importorskip("keras")
pytest.importorskip("nbclient")
pytestmark = pytest.mark.timeout(1200)


def test_train_from_drive_notebook(run_notebook, kernel):
    done = run_notebook("03", kernel)
    assert_ran(done)
    text = done.text
    assert "the bundled emulator with demo content" in text
    assert "MyDrive/datasets/shapes: 60 images in 3 classes, 64x64 px (all 60)" in text
    assert "classes: {'circles': 20, 'squares': 20, 'triangles': 20}" in text
    assert "warnings: none" in text
    assert "thumbnails shown: 18" in text
    assert "created: train and val" in text
    assert "with 48 files; val: 12 files; classes ['circles', 'squares', 'triangles']" in text
    assert ("train, val = cm.image_dataset_from_drive('MyDrive/datasets/shapes', image_size=(64, 64), "
            "batch_size=16, validation_split=0.2, subset='both', seed=1337)") in text
    assert "same split as the panel's: True" in text
    assert "epochs trained: 2" in text
    assert "torch classes: ['circles', 'squares', 'triangles'] samples: 60" in text
    assert "batch: (16, 3, 64, 64) torch.float32" in text
    assert "torch epoch 2: loss" in text
    assert ("zip: MyDrive/datasets/shapes.zip/shapes | classes ['circles', 'squares', 'triangles'] "
            "| same split as the folder's: True") in text
    assert "zip batch: (16, 64, 64, 3)" in text

    # Drive: the preview read thumbnails only; every image was downloaded once, for all of
    # Keras' two epochs and the torch dataset (then the cache served it)
    log = done.drive_requests()
    thumbs = [i for i, r in enumerate(log) if r["path"].startswith("/thumbnail/")]
    media = [i for i, r in enumerate(log) if r["alt"] == "media"]
    from collections import Counter

    per_file = Counter(log[i]["path"] for i in media)
    zipped = [path for path, n in per_file.items() if n > 1]  # the zip: a few ranged requests
    assert len(zipped) == 1 and 2 <= per_file[zipped[0]] <= 4, per_file.most_common(3)
    media = [i for i in media if log[i]["path"] not in zipped]
    assert len(thumbs) == 18 and all(log[i]["status"] == 200 for i in thumbs)
    assert len(media) == 60 and len({log[i]["path"] for i in media}) == 60
    assert max(thumbs) < min(media)  # nothing was downloaded before Create was pressed

    # the panel was drawn with core widgets of the kernel's ipywidgets generation
    state = done.widget_state()
    bars = [m for m in state.values() if m["model_name"] == "HTMLModel"
            and "cm-bar" in m["state"].get("value", "")]
    assert bars, "no bar chart in the saved widget state"
    images = [m for m in state.values() if m["model_name"] == "ImageModel"]
    assert len(images) >= 18
    expected = "1.5.0" if kernel.widgets_major == 7 else "2.0.0"
    assert {m["model_module_version"] for m in images} == {expected}
