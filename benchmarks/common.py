"""Orchestrator-side plumbing shared by the scenarios.

* :class:`Params`: sizes, repetitions and emulator shaping of a full or a ``--quick`` run;
* :class:`Emulator`: a :class:`~colabmodels.testing.FakeDrive` hosted by the orchestrator
  (so its request log is at hand) plus the environment that points a child process at it;
* :func:`run_child`: run one contender as ``python -m benchmarks.child`` and read back what it
  measured about itself;
* statistics (:func:`median`), payload files, machine information.

The orchestrator does nothing heavy while a contender runs (it waits, or polls a small file),
so on a 2-core machine the emulator has one core and the contender the other. Pinned runs make
that strict: :meth:`Emulator.pinned` keeps the orchestrator (the emulator's threads) on one
core and ``start_child(cpus=...)`` keeps the contender on another (:func:`pin_cores`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Params:
    """Everything a run's numbers depend on (recorded in ``latest.json``)."""

    quick: bool
    latency_ms: float = 20.0
    bandwidth_bytes_per_s: int = 16 * MiB          # per connection
    total_bandwidth_bytes_per_s: int = 128 * MiB   # the whole server
    download_bytes: int = 256 * MiB
    download_reps: int = 3
    cache_torch_bytes: int = 100_000_000
    cache_keras_params: int = 25_000_000           # ~100 MB of float32 weights
    cache_reps: int = 3                            # processes per framework
    cache_inner: int = 8                           # interleaved rounds per process
    upload_bytes: int = 256 * MiB
    upload_reps: int = 3
    resume_bytes: int = 256 * MiB
    resume_reps: int = 3
    resume_chunk_bytes: int | None = None          # None: colabmodels' default (8 MiB)
    resume_bandwidth_bytes_per_s: int | None = None
    resume_total_bandwidth_bytes_per_s: int | None = None
    listing_files: int = 20_000
    listing_reps: int = 3
    child_timeout_s: float = 600.0
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def full(cls) -> Params:
        return cls(quick=False)

    @classmethod
    def quick_run(cls) -> Params:
        """Small sizes, the same code paths; well under two minutes on 2 cores."""
        return cls(
            quick=True,
            latency_ms=5.0,
            download_bytes=16 * MiB,
            download_reps=2,
            cache_torch_bytes=8_000_000,
            cache_keras_params=1_000_000,
            cache_reps=1,
            cache_inner=2,
            upload_bytes=16 * MiB,
            upload_reps=1,
            resume_bytes=16 * MiB,
            resume_reps=1,
            # 16 parts of 1 MiB at 8 MiB/s: slow enough to stop the child half-way.
            resume_chunk_bytes=1 * MiB,
            resume_bandwidth_bytes_per_s=2 * MiB,
            resume_total_bandwidth_bytes_per_s=8 * MiB,
            listing_files=2_000,
            listing_reps=1,
            child_timeout_s=180.0,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- statistics -------------------------------------------------------------------------------

def median(values: Sequence[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def rotated(items: Sequence[str], rep: int) -> list[str]:
    """``items`` rotated by ``rep`` places: every contender takes every slot in turn."""
    k = rep % len(items) if items else 0
    return [*items[k:], *items[:k]]


# -- payloads ---------------------------------------------------------------------------------

def disk_probe(folder: Path, n: int = 500) -> float:
    """CPU milliseconds per cache-shaped entry on ``folder``'s file system: a staging folder
    and its data folder, a 14 KB file and a small one written, the folder renamed into place,
    a hard link (what storing one small file costs the cache in system calls). A quiet local
    disk takes about 0.1 ms; a disk busy with earlier deletions (``discard``) can take 20x
    that, which every cold-cache contender pays per image."""
    import os
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="disk-probe-", dir=folder))
    body = b"x" * 14_000
    try:
        t0 = os.times()
        for i in range(n):
            stage = base / f"s{i}"
            (stage / "data").mkdir(parents=True)
            (stage / "data" / "img.jpg").write_bytes(body)
            (stage / "meta.json").write_bytes(b"{}" * 100)
            os.replace(stage, base / f"e{i}")
            os.link(base / f"e{i}" / "meta.json", base / f"m{i}")
        t1 = os.times()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 1000 * ((t1.user + t1.system) - (t0.user + t0.system)) / n


def write_payload(path: Path, nbytes: int, seed: int = 0) -> str:
    """An incompressible, reproducible file of ``nbytes``; returns its md5."""
    rng = random.Random(seed)
    digest = hashlib.md5(usedforsecurity=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left = nbytes
        while left:
            block = rng.randbytes(min(8 * MiB, left))
            digest.update(block)
            fh.write(block)
            left -= len(block)
    return digest.hexdigest()


# -- the emulator -----------------------------------------------------------------------------

class Emulator:
    """A FakeDrive in this process and a work folder; ``env(...)`` points children at it."""

    def __init__(self, work: Path, *, latency_ms: float, bandwidth: int | None,
                 total_bandwidth: int | None, seed: int = 0) -> None:
        from colabmodels.testing import FakeDrive

        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.fd = FakeDrive(latency_ms=latency_ms, bandwidth_bytes_per_s=bandwidth,
                            total_bandwidth_bytes_per_s=total_bandwidth, seed=seed)
        self.settings = {"latency_ms": latency_ms, "bandwidth_bytes_per_s": bandwidth,
                         "total_bandwidth_bytes_per_s": total_bandwidth}

    def __enter__(self) -> Emulator:
        self.fd.start()
        self.key_file = self.work / "service-account.json"
        self.fd.write_service_account(self.key_file)
        self.config_dir = self.work / "config"
        self.config_dir.mkdir(exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.fd.close()

    @property
    def url(self) -> str:
        return self.fd.url

    def env(self, cache_dir: Path, **extra: str) -> dict[str, str]:
        """The environment of a contender process: this emulator, this cache, nothing else."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("COLABMODELS_") and k not in ("GOOGLE_APPLICATION_CREDENTIALS",)}
        env.update({
            "COLABMODELS_DRIVE_ENDPOINT": self.url,
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.key_file),
            "COLABMODELS_CACHE_DIR": str(cache_dir),
            "COLABMODELS_CONFIG_DIR": str(self.config_dir),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(extra)
        return env

    @contextlib.contextmanager
    def pinned(self, cpus: set[int]) -> Iterator[None]:
        """Within this block the emulator (every thread of this process, and the threads it
        starts for new connections, which inherit it) runs only on ``cpus``."""
        before = os.sched_getaffinity(0)
        _pin_process(cpus)
        try:
            yield
        finally:
            _pin_process(before)

    def requests_between(self, t0: float, t1: float) -> list[Any]:
        """Requests that arrived in ``[t0, t1]`` (a window a child reported)."""
        return [r for r in self.fd.requests if t0 <= r.started <= t1]


def media_bytes(records: Sequence[Any], file_id: str | None = None) -> int:
    return sum(r.bytes for r in records
               if r.query.get("alt") == "media" and (file_id is None or file_id in r.path))


def upload_bytes(records: Sequence[Any]) -> int:
    return sum(r.request_bytes for r in records if r.path.startswith("/upload/"))


# -- children ---------------------------------------------------------------------------------

class ChildError(RuntimeError):
    pass


@dataclass
class Child:
    """A running contender process (for scenarios that must watch or kill it)."""

    proc: subprocess.Popen[bytes]
    result_file: Path
    log_file: Path
    t_spawn: float

    def wait(self, timeout: float) -> dict[str, Any]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise ChildError(f"timed out after {timeout:.0f}s; log: {tail(self.log_file)}") from None
        return self.read()

    def read(self) -> dict[str, Any]:
        try:
            result = json.loads(self.result_file.read_text())
        except (OSError, ValueError):
            raise ChildError(f"exit status {self.proc.returncode} and no result; "
                             f"log: {tail(self.log_file)}") from None
        result["t_spawn"] = self.t_spawn
        result["process_s"] = time.time() - self.t_spawn
        result["exit_status"] = self.proc.returncode
        if not result.get("ok"):
            raise ChildError(f"{result.get('error')}\n{result.get('traceback', '')}")
        return result


def tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def pin_cores() -> tuple[set[int], set[int]] | None:
    """``(emulator's cores, contender's cores)`` for pinned runs: one core each, or None
    where this process may use fewer than two cores (or the OS cannot pin)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    return ({cores[0]}, {cores[1]}) if len(cores) >= 2 else None


def _pin_process(cpus: set[int]) -> None:
    """Every thread of this process on ``cpus`` (``sched_setaffinity(0)`` moves one thread)."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def start_child(spec: dict[str, Any], env: dict[str, str], work: Path, *,
                module: str = "benchmarks.child", wrap: list[str] | None = None,
                cpus: set[int] | None = None) -> Child:
    """Start one contender: ``python -m module SPEC_FILE`` (behind ``wrap``, e.g. a profiler),
    its output in a log file and its result in a JSON file beside the spec, under ``work``.
    ``cpus``: the process (and every thread it starts) runs only on these cores."""
    run_dir = work / "children"
    run_dir.mkdir(parents=True, exist_ok=True)
    task = spec.get("task") or module.rsplit(".", 1)[-1]
    name = f"{task}-{spec.get('contender', '')}-{uuid.uuid4().hex[:8]}"
    spec_file = run_dir / f"{name}.spec.json"
    result_file = run_dir / f"{name}.result.json"
    log_file = run_dir / f"{name}.log"
    spec_file.write_text(json.dumps({**spec, "result_file": str(result_file)}))
    t_spawn = time.time()
    with open(log_file, "wb") as log:
        command = [*(wrap or []), sys.executable, "-m", module, str(spec_file)]
        if cpus is not None:  # set by the child before it runs anything (no preexec_fn)
            command = [sys.executable, "-c", _PINNED_START, ",".join(map(str, sorted(cpus))),
                       *command]
        proc = subprocess.Popen(command, env=env, cwd=str(REPO), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Child(proc, result_file, log_file, t_spawn)


_PINNED_START = ("import os, sys; os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')}); "
                 "os.execv(sys.argv[2] if os.path.isabs(sys.argv[2]) else "
                 "__import__('shutil').which(sys.argv[2]), sys.argv[2:])")
"""Pin this process, then become the contender's command (affinity survives ``exec``)."""


def run_child(spec: dict[str, Any], env: dict[str, str], work: Path, timeout: float) -> dict[str, Any]:
    return start_child(spec, env, work).wait(timeout)


# -- machine ----------------------------------------------------------------------------------

def _versions(names: Sequence[str]) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    cpu = None
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
                break
    status = _git("status", "--porcelain")
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu,
        "memory_bytes": mem,
        "loadavg_start": list(os.getloadavg()),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_files": len(status.splitlines()) if status is not None else None,
        "versions": _versions(["colabmodels", "PyDrive2", "google-api-python-client", "httplib2",
                               "urllib3", "google-auth", "torch", "keras", "tensorflow-cpu",
                               "tensorflow", "numpy", "matplotlib"]),
    }


@contextlib.contextmanager
def scratch(root: Path, name: str) -> Iterator[Path]:
    """A fresh folder under ``root`` removed afterwards."""
    path = root / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
