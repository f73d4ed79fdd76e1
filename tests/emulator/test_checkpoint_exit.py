"""Pending checkpoint uploads at interpreter exit (issue 23): a script that ends (or is stopped
with Ctrl-C) flushes them with a progress line; a second Ctrl-C abandons the upload, the
checkpoint stays in the local spool, and the next restore() uploads it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import colabmodels as cm

np = pytest.importorskip("numpy")
pytest.importorskip("safetensors")

SCRIPT = textwrap.dedent("""
    import faulthandler, signal, sys, time
    # Ctrl-C is a KeyboardInterrupt even when started from a shell that ignores SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # where a hung child waits
    import numpy as np
    import colabmodels as cm
    ckpt = cm.DriveCheckpoint(sys.argv[1])
    ckpt.save({"w": np.full(400_000, 7.0, dtype="float32")}, step=1)
    print("saved", flush=True)
    if sys.argv[2] == "wait-for-ctrl-c":
        time.sleep(120)
""")


class Child:
    def __init__(self, dest: str, mode: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SCRIPT, dest, mode],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.out: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True).start()

    @staticmethod
    def _pump(stream, lines) -> None:
        for line in stream:
            lines.append(line)

    def wait(self, timeout: float) -> int:
        """The exit code; a child still running after ``timeout`` fails the test with the
        stacks of its threads (``faulthandler``) and what it wrote to stderr."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            self.proc.kill()
            self.proc.wait()
            time.sleep(0.2)
            raise AssertionError(f"the child did not exit within {timeout} s; its stderr:\n"
                                 + "".join(self.err)[-8000:]) from None

    def until(self, what: str, lines: list[str], timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while not any(what in line for line in lines):
            assert self.proc.poll() is None or any(what in line for line in lines), \
                "".join(self.err)[-3000:]
            assert time.monotonic() < end, f"no {what!r}: " + "".join(self.err)[-3000:]
            time.sleep(0.05)


def test_a_script_that_ends_flushes_its_uploads(drive_env):
    drive_env.bandwidth_bytes_per_s = 400_000  # 1.6 MB: about 4 s of upload after the script ends
    child = Child("MyDrive/runs/exit", "exit")
    assert child.wait(180) == 0, "".join(child.err)[-3000:]
    text = "".join(child.err)
    assert "uploading 1 pending checkpoint(s) (step 1)" in text and "Ctrl-C again" in text
    assert [v.metadata["step"] for v in cm.versions("MyDrive/runs/exit")] == [1]


def test_ctrl_c_twice_abandons_and_the_next_restore_uploads_it(drive_env):
    dest = "MyDrive/runs/ctrl-c"
    drive_env.bandwidth_bytes_per_s = 100_000  # ~16 s of upload: time for two Ctrl-C
    child = Child(dest, "wait-for-ctrl-c")
    child.until("saved", child.out)
    child.proc.send_signal(signal.SIGINT)  # KeyboardInterrupt: the script stops, flush begins
    child.until("before exiting", child.err)
    child.proc.send_signal(signal.SIGINT)  # the second Ctrl-C abandons the upload
    child.wait(60)
    child.until("abandoned", child.err)
    if drive_env.exists(dest):  # the claimed v1 has no manifest: not a version
        assert cm.versions(dest) == []
    drive_env.bandwidth_bytes_per_s = None
    ckpt = cm.DriveCheckpoint(dest)
    state = ckpt.restore()  # uploads what the killed script left in the spool, then loads it
    assert state is not None and state["w"][0] == 7.0
    assert [v.metadata["step"] for v in cm.versions(dest)] == [1]
    assert not any(p.is_dir() for p in ckpt.spool.iterdir())
