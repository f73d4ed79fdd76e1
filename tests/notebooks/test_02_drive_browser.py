"""02_drive_browser executed top to bottom against the demo servers, in a Jupyter (ipywidgets 8)
and a Colab-pinned (ipywidgets 7.7.1) kernel: browse, load with the Load button, search, sort,
save two versions from the browser, pick several files."""

from __future__ import annotations

import pytest
from notebook_envs import assert_ran

pytest.importorskip("torch")
pytest.importorskip("nbclient")
pytestmark = pytest.mark.timeout(1200)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_drive_browser_notebook_browses_loads_and_saves(run_notebook, kernel):
    done = run_notebook("02", kernel)
    assert_ran(done)
    text = done.text
    assert "the bundled emulator with demo content" in text
    assert "breadcrumbs: My Drive \u203a demo" in text
    assert "selected: encoder.pth" in text
    assert "loaded without errors" in text
    assert "encoder: OrderedDict with 4 tensors" in text
    assert "reference: MyDrive/demo/encoder.pth\n" in text  # Copy reference: the path alone
    assert "same tensors as by link: True" in text
    assert "search 'enc': ['encoder.pth']" in text  # found everywhere: no folder path known
    assert "sorted by size descending" in text
    assert "MyDrive/encoder-from-browser@v1" in text and "MyDrive/encoder-from-browser@v2" in text, text
    assert "round=2" in text  # %models shows the second version's metadata
    assert "on_select got: ['encoder-from-browser']" in text
    assert "versions folder loads as: MyDrive/encoder-from-browser@latest" in text
    # the browsers were displayed as widgets (four of them), in the kernel's ipywidgets generation
    views = [o for c in done.nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if WIDGET_VIEW in o.get("data", {})]
    assert len(views) >= 3
    state = done.widget_state()
    selects = [m for m in state.values() if m["model_name"] in ("SelectModel", "SelectMultipleModel")]
    assert len(selects) >= 3
    expected = "1.5.0" if kernel.widgets_major == 7 else "2.0.0"
    assert {m["model_module_version"] for m in selects} == {expected}
