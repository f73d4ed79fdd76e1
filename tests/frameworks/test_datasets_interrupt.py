"""Stop means stop, in the datasets too (issue 28).

The emulator answers every request after a delay, so a cold dataset takes a while to fetch.
- A child script iterates ``image_dataset_from_drive`` (TensorFlow's Python-function ops with
  the fetch threads alive) and gets SIGINT after its first batch: it exits, and the emulator's
  log shows the fetching stopped (before, the threads worked through everything queued, up
  to the whole read-ahead, before the interpreter could exit).
- A child script builds ``DriveImageFolder`` (which fetches every file up front) and gets
  SIGINT part-way: its ``except KeyboardInterrupt`` finds no fetch thread alive.
- A real Jupyter kernel runs ``DriveImageFolder(...)``; Kernel > Interrupt (the kernel
  client's interrupt) returns the prompt, no ``colabmodels-bulk`` thread is left, no file is
  requested after that, and running the cell again resumes and completes.
What the emulator's request log and the child's own report say decide; the time limits are
only hang guards.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.timeout(600)

ROOT = "MyDrive/datasets/slow"
N_FILES = 600
LATENCY_MS = 150
HANG_GUARD_S = 90  # a broken build fails instead of hanging; not a timing assertion


def _jpeg(i: int) -> bytes:
    from PIL import Image

    arr = np.random.RandomState(i).randint(0, 255, (12, 12, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=80)
    return buf.getvalue()


@pytest.fixture
def slow_dataset(drive_env):
    fd = drive_env
    for i in range(N_FILES):
        fd.put(f"{ROOT}/{'abc'[i % 3]}/{i:04d}.jpg", _jpeg(i))
    fd.reset_requests()
    fd.latency_ms = LATENCY_MS
    yield fd
    fd.latency_ms = 0


def media(fd) -> list:
    return [r for r in fd.requests if (r.query or {}).get("alt") == "media"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_for_line(child: subprocess.Popen, prefix: str) -> str:
    deadline = time.monotonic() + HANG_GUARD_S
    assert child.stdout is not None
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and child.poll() is not None:
            break
    raise AssertionError(f"the child never printed {prefix!r}: {child.stderr.read()[-3000:]}")


# Ctrl-C in a terminal is a KeyboardInterrupt; a child started from a shell that ignores SIGINT
# (a background job, some CI runners) inherits "ignore" unless it asks for Python's handler.
CTRL_C_IS_KEYBOARD_INTERRUPT = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n")

TF_CHILD = CTRL_C_IS_KEYBOARD_INTERRUPT + r"""
import colabmodels as cm
ds = cm.image_dataset_from_drive("MyDrive/datasets/slow", image_size=(8, 8), batch_size=8,
                                 seed=1, verbose=False)
for i, (x, y) in enumerate(ds):
    print("BATCH", i, flush=True)
"""


def test_sigint_stops_a_tf_dataset_script_and_it_exits(slow_dataset):
    fd = slow_dataset
    child = subprocess.Popen([sys.executable, "-c", TF_CHILD], env=_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_line(child, "BATCH 0")
        child.send_signal(signal.SIGINT)
        at_signal = len(media(fd))
        child.wait(timeout=HANG_GUARD_S)
    finally:
        if child.poll() is None:
            child.kill()
    time.sleep(1.0)
    after = len(media(fd)) - at_signal
    # stopped: at most the requests already in flight (64) finish; before, the whole
    # read-ahead (hundreds of files) was fetched before the interpreter could exit
    assert after <= 64 + 8, f"{after} files fetched after SIGINT"
    assert len(media(fd)) < N_FILES


TORCH_CHILD = CTRL_C_IS_KEYBOARD_INTERRUPT + r"""
import json, sys, threading, time
import colabmodels as cm
try:
    cm.DriveImageFolder("MyDrive/datasets/slow", progress=False)
    print("FINISHED", flush=True)
except KeyboardInterrupt:
    alive = [t.name for t in threading.enumerate() if t.name.startswith("colabmodels-bulk")]
    print("INTERRUPTED " + json.dumps({"alive": alive}), flush=True)
"""


def test_sigint_stops_driveimagefolder_and_ends_its_threads(slow_dataset):
    pytest.importorskip("torch")
    fd = slow_dataset
    child = subprocess.Popen([sys.executable, "-c", TORCH_CHILD], env=_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while len(media(fd)) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        at_signal = len(media(fd))
        line = _wait_for_line(child, "INTERRUPTED")
        child.wait(timeout=HANG_GUARD_S)
    finally:
        if child.poll() is None:
            child.kill()
    assert json.loads(line.split(" ", 1)[1]) == {"alive": []}
    time.sleep(1.0)
    assert len(media(fd)) - at_signal <= 64 + 8
    assert len(media(fd)) < N_FILES


def test_kernel_interrupt_stops_driveimagefolder_and_a_rerun_resumes(slow_dataset):
    pytest.importorskip("torch")
    jupyter_client = pytest.importorskip("jupyter_client")
    fd = slow_dataset
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=_env(), extra_arguments=["--HistoryManager.enabled=False"])
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=HANG_GUARD_S)
        cell = ("import colabmodels as cm\n"
                "folder = cm.DriveImageFolder('MyDrive/datasets/slow', progress=False)\n"
                "print('LEN', len(folder))")
        msg_id = kc.execute(cell)
        deadline = time.monotonic() + HANG_GUARD_S
        while len(media(fd)) < 200 and time.monotonic() < deadline:  # a few waves of 64 stored
            time.sleep(0.05)
        km.interrupt_kernel()
        at_interrupt = len(media(fd))
        reply = kc.get_shell_msg(timeout=HANG_GUARD_S)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc.get_shell_msg(timeout=HANG_GUARD_S)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        # the threads are gone and nothing more is fetched
        out = _run(kc, "import threading\n"
                       "print('ALIVE', sorted(t.name for t in threading.enumerate() "
                       "if t.name.startswith('colabmodels-bulk')))")
        assert "ALIVE []" in out, out
        time.sleep(1.0)
        assert len(media(fd)) - at_interrupt <= 64 + 8
        # running the cell again resumes: only what was missing is fetched
        before = len(media(fd))
        fd.latency_ms = 0
        out = _run(kc, cell)
        assert f"LEN {N_FILES}" in out, out
        assert len(media(fd)) - before <= N_FILES - 100
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _run(kc, code: str) -> str:
    """Run ``code`` in the kernel; its stdout (and error, if any)."""
    msg_id = kc.execute(code)
    out = []
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=HANG_GUARD_S)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            out.append("\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            break
    return "".join(out)
