"""The Drive browser's double-click in the classic Notebook UI (nbclassic) and Chromium, on the
Drive emulator: once with this environment's ipywidgets 8, once with what Colab ships (a kernel
with ipywidgets 7.7.1 and IPython 7.34, the 7.x widget manager in the page). Double-click two
folders, then a model file, and check what the widget shows and the variable in a cell.

Colab itself cannot run here; the classic UI with ipywidgets 7.7.1 is the nearest page we can
drive (Colab's output frames are its own).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from labtools import (
    click_row,
    crumbs,
    double_click_row,
    open_and_run_first_cell,
    run_cell,
    write_notebook,
)

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.timeout(420)
SHOTS = Path(__file__).resolve().parents[2] / ".pytest_cache" / "screenshots"
SHOTS.mkdir(parents=True, exist_ok=True)


def test_double_click_opens_folders_and_loads_a_model(classic_notebook, browser, tmp_path):
    from colabmodels.testing import FakeDrive

    server = classic_notebook
    shot = SHOTS / f"drive_browser_classic{server.widgets}-failed.png"
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    with FakeDrive() as fd:
        fd.put("MyDrive/projects/vision/encoder.pth", buf.getvalue(),
               description="torch state dict: 8 -> 16 -> 3 classifier")
        fd.put("MyDrive/projects/vision/notes.md", b"# notes")
        fd.put("MyDrive/projects/readme.md", b"r")
        fd.put("MyDrive/datasets/flowers/roses/1.jpg", b"\xff\xd8\xff\xe0")
        key = tmp_path / "key.json"
        fd.write_service_account(key)
        env = {"COLABMODELS_DRIVE_ENDPOINT": fd.url, "GOOGLE_APPLICATION_CREDENTIALS": str(key),
               "COLABMODELS_CACHE_DIR": str(tmp_path / "cache"),
               "COLABMODELS_CONFIG_DIR": str(tmp_path / "config")}
        write_notebook(server.root / f"browse{server.widgets}.ipynb", [
            "import os\n"
            f"os.environ.update({json.dumps(env)})\n"
            "import colabmodels as cm\n"
            "browser = cm.DriveBrowser('MyDrive')\n"
            "browser",
            "import ipywidgets, IPython\n"
            "print('CHECK', ipywidgets.__version__.split('.')[0], IPython.__version__.split('.')[0],\n"
            "      type(encoder).__name__, sorted(encoder), tuple(encoder['2.weight'].shape))",
        ])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            open_and_run_first_cell(page, server.notebook_url(f"browse{server.widgets}.ipynb"),
                                    ".cm-drive-list select", failed_shot=shot, ui="classic")
            double_click_row(page, "projects/")
            crumbs(page, "projects")
            double_click_row(page, "vision/")
            path = crumbs(page, "vision")
            click_row(page, "encoder.pth")
            page.wait_for_selector(".cm-details:has-text('torch state dict')", timeout=60_000)
            double_click_row(page, "encoder.pth")  # a double-click on a file loads it
            loaded = page.wait_for_selector(".cm-message:has-text('Loaded encoder.pth')",
                                            timeout=120_000).inner_text()
            page.locator(".output_area:has(.cm-drive-list)").first.screenshot(
                path=str(SHOTS / f"drive_browser_classic{server.widgets}.png"))
            text = run_cell(page, 1, expect="CHECK", failed_shot=shot, ui="classic")
        finally:
            page.close()
    assert path == ["My Drive", "projects", "vision"]
    assert "Loaded encoder.pth into `encoder`" in loaded, loaded
    widgets, ipython = text.split("CHECK", 1)[1].split()[:2]
    assert widgets == str(server.widgets), text  # the kernel really has that ipywidgets ...
    if server.widgets == 7:
        assert ipython == "7", text  # ... and, as Colab, IPython 7.34
    assert "OrderedDict ['0.bias', '0.weight', '2.bias', '2.weight'] (3, 16)" in text
