"""Issue 28, the datasets side: what a new user meets in the first hour.

Create builds what the panel promised (broken files skipped, hidden folders left out), the
image check catches a truncated JPEG that still holds an end marker, a skipped file is
reported once by its Drive path, ``on_error="skip"`` keeps the dataset's length known (no
"ran out of data" in ``fit``), a class folder given instead of its parent is named, the torch
progress bar counts files, ``help()`` says where files go, and TensorFlow's C++ start-up lines
stay out of the output.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytestmark = pytest.mark.timeout(600)

ROOT = "MyDrive/datasets/first-hour"


def _jpeg(seed: int, size: tuple[int, int] = (40, 40), comment: bytes | None = None) -> bytes:
    from PIL import Image

    arr = np.random.RandomState(seed).randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    extra = {"comment": comment} if comment is not None else {}
    Image.fromarray(arr).save(buf, "JPEG", quality=90, **extra)
    return buf.getvalue()


def truncated_jpeg_with_an_end_marker_inside() -> bytes:
    """A JPEG cut short whose last 4 KiB still hold FF D9 (in a comment, as an EXIF thumbnail
    or an ICC profile can): TensorFlow cannot decode it."""
    data = _jpeg(99, comment=b"made by \xff\xd9 camera")
    return data[: int(len(data) * 0.6)]


@pytest.fixture
def flowers(drive_env):
    fd = drive_env
    for i in range(6):
        fd.put(f"{ROOT}/lily/{i}.jpg", _jpeg(i))
        fd.put(f"{ROOT}/rose/{i}.jpg", _jpeg(100 + i))
    fd.put(f"{ROOT}/lily/.ipynb_checkpoints/old/0-checkpoint.jpg", _jpeg(0))
    fd.put(f"{ROOT}/rose/garbage.jpg", b"this is not a jpeg")
    fd.put(f"{ROOT}/rose/cut.jpg", truncated_jpeg_with_an_end_marker_inside())
    fd.reset_requests()
    return fd


def test_the_image_check_catches_a_truncated_jpeg_that_holds_an_end_marker(tmp_path):
    from colabmodels.datasets.feeder import image_problem

    path = tmp_path / "cut.jpg"
    path.write_bytes(truncated_jpeg_with_an_end_marker_inside())
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_jpeg(tf.io.read_file(str(path)))
    problem = image_problem(str(path))
    assert problem is not None and "truncated" in problem
    assert str(tmp_path) not in problem
    good = tmp_path / "good.jpg"
    good.write_bytes(_jpeg(1) + b"\x00" * 10)  # padding after the end marker is fine
    assert image_problem(str(good)) is None


def test_skip_checks_up_front_keeps_the_length_known_and_reports_each_file_once(flowers, caplog):
    from colabmodels import image_dataset_from_drive
    from colabmodels.cachestore import cache

    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = image_dataset_from_drive(ROOT, image_size=(16, 16), batch_size=4, seed=1,
                                      on_error="skip", verbose=False)
    bad = {f"{ROOT}/rose/garbage.jpg", f"{ROOT}/rose/cut.jpg"}
    assert set(ds.skipped) == bad and len(ds.skipped) == 2
    assert int(ds.cardinality()) == 4  # 13 good files in batches of 4: known, not UNKNOWN (-2)
    assert len(ds.file_paths) == 13 and not bad & set(ds.file_paths)
    # each skipped file: one log line naming its Drive path, no UserWarning, no cache path
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    for path in bad:
        assert sum(path in line for line in lines) == 1, lines
    assert not any(str(cache.root) in line for line in lines), lines
    assert not [w for w in caught if "skipped" in str(w.message)]
    # fit runs both epochs to the end without Keras' "ran out of data"
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert not [w for w in caught if "ran out of data" in str(w.message)]


def test_include_hidden_false_leaves_out_folders_hidden_inside_classes(flowers):
    from colabmodels import image_dataset_from_drive

    kept = image_dataset_from_drive(ROOT, image_size=(16, 16), seed=3, on_error="skip",
                                    verbose=False)
    assert f"{ROOT}/lily/.ipynb_checkpoints/old/0-checkpoint.jpg" in kept.file_paths  # as Keras
    left = image_dataset_from_drive(ROOT, image_size=(16, 16), seed=3, on_error="skip",
                                    include_hidden=False, verbose=False)
    assert sorted(left.file_paths) == sorted(p for p in kept.file_paths if "/." not in p)
    assert len(left.file_paths) == 12


def test_panel_create_skips_what_the_panel_found_broken(flowers, caplog, capsys):
    import colabmodels as cm

    ns: dict = {}
    panel = cm.DatasetPanel(ROOT, namespace=ns)
    assert panel.wait(120)
    assert f"{ROOT}/rose/garbage.jpg" in panel.summary.broken
    panel.batch_size.value = 4
    caplog.set_level(logging.WARNING)
    capsys.readouterr()
    panel.create_button.click()
    # the result line lists what was left out; nothing else is printed or logged as a warning
    # (a red stderr box in the widget before)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    printed = capsys.readouterr()
    assert "Using" not in printed.out and "skipped" not in printed.err, printed
    assert panel.guard.last_trouble is None, panel.guard.text
    train, val = ns["train"], ns["val"]
    n = sum(int(x.shape[0]) for ds in (train, val) for x, _ in ds)  # no error mid-epoch
    assert n == len(train.file_paths) + len(val.file_paths) == 12  # hidden left out too
    code = panel.code.value.replace("&#x27;", "'")
    assert "on_error='skip' leaves out the 1 broken file the panel found (garbage.jpg)" in code
    assert "include_hidden=False" in code
    assert "2 broken files left out" in panel.result.value


def test_a_class_folder_instead_of_its_parent_is_named(flowers):
    from colabmodels import image_dataset_from_drive

    with pytest.raises(ValueError, match=r"No images found in directory .*lily\. Allowed .*\. This looks like "
                       r"one class: 6 images lie directly in .*lily, with no class folders; did "
                       rf"you mean the parent folder {ROOT}\?"):
        image_dataset_from_drive(f"{ROOT}/lily", image_size=(16, 16), verbose=False)


def test_a_typo_names_the_nearest_folders(flowers):
    from colabmodels import image_dataset_from_drive
    from colabmodels.errors import NotFoundError

    with pytest.raises(NotFoundError, match=r"MyDrive/datasets/first-hourz does not exist: there "
                       r"is no 'first-hourz' in MyDrive/datasets\. Nearest names in "
                       r"MyDrive/datasets: first-hour"):
        image_dataset_from_drive("MyDrive/datasets/first-hourz", image_size=(16, 16),
                                 verbose=False)


def test_torch_progress_bar_counts_files(flowers, capsys):
    pytest.importorskip("torch")
    from colabmodels import DriveImageFolder, fetch

    fetch(f"{ROOT}/lily/0.jpg", progress=False)  # one already cached: it counts at once
    DriveImageFolder(ROOT, on_error="skip", progress=True)
    err = capsys.readouterr().err
    assert "1/15" in err and "file/s" in err, err[-2000:]  # files counted, the cached one at once
    assert "B/s" not in err and "iB" not in err


def test_help_says_where_files_go_how_much_disk_and_what_an_interrupt_does():
    import colabmodels as cm

    text = cm.image_dataset_from_drive.__doc__ or ""
    assert "COLABMODELS_CACHE_DIR" in text and "~/.cache/colabmodels" in text
    assert "as much disk as its files take in Drive" in text
    assert "Interrupting" in text and "stops the downloads" in text


@pytest.mark.parametrize("quiet", [True, False])
def test_tensorflow_start_up_lines_stay_out_of_the_output(quiet):
    """The same import in a fresh process, with and without quiet_import: only the quiet one
    keeps absl's and oneDNN's lines out (the other shows the test can fail)."""
    code = ("from colabmodels.datasets.quiet_import import quiet_import\nquiet_import('keras')\n"
            if quiet else "import keras\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    noisy = "absl::InitializeLog" in proc.stderr or "oneDNN" in proc.stderr
    assert noisy is not quiet, proc.stderr[-2000:]
