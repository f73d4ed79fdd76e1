"""TensorFlow's C++ start-up lines (absl, oneDNN) never reach a widget (issue 28).

A real Jupyter kernel, fresh for each case so TensorFlow is imported for the first time by
the widget's action: the dataset panel's Create, the browser's Load of a ``.keras`` file.
Everything the kernel publishes (streams, the widgets' Output captures included) is read from
IOPub; the plain ``import keras`` case shows that those lines do arrive there otherwise.
"""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest

pytest.importorskip("tensorflow")
jupyter_client = pytest.importorskip("jupyter_client")
pytestmark = pytest.mark.timeout(600)

ROOT = "MyDrive/datasets/quiet"
GUARD_S = 120  # hang guard only
NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard")

CELLS = {
    "plain import": "import keras\nprint('DONE')",
    "panel create": (
        "import colabmodels as cm\n"
        f"panel = cm.DatasetPanel({ROOT!r}, namespace=globals())\n"
        "assert panel.wait(120)\n"
        "panel.create_button.click()\n"
        "assert panel.guard.last_trouble is None, panel.guard.text\n"
        "print('DONE', len(train.file_paths) + len(val.file_paths))"),
    "browser load": (
        "import colabmodels as cm\n"
        "b = cm.DriveBrowser('MyDrive/models', namespace=globals())\n"
        "assert b.wait(60)\n"
        "b.choose('tiny.keras')\n"
        "b.wait(60)\n"
        "b.variable.value = 'net'\n"
        "b.load_button.click()\n"
        "assert b.guard.last_trouble is None, b.guard.text\n"
        "print('DONE', type(net).__name__)"),
}


def _png(i: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), i * 20, dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _tiny_keras(tmp_path) -> bytes:
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "tiny.keras"
    model.save(path)
    return path.read_bytes()


@pytest.mark.parametrize("case", list(CELLS))
def test_tensorflow_start_up_lines_reach_no_widget(case, drive_env, tmp_path):
    fd = drive_env
    for i in range(10):
        fd.put(f"{ROOT}/{'ab'[i % 2]}/{i}.png", _png(i))
    fd.put("MyDrive/models/tiny.keras", _tiny_keras(tmp_path))
    # ipykernel forwards descriptor 2 to IOPub except under pytest (PYTEST_CURRENT_TEST)
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTEST_CURRENT_TEST")}
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=env, extra_arguments=["--HistoryManager.enabled=False"])
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=GUARD_S)
        published = _run(kc, CELLS[case])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert "DONE" in published, published[-3000:]
    noisy = [n for n in NOISE if n in published]
    if case == "plain import":
        assert noisy, "the kernel published no start-up line: this test could not fail\n" + published[-3000:]
    else:
        assert noisy == [], published[-3000:]


def _run(kc, code: str) -> str:
    """Everything the kernel publishes for ``code`` (streams, outputs, errors), as text."""
    msg_id = kc.execute(code)
    out = []
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=GUARD_S)
        content = msg["content"]
        kind = msg["msg_type"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            out.append("\n".join(content["traceback"]))
        elif kind in ("display_data", "execute_result", "comm_msg", "update_display_data"):
            out.append(repr(content))
        elif (kind == "status" and content["execution_state"] == "idle"
              and msg["parent_header"].get("msg_id") == msg_id):
            break
    return "".join(out)
