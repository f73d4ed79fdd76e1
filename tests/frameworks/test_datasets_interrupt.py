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
- The same while the main thread is blocked in TensorFlow's iterator, waiting for files that
  are still downloading (a slower emulator; the signal comes once batches stop arriving): no
  download starts after the interrupt (the watch of :mod:`colabmodels.datasets.interrupts`
  stops the feeder at once, instead of when the batch is done or at exit), the script dies of
  a plain KeyboardInterrupt (no TensorFlow error chained to it), with no fetch thread left; in
  a real kernel the cell ends with KeyboardInterrupt, no fetch thread is left, and a rerun
  fetches only what was missing.
What the emulator's request log and the child's own report say decide; the time limits are
only hang guards.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
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


@contextlib.contextmanager
def _kernel(jupyter_client):
    """A real kernel pointed at the emulator (``(manager, client)``), shut down after."""
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=_env(), extra_arguments=["--HistoryManager.enabled=False"])
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=HANG_GUARD_S)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _reply_to(kc, msg_id: str) -> dict:
    """The shell reply to the request ``msg_id`` (others are skipped)."""
    reply = kc.get_shell_msg(timeout=HANG_GUARD_S)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=HANG_GUARD_S)
    return reply


ALIVE_CELL = ("import threading\n"
              "print('ALIVE', sorted(t.name for t in threading.enumerate() "
              "if t.name.startswith('colabmodels-bulk')))")


def test_kernel_interrupt_stops_driveimagefolder_and_a_rerun_resumes(slow_dataset):
    pytest.importorskip("torch")
    jupyter_client = pytest.importorskip("jupyter_client")
    fd = slow_dataset
    with _kernel(jupyter_client) as (km, kc):
        cell = ("import colabmodels as cm\n"
                "folder = cm.DriveImageFolder('MyDrive/datasets/slow', progress=False)\n"
                "print('LEN', len(folder))")
        msg_id = kc.execute(cell)
        deadline = time.monotonic() + HANG_GUARD_S
        while len(media(fd)) < 200 and time.monotonic() < deadline:  # a few waves of 64 stored
            time.sleep(0.05)
        km.interrupt_kernel()
        at_interrupt = len(media(fd))
        reply = _reply_to(kc, msg_id)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        # the threads are gone and nothing more is fetched
        out = _run(kc, ALIVE_CELL)
        assert "ALIVE []" in out, out
        time.sleep(1.0)
        assert len(media(fd)) - at_interrupt <= 64 + 8
        # running the cell again resumes: only what was missing is fetched
        before = len(media(fd))
        fd.latency_ms = 0
        out = _run(kc, cell)
        assert f"LEN {N_FILES}" in out, out
        assert len(media(fd)) - before <= N_FILES - 100


def _run(kc, code: str) -> str:
    """Run ``code`` in the kernel; its stdout (and error, if any). Sent again when the kernel
    aborted it (ipykernel drops requests that arrive just after an error)."""
    for _ in range(20):
        out = _run_once(kc, code)
        if out is not None:
            return out
        time.sleep(0.25)
    raise AssertionError(f"the kernel kept aborting {code!r}")


def _run_once(kc, code: str) -> str | None:
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
    reply = kc.get_shell_msg(timeout=HANG_GUARD_S)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=HANG_GUARD_S)
    return None if reply["content"]["status"] == "aborted" else "".join(out)


# -- the main thread blocked in TensorFlow's iterator ---------------------------------------

STARVED_LATENCY_MS = 800  # every batch waits for downloads: the main thread sits in GetNext
QUIET_S = 0.5  # no batch for this long: the main thread is waiting for files
AFTER_S = 0.5  # downloads starting later than this after the interrupt were not stopped
TF_ABORT = "free(): invalid"  # TensorFlow's own heap abort on Ctrl-C (Keras' loader has it too)

TF_STARVED_CHILD = CTRL_C_IS_KEYBOARD_INTERRUPT + r"""
import atexit, json, threading
atexit.register(lambda: print("ALIVE " + json.dumps(sorted(
    t.name for t in threading.enumerate() if t.name.startswith("colabmodels-bulk"))), flush=True))
import colabmodels as cm
ds = cm.image_dataset_from_drive("MyDrive/datasets/slow", image_size=(8, 8), batch_size=8,
                                 seed=1, verbose=False)
for i, (x, y) in enumerate(ds):
    print("BATCH", i, flush=True)
"""


def _started_after(fd, when: float) -> int:
    return sum(1 for r in media(fd) if r.started > when)


def _interrupt_when_starved(fd) -> tuple[subprocess.Popen, float, str, str]:
    """Start the child, wait for two waves of downloads and then until batches stop coming
    (it waits for downloads), SIGINT it;
    the child, the time of the signal, its stdout and stderr."""
    child = subprocess.Popen([sys.executable, "-c", TF_STARVED_CHILD], env=_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: list[tuple[float, str]] = []
    errors: list[str] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append((time.monotonic(), line))

    def read_errors() -> None:
        assert child.stderr is not None
        errors.append(child.stderr.read())

    # each pipe has one reader (communicate() would read stdout too, and lose what it read)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    error_reader = threading.Thread(target=read_errors, daemon=True)
    error_reader.start()
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while len(media(fd)) < 130 and time.monotonic() < deadline:  # two waves stored:
            time.sleep(0.02)  # the dataset is far from done (a gap below is no end of data)
        quiet_until = time.monotonic() + 3 * STARVED_LATENCY_MS / 1000
        while time.monotonic() < quiet_until and child.poll() is None:
            batches = [t for t, line in lines if line.startswith("BATCH")]
            if batches and time.monotonic() - batches[-1] > QUIET_S:
                break
            time.sleep(0.02)
        at_signal = time.time()
        child.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        child.wait(timeout=HANG_GUARD_S)
        print(f"SIGINT to exit: {time.monotonic() - t0:.2f} s")
    finally:
        if child.poll() is None:
            child.kill()
    reader.join(5)
    error_reader.join(5)
    return child, at_signal, "".join(line for _, line in lines), "".join(errors)


def test_sigint_while_tf_waits_for_downloads_stops_them_at_once(slow_dataset):
    fd = slow_dataset
    fd.latency_ms = STARVED_LATENCY_MS
    for _ in range(3):  # TensorFlow itself sometimes aborts on Ctrl-C; then once more
        child, at_signal, out, err = _interrupt_when_starved(fd)
        if not (child.returncode == -signal.SIGABRT and TF_ABORT in err):
            break
    time.sleep(STARVED_LATENCY_MS / 1000 + 0.5)  # downloads under way are logged when done
    late = _started_after(fd, at_signal + AFTER_S)
    assert late == 0, f"{late} downloads started more than {AFTER_S} s after SIGINT"
    assert child.returncode == -signal.SIGINT, err[-3000:]  # died of the KeyboardInterrupt
    assert err.rstrip().endswith("KeyboardInterrupt"), err[-3000:]
    assert err.count("Traceback (most recent call last)") == 1, err[-3000:]
    assert "During handling" not in err and "Error" not in err, err[-3000:]
    assert "ALIVE []" in out, out[-2000:]


TF_CELL = """
import colabmodels as cm
ds = cm.image_dataset_from_drive('MyDrive/datasets/slow', image_size=(8, 8), batch_size=8,
                                 seed=1, verbose=False)
batches = sum(1 for _ in ds)
print('BATCHES', batches)
"""


def test_kernel_interrupt_while_tf_waits_for_downloads_and_a_rerun_resumes(slow_dataset):
    jupyter_client = pytest.importorskip("jupyter_client")
    fd = slow_dataset
    fd.latency_ms = STARVED_LATENCY_MS
    with _kernel(jupyter_client) as (km, kc):
        msg_id = kc.execute(TF_CELL)
        deadline = time.monotonic() + HANG_GUARD_S
        while len(media(fd)) < 130 and time.monotonic() < deadline:  # two waves stored
            time.sleep(0.05)
        at_interrupt = time.time()
        t0 = time.monotonic()
        km.interrupt_kernel()
        reply = _reply_to(kc, msg_id)
        print(f"interrupt to reply: {time.monotonic() - t0:.2f} s")
        content = reply["content"]
        shown = "\n".join(content.get("traceback", []))
        assert content["status"] == "error" and content["ename"] == "KeyboardInterrupt", (
            content.get("ename"), content.get("evalue"), shown[-4000:])
        assert "During handling" not in shown and "FetchStopped" not in shown, shown
        out = _run(kc, ALIVE_CELL)
        assert "ALIVE []" in out, out
        time.sleep(STARVED_LATENCY_MS / 1000 + 0.5)
        assert _started_after(fd, at_interrupt + AFTER_S) == 0
        # running the cell again resumes: nothing fetched before is fetched again
        before = len(media(fd))
        fd.latency_ms = 0
        out = _run(kc, TF_CELL)
        assert f"BATCHES {N_FILES // 8}" in out, out
        assert before + (len(media(fd)) - before) <= N_FILES, "some files were fetched twice"


@pytest.mark.parametrize("as_path", [True, False])
def test_a_stopped_batch_is_answered_with_stand_ins_keras_decodes(as_path, tmp_path, monkeypatch):
    """A look-up the feeder was stopped for returns normally (an error would collide with
    the KeyboardInterrupt pending on the main thread): stand-in images that Keras' loader
    (or the bytes decoder) reads in every colour mode. Other errors go through."""
    import tensorflow as tf
    from keras.src.utils import image_dataset_utils

    from colabmodels.datasets.feeder import FetchStopped, stand_ins_when_stopped
    from colabmodels.datasets.member_bytes import decode_image_bytes

    monkeypatch.setenv("COLABMODELS_CACHE_DIR", str(tmp_path / "cache"))

    def stopped(indices):
        raise FetchStopped("stopped by an interrupt")

    data, ok = stand_ins_when_stopped(stopped, as_path=as_path)(np.arange(3))
    assert len(data) == 3 and ok.all()
    for channels in (1, 3, 4):
        args = ((5, 7), channels, "bilinear", "channels_last", False, False)
        image = (image_dataset_utils._load_image_tf(tf.constant(data[0]), *args) if as_path
                 else decode_image_bytes(tf.constant(data[0]), *args))
        assert image.shape == (5, 7, channels)
    if as_path:
        assert data[0].decode().startswith(str(tmp_path / "cache"))
        assert (os.stat(data[0]).st_mode & 0o777) == 0o600

    def broken(indices):
        raise ValueError("not a stop")

    with pytest.raises(ValueError, match="not a stop"):
        stand_ins_when_stopped(broken, as_path=as_path)(np.arange(3))


def test_a_read_only_cache_still_gets_its_stand_in_image(tmp_path, monkeypatch):
    """A warm cache that cannot be written still streams, so Ctrl-C may need the stand-in
    there too: it is written to a private temporary file instead (removed at exit)."""
    import tensorflow as tf
    from keras.src.utils import image_dataset_utils

    from colabmodels.cachestore import cache
    from colabmodels.datasets import feeder as feeder_module

    monkeypatch.setenv("COLABMODELS_CACHE_DIR", str(tmp_path / "read-only-cache"))

    def cannot_write(name: str):
        raise PermissionError(13, "Read-only file system", str(tmp_path / "read-only-cache"))

    monkeypatch.setattr(cache, "private_dir", cannot_write)
    path = feeder_module.stand_in_path()
    try:
        assert not path.startswith(str(tmp_path)) and os.path.basename(path).startswith("colabmodels-")
        assert (os.stat(path).st_mode & 0o777) == 0o600
        image = image_dataset_utils._load_image_tf(tf.constant(path), (5, 7), 3, "bilinear",
                                                   "channels_last", False, False)
        assert image.shape == (5, 7, 3)
        assert feeder_module.stand_in_path() == path  # made once per cache
    finally:
        os.remove(path)
