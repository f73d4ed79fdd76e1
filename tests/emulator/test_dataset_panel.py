"""The dataset panel on the Drive emulator, driven by values and ``button.click()`` with no
browser: counts, bar chart, warnings, thumbnails from Drive's thumbnail links (and no media
download while previewing), field checks, errors shown in the panel, ``%dataset``.

Runs on ipywidgets 8 (``.venv``) and Colab's 7.7.1 (``.venv-colab``, ``-m colab``), where
there is no numpy, PIL or TensorFlow: the images are PNGs written with zlib, and making a
dataset there shows the MissingDependencyError in the panel. Making a dataset for real and
packing are in tests/frameworks/test_dataset_panel_create.py.
"""

from __future__ import annotations

import struct
import sys
import zlib

import pytest

import colabmodels as cm
from colabmodels.datasets.summary import summarize
from colabmodels.widgets.dataset_panel import DatasetPanel

pytestmark = [pytest.mark.colab, pytest.mark.timeout(300)]

ROOT = "MyDrive/datasets/shapes"


def png(width: int, height: int, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A real RGB PNG (no PIL needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def shapes(drive_env):
    """circles 12, squares 3 (one a copy of a circle), triangles 0 (only a text file),
    a hidden folder, a file Drive cannot read as an image, a nested class subfolder."""
    fd = drive_env
    for i in range(12):
        fd.put(f"{ROOT}/circles/c{i:02d}.png", png(32 + i, 32, (10 * i, 100, 200)))
    fd.put(f"{ROOT}/squares/s00.png", png(40, 40, (1, 2, 3)))
    fd.put(f"{ROOT}/squares/nested/s01.png", png(40, 40, (4, 5, 6)))
    fd.put(f"{ROOT}/squares/copy.png", png(32, 32, (0, 100, 200)))  # = circles/c00.png
    fd.put(f"{ROOT}/squares/broken.jpg", b"this is not an image")
    fd.put(f"{ROOT}/triangles/notes.txt", b"to do")
    fd.put(f"{ROOT}/.ipynb_checkpoints/c00-checkpoint.png", png(8, 8))
    fd.reset_requests()
    return fd


def _no_media(requests) -> None:
    media = [r for r in requests if (r.query or {}).get("alt") == "media"
             or "/download/" in r.path or r.range]
    assert media == [], [(r.method, r.path, r.query) for r in media]


def test_panel_shows_counts_chart_warnings_and_thumbnails(shapes):
    panel = DatasetPanel(ROOT, namespace={})
    assert panel.wait(120)
    summary = panel.summary
    assert summary is not None and summary.complete
    assert summary.class_names == ["circles", "squares", "triangles"]
    assert summary.counts == {"circles": 12, "squares": 4, "triangles": 0}
    # the bar chart: one bar per class, widths relative to the largest class
    chart = panel.chart.value
    assert chart.count("<div class='cm-bar") - chart.count("cm-bar-row") - chart.count("cm-bar-track") == 3
    assert "data-class='circles' data-count='12' style='width:100.0%'" in chart
    assert "data-class='squares' data-count='4' style='width:33.3%'" in chart
    assert "cm-bar cm-bar-empty' data-class='triangles' data-count='0'" in chart
    kinds = [w.kind for w in summary.warnings]
    assert kinds[:4] == ["hidden_folders", "empty_classes", "broken_images", "duplicates"]
    assert kinds[4:] == ["aspect_ratios", "not_images"]  # circles are 32..43 px wide
    assert summary.warning("broken_images").paths == (f"{ROOT}/squares/broken.jpg",)
    assert summary.warning("duplicates").paths == (f"{ROOT}/circles/c00.png = {ROOT}/squares/copy.png",)
    assert "across classes" in summary.warning("duplicates").message
    assert ".ipynb_checkpoints" in summary.warning("hidden_folders").message
    assert summary.warning("imbalance") is None  # 12 vs 4 is 3x, below the default 4x
    for kind in kinds:
        assert f"cm-warning-{kind}" in panel.warnings.value
    # thumbnails: six per class (fewer where the class is smaller), each an image Drive made
    names = {path.rsplit("/", 1)[-1]: image for path, image in panel._images.items()}
    assert sorted(names) == ["c00.png", "c01.png", "c02.png", "c03.png", "c04.png", "c05.png",
                             "copy.png", "s00.png", "s01.png"]
    for image in names.values():
        assert bytes(image.value).startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))
        assert image.format in ("png", "jpeg")
    # the image size field followed the images' most common size (32x32: c00 and copy)
    assert (panel.height.value, panel.width.value) == (32, 32)
    assert not panel.create_button.disabled and not panel.pack_button.disabled
    assert "16 images in 3 classes" in panel.status.value


def test_fewer_thumbnails_when_asked_or_when_there_are_many_classes(shapes):
    panel = DatasetPanel(ROOT, namespace={}, per_class=2)
    assert panel.wait(120)
    assert sorted(p.rsplit("/", 1)[-1] for p in panel._images) == ["c00.png", "c01.png",
                                                                    "copy.png", "s00.png"]
    assert sorted(p.rsplit("/", 1)[-1] for p in panel.model.thumbnails) == sorted(
        p.rsplit("/", 1)[-1] for p in panel._images)
    panel.model.max_thumbnails = 2  # three classes, room for two: one each of the first two
    assert [len(v) for v in panel.model.samples(panel.summary).values()] == [1, 1]
    panel.model.max_thumbnails = 4  # one each for all three
    assert [len(v) for v in panel.model.samples(panel.summary).values()] == [1, 1, 0]


def test_imbalance_is_reported_from_the_ratio(shapes):
    summary = summarize(ROOT, imbalance_ratio=3.0)
    found = summary.warning("imbalance")
    assert found is not None and "circles has 12 images, squares 4 (3.0x)" in found.message
    assert summarize(ROOT, imbalance_ratio=3.5).warning("imbalance") is None


def test_preview_downloads_no_media_only_metadata_and_thumbnails(shapes):
    fd = shapes
    panel = DatasetPanel(ROOT, namespace={})
    assert panel.wait(120)
    _no_media(fd.requests)
    thumbs = [r for r in fd.requests if r.path.startswith("/thumbnail/")]
    assert len(thumbs) == 9 and all(r.status == 200 for r in thumbs)
    assert all(r.method == "GET" for r in fd.requests if r.path != "/token")
    api = {r.path.split("/drive/v2/")[-1].split("/")[0] for r in fd.requests if "/drive/v2/" in r.path}
    assert api <= {"files", "about", "changes"}, api
    # the thumbnails were fetched with the session's token (the files are private)
    assert all(r.user for r in thumbs)
    # a second panel reuses the remembered listing: no folder is listed again
    fd.reset_requests()
    again = DatasetPanel(ROOT, namespace={})
    assert again.wait(120)
    _no_media(fd.requests)
    listed = [r for r in fd.requests if r.path.endswith("/drive/v2/files")
              and "in parents" in (r.query or {}).get("q", "") and "mimeType" not in (r.query or {}).get("q", "")]
    assert len(listed) <= 1  # the one top-level look for the first class names
    assert again.summary.counts == panel.summary.counts


def test_listing_runs_in_the_background(shapes):
    shapes.latency_ms = 150  # every request takes a while: the panel is back long before
    try:
        panel = DatasetPanel(ROOT, namespace={})
        assert panel.model.busy and "listing" in panel.chart.value
        assert panel.create_button.disabled  # nothing to create from yet
        assert panel.wait(120)
    finally:
        shapes.latency_ms = 0
    assert not panel.model.busy and "data-count='12'" in panel.chart.value
    assert not panel.create_button.disabled


def test_first_update_names_the_classes_before_the_counts(shapes):
    seen = []
    summarize(ROOT, on_update=lambda s: seen.append((s.complete, list(s.class_names), dict(s.counts))))
    assert seen[0] == (False, ["circles", "squares", "triangles"], {})
    assert seen[-1][0] is True and seen[-1][2]["circles"] == 12


def test_a_thumbnail_drive_cannot_make_marks_the_file_broken(drive_env):
    fd = drive_env
    for i in range(3):
        fd.put(f"{ROOT}/a/{i}.png", png(16, 16))
    # a PNG whose header parses (Drive gives its size) but whose pixels are garbage
    fd.put(f"{ROOT}/a/3-truncated.png", png(16, 16)[:40] + b"\x00" * 20)
    panel = DatasetPanel(ROOT, namespace={})
    assert panel.wait(120)
    summary = panel.summary
    if not any(t.data is None for t in panel.model.thumbnails.values()):
        pytest.skip("this emulator makes thumbnails without decoding (no Pillow): nothing to see")
    assert f"{ROOT}/a/3-truncated.png" in summary.warning("broken_images").paths
    image = next(i for p, i in panel._images.items() if p.endswith("3-truncated.png"))
    assert image.layout.border == "2px solid #c62828" and bytes(image.value) == b""


def test_field_mistakes_show_in_the_panel(shapes):
    ns: dict = {}
    panel = DatasetPanel(ROOT, namespace=ns)
    assert panel.wait(120)
    panel.variable.value = "1train"
    panel.create_button.click()
    assert "'1train' is not a Python variable name" in panel.guard.text
    panel.variable.value = "train, val"
    panel.subset.value = "training"
    panel.create_button.click()
    assert "two names (train, val) go with subset both" in panel.guard.text
    panel.subset.value = None
    panel.variable.value = "ds"
    panel.create_button.click()
    assert "a validation split needs a subset" in panel.guard.text
    assert ns == {}


def test_subset_choice_fills_the_variable_until_it_is_typed(shapes):
    panel = DatasetPanel(ROOT, namespace={})
    assert panel.variable.value == "train, val"
    panel.subset.value = "training"
    assert panel.variable.value == "train"
    panel.variable.value = "mine"
    panel.subset.value = "validation"
    assert panel.variable.value == "mine"
    panel.close()


def test_create_without_tensorflow_shows_what_to_install(shapes, monkeypatch):
    # .venv-colab has no TensorFlow; in .venv the import is made to fail the same way
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "keras", None)
    ns: dict = {}
    panel = DatasetPanel(ROOT, namespace=ns)
    assert panel.wait(120)
    panel.create_button.click()
    assert panel.guard.last_trouble is not None
    assert "MissingDependencyError" in panel.guard.text
    assert 'pip install "colabmodels[tf]"' in panel.guard.text
    assert ns == {} and panel.result.value == ""


def test_pack_errors_show_in_the_panel(shapes, monkeypatch):
    monkeypatch.setitem(sys.modules, "numpy", None)  # as in a bare environment
    panel = DatasetPanel(ROOT, namespace={})
    assert panel.wait(120)
    panel.pack_button.click()
    assert "MissingDependencyError" in panel.guard.text and "numpy" in panel.guard.text
    assert panel.last_packed is None


def test_listing_errors_show_in_the_panel(drive_env):
    panel = DatasetPanel("MyDrive/no/such/folder", namespace={})
    panel.wait(120)
    assert "NotFoundError" in panel.guard.text
    assert "press Refresh" in panel.guard.text
    assert panel.create_button.disabled
    drive_env.put("MyDrive/no/such/folder/x/1.png", png(4, 4))
    panel.refresh_button.click()
    panel.wait(120)
    assert panel.summary is not None and panel.summary.counts == {"x": 1}


def test_a_file_is_not_a_dataset(drive_env):
    drive_env.put("MyDrive/one.png", png(4, 4))
    panel = DatasetPanel("MyDrive/one.png", namespace={})
    panel.wait(120)
    assert "is a file, not a folder of images" in panel.guard.text


def test_dataset_magic_shows_a_panel(shapes, ip):
    panel = ip.run_line_magic("dataset", f"{ROOT} --image-size 48 40 --variable ds")
    assert isinstance(panel, cm.DatasetPanel)
    assert panel.wait(120)
    assert (panel.height.value, panel.width.value) == (48, 40)  # given: not replaced
    assert panel.variable.value == "ds"
    assert panel.summary.counts["circles"] == 12
    panel.close()


# -- issue 28: the panel's promises ------------------------------------------------------------

def test_hidden_folders_inside_a_class_are_warned_about_and_left_out_on_request(drive_env):
    fd = drive_env
    root = "MyDrive/datasets/flowers"
    for i in range(4):
        fd.put(f"{root}/lily/{i}.png", png(16, 16))
        fd.put(f"{root}/rose/{i}.png", png(16, 16, (1, 2, 3)))
    fd.put(f"{root}/lily/.ipynb_checkpoints/old/0-checkpoint.png", png(16, 16, (9, 9, 9)))
    fd.put(f"{root}/lily/.ipynb_checkpoints/old/1-checkpoint.png", png(16, 16, (8, 8, 8)))
    panel = DatasetPanel(root, namespace={})
    assert panel.wait(120)
    summary = panel.summary
    assert summary.counts == {"lily": 6, "rose": 4}  # what Keras counts (it includes them)
    found = summary.warning("hidden_inside")
    assert found is not None and "2 images in hidden folders" in found.message
    assert "lily/.ipynb_checkpoints" in found.message and "Keras includes them" in found.message
    assert found.paths == (f"{root}/lily/.ipynb_checkpoints",)
    assert "cm-warning-hidden_inside" in panel.warnings.value
    # the offer: a box, ticked, and the code it shows says what it does
    assert panel.leave_hidden.layout.display == "" and panel.leave_hidden.value is True
    assert "Keras includes them" in panel.leave_hidden.description
    assert panel.skip_broken.layout.display == "none"  # nothing broken here
    options = panel.options()
    assert options.include_hidden is False and options.kwargs()["include_hidden"] is False
    code = panel.model.code("train, val", options)
    assert "include_hidden=False" in code.splitlines()[-1]
    assert code.splitlines()[0].startswith("# include_hidden=False leaves out hidden folders")
    panel.leave_hidden.value = False
    assert "include_hidden" not in panel.model.code("train, val", panel.options())


def test_broken_files_make_create_skip_them_and_the_code_says_so(shapes):
    panel = DatasetPanel(ROOT, namespace={})
    assert panel.wait(120)
    assert panel.summary.broken == [f"{ROOT}/squares/broken.jpg"]
    assert panel.skip_broken.layout.display == "" and panel.skip_broken.value is True
    assert "skip the 1 broken file" in panel.skip_broken.description
    options = panel.options()
    assert options.on_error == "skip"
    code = panel.model.code("train, val", options).splitlines()
    assert code[0] == ("# on_error='skip' leaves out the 1 broken file the panel found "
                       "(broken.jpg), and any other file that is not a readable image")
    assert code[-1].endswith("on_error='skip')")
    panel.skip_broken.value = False
    assert panel.options().on_error == "raise"
    assert "on_error" not in panel.model.code("train, val", panel.options())


def test_duplicate_warning_shows_a_pair_of_the_kind_it_counts(drive_env):
    fd = drive_env
    root = "MyDrive/datasets/dupes"
    same = png(8, 8, (5, 5, 5))
    fd.put(f"{root}/a/1.png", same)
    fd.put(f"{root}/a/2.png", same)  # within class a
    other = png(8, 8, (7, 7, 7))
    fd.put(f"{root}/a/3.png", other)
    fd.put(f"{root}/b/3.png", other)  # across a and b
    fd.put(f"{root}/b/4.png", png(8, 8, (1, 1, 1)))
    found = summarize(root).warning("duplicates")
    assert found is not None
    assert found.message == ("2 exact duplicates by md5: 1 group across classes (one image, two "
                             "labels), e.g. a/3.png = b/3.png; 1 group within a class, e.g. "
                             "a/1.png = a/2.png.")
    assert found.paths[0] == f"{root}/a/3.png = {root}/b/3.png"


def test_suggested_image_size_is_a_common_square_near_the_median(drive_env):
    fd = drive_env
    root = "MyDrive/datasets/mixed"
    # 25 sizes; the most common (112x160) is only 4 of 52 files and not square
    sizes = [(112, 160)] * 4 + [(200 + 8 * k, 180 + 6 * k) for k in range(24) for _ in range(2)]
    for i, (w, h) in enumerate(sizes):
        fd.put(f"{root}/{'ab'[i % 2]}/{i:03d}.png", png(w, h, (i % 250, 3, 4)))
    panel = DatasetPanel(root, namespace={})
    assert panel.wait(120)
    summary = panel.summary
    assert summary.common_image_size == (160, 112)
    assert summary.suggested_image_size == (256, 256)
    assert (panel.height.value, panel.width.value) == (256, 256)
    aspect = summary.warning("aspect_ratios")
    assert aspect is not None and "mixed aspect ratios" in aspect.message
    assert "crop_to_aspect_ratio=True" in aspect.message and "pad_to_aspect_ratio=True" in aspect.message


def test_one_size_is_suggested_as_it_is_and_needs_no_aspect_note(drive_env):
    for i in range(6):
        drive_env.put(f"MyDrive/datasets/same/{'ab'[i % 2]}/{i}.png", png(24, 20))
    summary = summarize("MyDrive/datasets/same")
    assert summary.suggested_image_size == (20, 24) and summary.warning("aspect_ratios") is None


def test_a_typo_says_the_folder_does_not_exist_and_shows_the_nearest_names(shapes):
    shapes.put("MyDrive/datasets/flowers/roses/1.png", png(4, 4))
    panel = DatasetPanel("MyDrive/datasets/flowerz", namespace={})
    panel.wait(120)
    text = panel.guard.text
    assert "MyDrive/datasets/flowerz does not exist: there is no 'flowerz' in MyDrive/datasets." in text
    assert "Nearest names in MyDrive/datasets: flowers" in text
    assert "deleted, trashed or moved" not in text
    assert "listing" not in panel.chart.value and panel.status.value == ""
    assert panel.create_button.disabled


def test_a_class_folder_given_instead_of_its_parent(shapes):
    panel = DatasetPanel(f"{ROOT}/circles", namespace={})
    assert panel.wait(120)
    found = panel.summary.warning("one_class")
    assert found is not None
    assert found.message.startswith("This looks like one class: 12 images lie directly in "
                                    f"{ROOT}/circles, with no class folders; did you mean the "
                                    f"parent folder {ROOT}?")
    assert "no problems found" not in panel.warnings.value
    assert "cm-warning-one_class" in panel.warnings.value
