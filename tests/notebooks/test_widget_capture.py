"""A widget callback that runs on a worker thread must not take the output of the cell that
happens to be running.

``ipywidgets.Output`` captures by the message id of the kernel's *current* request. A guarded
observer fired from a background redraw (the browser lists a folder again after a save) entered
the capture while the *next* cell ran, and that cell's prints went into the widget: in Colab's
ipywidgets 7.7.1 kernel notebook 02 lost the lines that print the saved versions. Checked here
in both kernel generations with a real kernel and nbclient's Output-widget handling.
"""

from __future__ import annotations

import nbformat
import pytest

from colabmodels import demo

pytest.importorskip("nbclient")
pytestmark = pytest.mark.timeout(300)

SETUP = """\
import threading, time
import ipywidgets as w
from colabmodels.widgets.capture import CallbackGuard
guard = CallbackGuard()
picked = w.Select(options=["a", "b"])
def slow_observer(change):
    time.sleep(1.0)  # a redraw's observer, still inside the guard while the next cell prints
picked.observe(guard.wrap(slow_observer), names="value")
def redraw_later():
    time.sleep(0.3)
    picked.value = "b"  # set from a worker thread, as the browser's background redraw does
worker = threading.Thread(target=redraw_later)
worker.start()
"""
PRINTS = """\
for i in range(15):
    print("line", i, flush=True)
    time.sleep(0.1)
worker.join()
"""
CLICKED = """\
button = w.Button()
button.on_click(guard.wrap(lambda _: print("from the click")))
button.click()
print("after the click")
"""


def _stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_a_worker_thread_callback_leaves_the_running_cells_output_alone(kernel, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in (SETUP, PRINTS, CLICKED)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "capture.ipynb"
    nbformat.write(nb, path)
    done, error = demo.execute_notebook(path, tmp_path / "run", python=kernel.python,
                                        kernel_env=kernel.env, timeout=120)
    assert error is None, error
    printed = _stream_text(done.cells[1])
    assert printed.splitlines() == [f"line {i}" for i in range(15)], printed
    # a click on the kernel's own thread is still captured by the widget, as before
    clicked = _stream_text(done.cells[2])
    assert "after the click" in clicked
    assert "from the click" not in clicked
