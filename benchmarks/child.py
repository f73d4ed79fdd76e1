"""The contender side of the benchmarks: one task per process.

``python -m benchmarks.child SPEC.json`` runs one task described by a JSON file and writes
its measurements to ``spec["result_file"]``. Every contender runs as its own process so its
wall time and memory are its own, not the orchestrator's (which hosts the Drive emulator).

Memory is measured by the process itself, after its imports and setup:

* ``rss_base_kib``: the resident set (``VmRSS``) just before the timed operation;
* the kernel's peak counter (``VmHWM``, what ``getrusage(RUSAGE_SELF).ru_maxrss`` reports)
  is reset (``/proc/self/clear_refs`` <- ``5``) right before the operation, so
  ``peak_kib`` afterwards is the peak *of the operation*, not of the imports;
* ``growth_kib = peak_kib - rss_base_kib``.

``ru_maxrss_kib`` (as asked: the process's own ``getrusage``) is reported too; when the reset
works it equals ``peak_kib``. Where the reset is not allowed, ``peak_kib`` falls back to
``ru_maxrss`` and ``peak_reset`` is False (the growth then also counts import-time peaks).

This module imports only the standard library at import time; each task imports what it uses.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


# -- memory -----------------------------------------------------------------------------------

def proc_status() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of this process in KiB."""
    out: dict[str, int] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def ru_maxrss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class Measure:
    """Times one operation and measures its peak memory above the pre-operation RSS."""

    def __init__(self) -> None:
        self.result: dict[str, Any] = {}

    def __enter__(self) -> Measure:
        gc.collect()
        self.peak_reset = reset_peak()
        status = proc_status()
        self.rss_base = status["VmRSS"]
        self.t_wall0 = time.time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        op_s = time.perf_counter() - self.t0
        t_wall1 = time.time()
        status = proc_status()
        maxrss = ru_maxrss_kib()
        peak = status["VmHWM"] if self.peak_reset else maxrss
        self.result = {
            "op_s": op_s,
            "window": [self.t_wall0, t_wall1],
            "rss_base_kib": self.rss_base,
            "rss_after_kib": status["VmRSS"],
            "peak_kib": peak,
            "ru_maxrss_kib": maxrss,
            "growth_kib": max(0, peak - self.rss_base),
            "peak_reset": self.peak_reset,
        }


def _quiet_logs() -> None:
    import logging

    logging.getLogger("googleapiclient").setLevel(logging.ERROR)
    logging.getLogger("oauth2client").setLevel(logging.ERROR)
    logging.getLogger("colabmodels").setLevel(logging.WARNING)


# -- helpers for clients ------------------------------------------------------------------------

def _mount() -> Any:
    import colabmodels as cm

    return cm.mount(interactive=False)


def _pydrive2(spec: dict[str, Any]) -> Any:
    """A signed-in PyDrive2 GoogleDrive (token fetched and account read, like ``cm.mount``)."""
    from colabmodels.testing.fakedrive.client import pydrive2_drive

    drive = pydrive2_drive(spec["endpoint"], spec["key_file"])
    drive.GetAbout()  # PyDrive2 fetches its token lazily: do it before the clock starts
    return drive


# -- scenario 1 and 4: downloads ----------------------------------------------------------------

def task_download(spec: dict[str, Any]) -> dict[str, Any]:
    """One download by one contender: ``cm_fetch``, ``pydrive2`` or ``bytesio``."""
    contender = spec["contender"]
    fid = spec["file_id"]
    out = Path(spec.get("out") or "")
    if contender == "cm_fetch":
        import colabmodels as cm

        _mount()

        def op() -> Path:
            return cm.fetch(fid, progress=False)
    elif contender == "pydrive2":
        drive = _pydrive2(spec)

        def op() -> Path:
            f = drive.CreateFile({"id": fid})
            f.GetContentFile(str(out))
            return out
    elif contender == "bytesio":
        import io

        from googleapiclient.http import MediaIoBaseDownload

        from colabmodels.testing.fakedrive.client import drive_service, service_account_credentials

        service = drive_service(spec["endpoint"], service_account_credentials(spec["key_file"]))
        service.about().get().execute()  # sign in (token) before the clock starts

        def op() -> Path:
            # The recipe of countless notebooks: the whole file in memory, then to disk.
            request = service.files().get_media(fileId=fid)
            fh = io.BytesIO()
            downloader = MediaIoBaseDownload(fh, request)
            done = False
            while done is False:
                _, done = downloader.next_chunk()
            with open(out, "wb") as f:
                f.write(fh.getvalue())
            return out
    else:
        raise ValueError(f"unknown download contender {contender!r}")
    with Measure() as m:
        path = op()
    result = dict(m.result)
    result["size"] = Path(path).stat().st_size
    if spec.get("verify_md5"):
        from colabmodels.transfer import file_md5  # after timing: no import cost in the baselines

        result["md5_ok"] = file_md5(Path(path)) == spec["verify_md5"]
    result["path"] = str(path)
    return result


# -- scenario 2: cache hits ---------------------------------------------------------------------

def task_cache_hit(spec: dict[str, Any]) -> dict[str, Any]:
    """Interleaved loads of one cached model: plain loader, cm offline, cm online.

    One untimed-for-the-median warm-up load per contender first (its numbers are kept as
    ``first``), then ``inner`` rounds; each round runs the contenders in a rotated order.
    """
    framework = spec["framework"]
    ref = spec["ref"]
    inner = int(spec["inner"])
    contenders: list[str] = list(spec["contenders"])
    import colabmodels as cm

    if framework == "torch":
        import torch

        def plain(path: Path) -> Any:
            return torch.load(path, weights_only=True, map_location="cpu")

        def settle() -> None:
            pass
    else:
        import keras

        def plain(path: Path) -> Any:
            return keras.saving.load_model(path)

        def settle() -> None:
            keras.backend.clear_session()
    _mount()
    local = cm.fetch(ref, offline=True, progress=False)  # the cached file, the same for all
    ops: dict[str, Callable[[], Any]] = {
        "plain": lambda: plain(local),
        "cm_offline": lambda: cm.load_model(ref, offline=True, progress=False),
        "cm_online": lambda: cm.load_model(ref, offline=False, progress=False),
    }
    records: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
    first: dict[str, dict[str, Any]] = {}
    for rnd in range(inner + 1):
        order = contenders[rnd % len(contenders):] + contenders[: rnd % len(contenders)]
        for c in order:
            obj = None
            with Measure() as m:
                obj = ops[c]()
            del obj
            settle()
            gc.collect()
            if rnd == 0:
                first[c] = m.result
            else:
                records[c].append(m.result)
    return {"local_path": str(local), "size": local.stat().st_size, "loads": records,
            "first": first}


# -- scenario 3: uploads ------------------------------------------------------------------------

def _state_dict(nbytes: int, tensors: int) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(0)
    per = nbytes // 4 // tensors
    sd = {}
    for i in range(tensors):
        sd[f"layers.{i}.weight"] = torch.empty(per).uniform_(-1, 1, generator=gen)
        sd[f"layers.{i}.bias"] = torch.zeros(64)
    return sd


def task_upload(spec: dict[str, Any]) -> dict[str, Any]:
    """One upload by one contender: ``cm_save_model``, ``cm_backend_upload`` or ``pydrive2``."""
    contender = spec["contender"]
    extra: dict[str, Any] = {}
    if contender == "cm_save_model":
        import colabmodels as cm

        _mount()
        sd = _state_dict(int(spec["nbytes"]), int(spec.get("tensors", 16)))
        extra["payload_bytes"] = sum(t.numel() * t.element_size() for t in sd.values())

        def op() -> Any:
            return cm.save_model(sd, spec["dest"], progress=False)
    elif contender == "cm_backend_upload":
        from colabmodels.api import backend_for
        from colabmodels.refs import parse_ref

        _mount()
        ref = parse_ref(spec["dest"])
        backend = backend_for(ref, write=True)
        extra["payload_bytes"] = Path(spec["src"]).stat().st_size

        def op() -> Any:
            return backend.upload(Path(spec["src"]), ref)
    elif contender == "pydrive2":
        drive = _pydrive2(spec)
        extra["payload_bytes"] = Path(spec["src"]).stat().st_size

        def op() -> Any:
            f = drive.CreateFile({"title": spec["title"], "parents": [{"id": spec["folder_id"]}]})
            f.SetContentFile(spec["src"])
            f.Upload()
            with contextlib.suppress(Exception):
                f.content.close()
            return f["id"]
    else:
        raise ValueError(f"unknown upload contender {contender!r}")
    with Measure() as m:
        answer = op()
    result = {**m.result, **extra}
    if contender == "cm_save_model":
        result["saved_ref"] = answer.ref
        result["files"] = answer.files
        # What part of save_model is serialisation? Time it again on its own (untimed above).
        import tempfile

        from colabmodels.formats import save_object
        from colabmodels.transfer import file_sha256

        with tempfile.TemporaryDirectory(prefix="bench-ser-") as tmp:
            t0 = time.perf_counter()
            saved = save_object(sd, Path(tmp))
            t1 = time.perf_counter()
            for rel in saved.files:
                file_sha256(Path(tmp) / rel)
            t2 = time.perf_counter()
        result["serialise_s"] = t1 - t0
        result["sha256_s"] = t2 - t1
    elif contender == "cm_backend_upload":
        result["file_id"] = answer.ref.id
    else:
        result["file_id"] = answer
    return result


# -- scenario 5: listing ------------------------------------------------------------------------

def task_list(spec: dict[str, Any]) -> dict[str, Any]:
    """List a folder by id, with one of the contenders of :mod:`benchmarks.scenarios.listing`."""
    contender = spec["contender"]
    folder_id = spec["folder_id"]
    first_at: list[float] = []
    if contender == "cm_lister":
        from colabmodels.api import backend_for
        from colabmodels.refs import parse_ref

        _mount()
        ref = parse_ref(f"https://drive.google.com/drive/folders/{folder_id}")
        backend = backend_for(ref)

        def op() -> int:
            n = 0
            for _ in backend.list(ref):
                if n == 0:
                    first_at.append(time.perf_counter())
                n += 1
            return n
    else:
        drive = _pydrive2(spec)
        q = f"'{folder_id}' in parents and trashed=false"
        query = {"q": q, "maxResults": 1000}
        if contender == "pydrive2_getlist":
            def op() -> int:
                # Without maxResults GetList pages (1000 at a time) through everything.
                return len(drive.ListFile({"q": q}).GetList())
        elif contender == "pydrive2_getlist_maxresults":
            def op() -> int:
                # With maxResults GetList makes one call: the first page only.
                return len(drive.ListFile(query).GetList())
        elif contender == "pydrive2_iter":
            def op() -> int:
                n = 0
                for page in drive.ListFile(query):
                    if not first_at:
                        first_at.append(time.perf_counter())
                    n += len(page)
                return n
        else:
            raise ValueError(f"unknown listing contender {contender!r}")
    with Measure() as m:
        count = op()
    result = {**m.result, "count": count}
    result["first_s"] = (first_at[0] - m.t0) if first_at else None
    return result


# -- setup helpers ------------------------------------------------------------------------------

def task_make_models(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the cache-hit scenario's models: a torch state dict and a ``.keras`` model."""
    out = Path(spec["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    if spec.get("torch_bytes"):
        import torch

        sd = _state_dict(int(spec["torch_bytes"]), 10)
        torch.save(sd, out / "weights.pth")
        result["torch"] = str(out / "weights.pth")
    if spec.get("keras_params"):
        import keras

        width = max(16, int((int(spec["keras_params"]) / 2) ** 0.5))
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((width,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(10),
        ])
        model.save(out / "model.keras")
        result["keras"] = str(out / "model.keras")
        result["keras_params"] = int(model.count_params())
    return result


def task_prefetch(spec: dict[str, Any]) -> dict[str, Any]:
    """Bring refs into the cache (the cache-hit scenario's setup)."""
    import colabmodels as cm

    _mount()
    return {"paths": [str(cm.fetch(r, progress=False)) for r in spec["refs"]]}


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "download": task_download,
    "cache_hit": task_cache_hit,
    "upload": task_upload,
    "list": task_list,
    "make_models": task_make_models,
    "prefetch": task_prefetch,
}


def run_task(spec_path: str, task: Callable[[dict[str, Any]], dict[str, Any]], *,
             name: str | None = None) -> int:
    """The child side of the protocol: run ``task(spec)`` and write its numbers, or its error,
    to ``spec["result_file"]`` (atomically). Returns the process exit code."""
    spec = json.loads(Path(spec_path).read_text())
    t_start = time.time()
    result: dict[str, Any] = {"task": name or spec["task"], "contender": spec.get("contender"),
                              "pid": os.getpid(), "t_start": t_start}
    code = 0
    try:
        result.update(task(spec))
        result["ok"] = True
    except BaseException as exc:
        result["ok"] = False
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
        code = 1
    result["t_end"] = time.time()
    tmp = Path(spec["result_file"] + ".tmp")
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, spec["result_file"])
    sys.stdout.flush()
    return code


def main(argv: list[str]) -> int:
    _quiet_logs()
    return run_task(argv[0], lambda spec: TASKS[spec["task"]](spec))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
