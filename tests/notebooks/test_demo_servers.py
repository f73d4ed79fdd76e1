"""The demo servers do not outlive their use: they stop when the last process (kernel) that
started or joined them has exited (after a short linger, long enough for a kernel restart), or
after an idle timeout; and starting them says how to stop them."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from colabmodels import demo

pytestmark = pytest.mark.timeout(600)


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not demo._alive(pid):
            return True
        time.sleep(0.2)
    return False


def test_servers_stop_after_the_last_kernel_that_used_them_exits(tmp_path, demo_content):
    work = tmp_path / "demo"
    kernel = ("import sys, time\n"
              "from colabmodels import demo\n"
              f"servers = demo.start_emulator({str(work)!r}, content={str(demo_content)!r},"
              " linger=1, idle_timeout=0)\n"
              "print(servers.pid, flush=True)\n"
              "sys.stdin.readline()\n")  # lives until told to exit, as a kernel would
    first = subprocess.Popen([sys.executable, "-c", kernel], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    pid = int(first.stdout.readline())
    # a second kernel joins the same servers
    second = subprocess.Popen([sys.executable, "-c", kernel], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert int(second.stdout.readline()) == pid
        first.communicate("\n", timeout=60)
        assert not _gone_within(pid, 4), "stopped while a kernel still used them"
        assert demo.running(work / "state.json") is not None
        second.communicate("\n", timeout=60)
        assert _gone_within(pid, 30), "still running after the last kernel exited"
        assert demo.running(work / "state.json") is None
        assert "the last process using them exited" in (work / "servers.log").read_text()
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
        demo.stop_emulator(work)


def test_servers_started_from_a_shell_say_how_to_stop_and_stop_when_idle(tmp_path, demo_content):
    work = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "colabmodels.demo", "start", "--workdir", str(work),
         "--content", str(demo_content), "--idle-timeout", "3"],
        capture_output=True, text=True, timeout=300, check=True)
    servers = demo.running(work / "state.json")
    assert servers is not None  # the `start` command itself is no user: it exited at once
    try:
        assert f"colabmodels demo stop --workdir {work}" in done.stderr
        assert "after the last kernel using them exits" in done.stderr
        assert _gone_within(servers.pid, 40), "still running after the idle timeout"
        assert "no request for" in (work / "servers.log").read_text()
    finally:
        demo.stop_emulator(work)
