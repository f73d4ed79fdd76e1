"""A notebook in a real JupyterLab, in a real browser: the extension loads and answers."""

from __future__ import annotations

import pytest
from labtools import write_notebook

pytestmark = pytest.mark.timeout(300)


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
        # wait until the kernel is connected and idle before running
        page.wait_for_function(
            "() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
            " return !s || s.getAttribute('data-status') === 'idle'; }",
            timeout=90_000,
        )
        page.click(".jp-Notebook .jp-Cell .jp-InputArea-editor")
        page.keyboard.press("Shift+Enter")
        output = page.wait_for_selector(
            ".jp-OutputArea-output:has-text('colabmodels magics:')", timeout=120_000
        )
        text = output.inner_text()
        page.screenshot(path=str(tmp_path / "jupyterlab.png"))
    finally:
        page.close()
    assert "colabmodels magics: cache drive_mount load_model models save_model" in text
