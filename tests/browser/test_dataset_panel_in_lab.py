"""The dataset panel in a real JupyterLab and Chromium, on the Drive emulator: show it for a
small image dataset, see the bar chart, the warnings and the thumbnails (loaded <img> elements), press
Create dataset, then check in a cell that the datasets are in the kernel.

A screenshot of the panel goes to ``.pytest_cache/screenshots/dataset_panel.png``; with
``COLABMODELS_SCREENSHOTS=docs`` also to ``docs/img/dataset_panel.png`` (the README's picture).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from labtools import open_and_run_first_cell, run_cell, write_notebook

pytest.importorskip("tensorflow")
PIL = pytest.importorskip("PIL")
pytestmark = pytest.mark.timeout(420)
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / ".pytest_cache" / "screenshots"
SHOTS.mkdir(parents=True, exist_ok=True)
CLASSES = {"circles": 6, "squares": 4, "triangles": 4}


def _image(kind: str, i: int) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (64, 64), (230 - 8 * i, 235, 240))
    draw = ImageDraw.Draw(img)
    box = (12 + i, 12 + i, 50 - i, 50 - i)
    colour = (40 + 30 * i, 60, 160)
    if kind == "circles":
        draw.ellipse(box, fill=colour)
    elif kind == "squares":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(32, 8 + i), (8 + i, 54), (56 - i, 54)], fill=colour)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_panel_shows_chart_and_thumbnails_then_creates_the_dataset(jupyterlab, browser, tmp_path):
    from colabmodels.testing import FakeDrive

    with FakeDrive() as fd:
        for kind, n in CLASSES.items():
            for i in range(n):
                fd.put(f"MyDrive/datasets/shapes/{kind}/{kind[:-1]}_{i:02d}.jpg", _image(kind, i))
        # what the warnings are for: a copy filed under another class, a notebook checkpoint
        fd.put("MyDrive/datasets/shapes/squares/copy.jpg", _image("circles", 0))
        fd.put("MyDrive/datasets/shapes/.ipynb_checkpoints/x-checkpoint.jpg", _image("circles", 1))
        # ... a checkpoint folder inside a class (Keras trains on it), a file that is no image
        fd.put("MyDrive/datasets/shapes/circles/.ipynb_checkpoints/c-checkpoint.jpg",
               _image("circles", 2))
        fd.put("MyDrive/datasets/shapes/squares/broken.jpg", b"this is not a jpeg")
        key = tmp_path / "key.json"
        fd.write_service_account(key)
        env = {"COLABMODELS_DRIVE_ENDPOINT": fd.url, "GOOGLE_APPLICATION_CREDENTIALS": str(key),
               "COLABMODELS_CACHE_DIR": str(tmp_path / "cache"),
               "COLABMODELS_CONFIG_DIR": str(tmp_path / "config"), "TF_CPP_MIN_LOG_LEVEL": "3"}
        write_notebook(jupyterlab.root / "dataset.ipynb", [
            "import os\n"
            f"os.environ.update({json.dumps(env)})\n"
            "import colabmodels as cm\n"
            "panel = cm.DatasetPanel('MyDrive/datasets/shapes', validation_split=0.25, seed=5)\n"
            "panel",
            "print('IN_KERNEL:', type(train).__name__, len(train.file_paths), len(val.file_paths), "
            "train.class_names, tuple(next(iter(train))[0].shape), tuple(next(iter(val))[0].shape))",
        ])
        page = browser.new_page(viewport={"width": 1200, "height": 1900})
        try:
            open_and_run_first_cell(page, jupyterlab.notebook_url("dataset.ipynb"), ".cm-dataset-panel .cm-chart",
                                    failed_shot=SHOTS / "dataset_panel-failed.png")
            # the counts arrive from the kernel's background thread
            page.wait_for_function(
                """() => [...document.querySelectorAll('.cm-dataset-panel .cm-bar')]
                         .filter(b => b.dataset.count !== '').length === 3""", timeout=90_000)
            bars = page.evaluate(
                """() => [...document.querySelectorAll('.cm-dataset-panel .cm-bar')].map(b =>
                     [b.dataset.class, Number(b.dataset.count), b.getBoundingClientRect().width])""")
            # every thumbnail is an <img> the browser decoded
            want = 6 + 5 + 4
            page.wait_for_function(
                """(want) => [...document.querySelectorAll('.cm-dataset-panel img')]
                     .filter(i => i.complete && i.naturalWidth > 0).length >= want""",
                arg=want, timeout=90_000)
            sizes = page.evaluate(
                """() => [...document.querySelectorAll('.cm-dataset-panel img')]
                     .map(i => [i.naturalWidth, i.naturalHeight])""")
            status = page.locator(".cm-dataset-panel .cm-status").inner_text()
            warnings = page.locator(".cm-dataset-panel .cm-warning").all_inner_texts()
            # the offers the warnings make, ticked: skip the broken file, leave out the hidden one
            offers = [page.locator(f".cm-dataset-panel {c}").inner_text()
                      for c in (".cm-skip-broken", ".cm-leave-hidden")]
            ticked = [page.locator(f".cm-dataset-panel {c} input").is_checked()
                      for c in (".cm-skip-broken", ".cm-leave-hidden")]
            page.click(".cm-dataset-panel button:has-text('Create dataset')")
            page.wait_for_selector(".cm-dataset-panel .cm-message:has-text('Created')", timeout=180_000)
            created = page.locator(".cm-dataset-panel .cm-message-ok").inner_text()
            code = page.locator(".cm-dataset-panel .cm-code").inner_text()
            page.add_style_tag(content=".Toastify { display: none !important; }")  # Lab's news toast
            panel = page.locator(".jp-OutputArea-output:has(.cm-dataset-panel)").first
            panel.screenshot(path=str(SHOTS / "dataset_panel.png"))
            text = run_cell(page, 1, expect="IN_KERNEL:", timeout_ms=120_000,
                            failed_shot=SHOTS / "dataset_panel-failed.png")
        finally:
            page.close()
        log = list(fd.requests)
        media = [r.path for r in log if (r.query or {}).get("alt") == "media"]
        first_media = min(r.seq for r in log if (r.query or {}).get("alt") == "media")
        thumbs = [r.seq for r in log if r.path.startswith("/thumbnail/")]
    assert [b[:2] for b in bars] == [["circles", 7], ["squares", 6], ["triangles", 4]]
    widths = [b[2] for b in bars]
    assert widths[0] > widths[1] > widths[2] > 0  # drawn proportional to the counts
    assert len(sizes) == want and all(w > 0 and h > 0 for w, h in sizes)
    assert "17 images in 3 classes" in status
    assert len(warnings) == 4, warnings
    assert "1 hidden folder skipped (.ipynb_checkpoints)" in warnings[0]
    assert "1 image in hidden folders or files inside classes (circles/.ipynb_checkpoints)" in warnings[1]
    assert "1 file Drive could not read as an image: broken.jpg" in warnings[2]
    # the copied checkpoint is a duplicate too: the warning's counts and examples agree
    assert "2 exact duplicates by md5: 1 group across classes (one image, two labels), e.g. " \
           "circles/circle_00.jpg = squares/copy.jpg; 1 group within a class, e.g. " \
           "circles/circle_02.jpg = circles/.ipynb_checkpoints/c-checkpoint.jpg" in warnings[3]
    assert "skip the 1 broken file" in offers[0] and "leave out 1 hidden folder" in offers[1]
    assert ticked == [True, True]
    assert "Created `train` (12 files) and `val` (3 files), 3 classes" in created
    assert "1 broken file left out (broken.jpg)" in created
    assert "validation_split=0.25, subset='both', seed=5" in code
    assert "on_error='skip' leaves out the 1 broken file the panel found (broken.jpg)" in code
    assert "include_hidden=False leaves out hidden folders inside the classes" in code
    assert "IN_KERNEL:" in text and "12 3 ['circles', 'squares', 'triangles'] (12, 64, 64, 3) (3, 64, 64, 3)" in text
    # each fetched at most once (16 checked, the hidden one left out; squares/copy.jpg has
    # circle_00's content, which the cache may already hold)
    assert len(media) == len(set(media)) and 15 <= len(media) <= 16, len(media)
    assert len(thumbs) == want and max(thumbs) < first_media  # the preview downloaded nothing
    if os.environ.get("COLABMODELS_SCREENSHOTS") == "docs":
        target = REPO / "docs" / "img" / "dataset_panel.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHOTS / "dataset_panel.png", target)
