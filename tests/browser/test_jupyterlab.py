"""A notebook in a real JupyterLab, in a real browser: the extension loads and answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from labtools import write_notebook

pytestmark = pytest.mark.timeout(300)
SHOTS = Path(__file__).resolve().parents[2] / ".pytest_cache" / "screenshots"
SHOTS.mkdir(parents=True, exist_ok=True)


def test_load_ext_in_jupyterlab_shows_its_magics(jupyterlab, browser, tmp_path):
    write_notebook(jupyterlab.root / "smoke.ipynb", [
        "%load_ext colabmodels\n"
        "mine = sorted(m for m in get_ipython().magics_manager.magics['line']\n"
        "              if m in {'drive_mount', 'load_model', 'save_model', 'models', 'cache'})\n"
        "print('colabmodels magics:', ' '.join(mine))",
    ])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(jupyterlab.notebook_url("smoke.ipynb"), wait_until="domcontentloaded")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
        # the kernel is up when the status bar says so (a cold first start can take a while)
        page.wait_for_selector(".jp-StatusBar-Item:has-text('Idle')", timeout=120_000)
        output = None
        for _attempt in range(3):  # a keypress sent while the page still settles can be lost
            page.click(".jp-Notebook .jp-Cell .jp-InputArea-editor")
            page.keyboard.press("Shift+Enter")
            try:
                output = page.wait_for_selector(
                    ".jp-OutputArea-output:has-text('colabmodels magics:')", timeout=60_000
                )
                break
            except Exception:
                page.screenshot(path=str(SHOTS / "jupyterlab-failed.png"))
        assert output is not None, f"no output after three runs; see {SHOTS / 'jupyterlab-failed.png'}"
        text = output.inner_text()
        page.screenshot(path=str(SHOTS / "jupyterlab.png"))
    finally:
        page.close()
    assert "colabmodels magics: cache drive_mount load_model models save_model" in text
