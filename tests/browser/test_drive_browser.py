"""The Drive browser in a real JupyterLab and Chromium, on the Drive emulator: show it, open
two folders by clicking, select a model file, press Load, then check the variable in a cell.

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
from labtools import open_and_run_first_cell, run_cell, write_notebook

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.timeout(420)
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / ".pytest_cache" / "screenshots"
SHOTS.mkdir(parents=True, exist_ok=True)


def _option_index(page, text: str) -> int:
    """The index of the first list row whose text contains ``text`` (-1 if none)."""
    return page.evaluate(
        """(text) => {
            const opts = [...document.querySelectorAll('.cm-drive-list select option')];
            return opts.findIndex(o => o.textContent.includes(text));
        }""", text)


def _click_row(page, text: str) -> None:
    page.wait_for_function(
        """(text) => [...document.querySelectorAll('.cm-drive-list select option')]
                     .some(o => o.textContent.includes(text))""", arg=text, timeout=60_000)
    index = _option_index(page, text)
    page.select_option(".cm-drive-list select", index=index)


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
            "browser = cm.DriveBrowser('MyDrive')\n"
            "browser",
            "print('CHECK', type(encoder).__name__, sorted(encoder), tuple(encoder['2.weight'].shape))",
        ])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            open_and_run_first_cell(page, jupyterlab.notebook_url("browse.ipynb"), ".cm-drive-list select",
                                    failed_shot=SHOTS / "drive_browser-failed.png")
            # the first page arrives from the kernel's background thread
            _click_row(page, "projects/")
            page.click(".jupyter-widgets button:has-text('Open')")
            _click_row(page, "vision/")
            page.click(".jupyter-widgets button:has-text('Open')")
            _click_row(page, "encoder.pth")
            page.wait_for_selector(".cm-details:has-text('torch state dict')", timeout=60_000)
            variable = page.locator(".jupyter-widgets.widget-text:has-text('variable') input")
            assert variable.input_value() == "encoder"
            page.click(".jupyter-widgets button:has-text('Load')")
            page.wait_for_selector(".cm-message:has-text('Loaded encoder.pth')", timeout=120_000)
            crumbs = page.locator(".cm-crumbs button").all_inner_texts()
            widget = page.locator(".jp-OutputArea-output:has(.cm-drive-list)").first
            widget.screenshot(path=str(SHOTS / "drive_browser.png"))
            text = run_cell(page, 1, expect="CHECK", failed_shot=SHOTS / "drive_browser-failed.png")
        finally:
            page.close()
    assert [c.strip() for c in crumbs] == ["My Drive", "projects", "vision"]
    assert "CHECK OrderedDict ['0.bias', '0.weight', '2.bias', '2.weight'] (3, 16)" in text
    if os.environ.get("COLABMODELS_SCREENSHOTS") == "docs":
        target = REPO / "docs" / "img" / "drive_browser.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHOTS / "drive_browser.png", target)
