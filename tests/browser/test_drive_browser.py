"""The Drive browser in a real JupyterLab and Chromium, on the Drive emulator: show it, open
two folders by double-clicking, find Load disabled on an image and no "Open in Drive" link for
emulator files, copy a file's reference, load a model by double-clicking it, check the
variable in a cell, then see a folder's saved versions stay inside the details pane.

A screenshot of the widget goes to ``.pytest_cache/screenshots/drive_browser.png``; with
``COLABMODELS_SCREENSHOTS=docs`` also to ``docs/img/drive_browser.png`` (the README's picture).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from labtools import click_row as _click_row
from labtools import crumbs as _crumbs
from labtools import double_click_row as _double_click_row
from labtools import open_and_run_first_cell, run_cell, write_notebook

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.timeout(420)
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / ".pytest_cache" / "screenshots"
SHOTS.mkdir(parents=True, exist_ok=True)


def test_browse_click_load_then_use_the_variable(jupyterlab, browser, tmp_path):
    from colabmodels.testing import FakeDrive

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    with FakeDrive() as fd:
        fd.put("MyDrive/projects/vision/encoder.pth", buf.getvalue(),
               description="torch state dict: 8 -> 16 -> 3 classifier")
        fd.put("MyDrive/projects/vision/notes.md", b"# notes")
        fd.put("MyDrive/projects/vision/sample.jpg", b"\xff\xd8\xff\xe0")
        fd.put("MyDrive/projects/readme.md", b"r")
        fd.put("MyDrive/datasets/flowers/roses/1.jpg", b"\xff\xd8\xff\xe0")
        fd.put("MyDrive/resnet50.safetensors", b"x" * 4096)
        key = tmp_path / "key.json"
        fd.write_service_account(key)
        env = {"COLABMODELS_DRIVE_ENDPOINT": fd.url, "GOOGLE_APPLICATION_CREDENTIALS": str(key),
               "COLABMODELS_CACHE_DIR": str(tmp_path / "cache"),
               "COLABMODELS_CONFIG_DIR": str(tmp_path / "config")}
        write_notebook(jupyterlab.root / "browse.ipynb", [
            "import os\n"
            f"os.environ.update({json.dumps(env)})\n"
            "import colabmodels as cm\n"
            "import torch\n"
            "for acc in (0.91, 0.93):  # two saved versions with long metadata\n"
            "    cm.save_model(torch.nn.Linear(2, 2), 'MyDrive/models/tiny', progress=False,\n"
            "                  metadata={'acc': acc, 'note': 'trained on the full flowers set ' * 4})\n"
            "browser = cm.DriveBrowser('MyDrive')\n"
            "browser",
            "print('CHECK', type(encoder).__name__, sorted(encoder), tuple(encoder['2.weight'].shape))",
        ])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            open_and_run_first_cell(page, jupyterlab.notebook_url("browse.ipynb"), ".cm-drive-list select",
                                    failed_shot=SHOTS / "drive_browser-failed.png")
            # the first page arrives from the kernel's background thread; double-clicks open
            _double_click_row(page, "projects/")
            _crumbs(page, "projects")
            _double_click_row(page, "vision/")
            crumbs = _crumbs(page, "vision")
            load = page.locator(".jupyter-widgets button:has-text('Load')")
            _click_row(page, "sample.jpg")
            page.wait_for_selector(".cm-details:has-text('sample.jpg')", timeout=60_000)
            page.wait_for_function(
                """() => [...document.querySelectorAll('.jupyter-widgets button')]
                     .some(b => b.textContent.includes('Load') && b.disabled)""", timeout=30_000)
            image_load_disabled = load.is_disabled()
            _click_row(page, "encoder.pth")
            page.wait_for_selector(".cm-details:has-text('torch state dict')", timeout=60_000)
            drive_links = page.locator(".cm-open-drive").count()
            variable = page.locator(".jupyter-widgets.widget-text:has-text('variable') input")
            assert variable.input_value() == "encoder"
            page.click(".jupyter-widgets button:has-text('Copy reference')")
            page.wait_for_function(
                "() => { const i = document.querySelector('.cm-reference input');"
                "        return i && i.value; }", timeout=30_000)
            reference = page.locator(".cm-reference input").input_value()
            load_enabled = not load.is_disabled()
            _double_click_row(page, "encoder.pth")  # a double-click on a file loads it
            page.wait_for_selector(".cm-message:has-text('Loaded encoder.pth')", timeout=120_000)
            page.add_style_tag(content=".Toastify { display: none !important; }")  # Lab's news toast
            widget = page.locator(".jp-OutputArea-output:has(.cm-drive-list)").first
            widget.screenshot(path=str(SHOTS / "drive_browser.png"))
            text = run_cell(page, 1, expect="CHECK", failed_shot=SHOTS / "drive_browser-failed.png")
            # the saved versions of a folder: a table that stays inside the details pane
            page.locator(".cm-crumbs button").first.click()
            _crumbs(page, "My Drive")
            _double_click_row(page, "models/")
            _crumbs(page, "models")
            _click_row(page, "tiny/")
            page.wait_for_selector(".cm-versions table", timeout=90_000)
            clip = page.evaluate(
                """() => { const box = document.querySelector('.cm-versions');
                           const pane = box.closest('.widget-vbox');
                           const b = box.getBoundingClientRect(), p = pane.getBoundingClientRect();
                           return [b.right <= p.right + 1, box.scrollWidth > box.clientWidth,
                                   getComputedStyle(box).overflowX]; }""")
            widget.screenshot(path=str(SHOTS / "drive_browser_versions.png"))
        finally:
            page.close()
    assert crumbs == ["My Drive", "projects", "vision"]
    assert image_load_disabled and load_enabled
    assert drive_links == 0  # emulator files have no Drive web page
    assert reference == "MyDrive/projects/vision/encoder.pth"
    assert "CHECK OrderedDict ['0.bias', '0.weight', '2.bias', '2.weight'] (3, 16)" in text
    assert clip[0] and clip[2] == "auto", clip  # inside the pane; wide content scrolls
    if os.environ.get("COLABMODELS_SCREENSHOTS") == "docs":
        target = REPO / "docs" / "img" / "drive_browser.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHOTS / "drive_browser.png", target)
