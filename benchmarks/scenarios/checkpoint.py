"""Scenario 8: checkpoints to Drive while a Keras model trains (``cm.DriveCheckpoint``).

A Keras model of ~110 MiB (float32 weights; plain SGD, so the ``.keras`` file with its optimizer
state is the same size) trains for 10 short epochs on random data. The emulator caps uploads at
16 MiB/s per connection (20 ms latency, 128 MiB/s in total), so one checkpoint takes ~7 s to
upload, about half an epoch. Each contender is its own process
(``python -m benchmarks.scenarios.checkpoint SPEC.json``), with Keras imported, the model built
and compiled and Drive signed in before its clock starts; the clock covers ``model.fit(...)``
from its call to its return (for ``DriveCheckpoint`` that includes waiting at train end for the
last upload):

* ``plain``: ``model.fit`` with no callback (the baseline);
* ``cm_checkpoint``: ``cm.DriveCheckpoint(dest, keep_last=2)``: a ``.keras`` snapshot into the
  local spool at each epoch end, uploaded in the background (latest wins when uploads lag);
* ``modelcheckpoint_copy``: what users do today: ``keras.callbacks.ModelCheckpoint`` to a
  local ``.keras`` file each epoch, then a callback that copies it into a mounted Drive folder,
  simulated as a local folder where every operation costs 50 ms (open, close, and each 8 MiB
  write: a FUSE mount like Colab's), on the training thread;
* ``backup_and_restore``: ``keras.callbacks.BackupAndRestore`` into a local folder (no Drive at
  all: what survives a restart of the same machine, not a lost runtime).

Targets (issue 23): ``cm_checkpoint`` wall time <= 1.10x ``plain``; its peak RSS growth above
``plain``'s <= 2x the model size.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from ..child import run_task
from ..common import (
    Child,
    ChildError,
    Emulator,
    MiB,
    Params,
    ratio,
    rotated,
    scratch,
    start_child,
)
from .base import contender, fmt, med, new_result, row, target

CONTENDERS = {
    "plain": "model.fit, no checkpoints",
    "cm_checkpoint": "cm.DriveCheckpoint to Drive (background upload)",
    "modelcheckpoint_copy": "ModelCheckpoint to local + copy to a mounted folder (50 ms/op)",
    "backup_and_restore": "keras BackupAndRestore, local folder only",
}
MOUNT_OP_S = 0.05
MOUNT_WRITE_BYTES = 8 * MiB


def sizes(params: Params) -> dict[str, Any]:
    if params.quick:
        return {"inputs": 32, "hidden": 128, "samples": 256, "batch_size": 64, "epochs": 2,
                "reps": 1}
    # 512 -> 5120 -> 5120 -> 10: 28.9 M float32 parameters, ~110 MiB
    return {"inputs": 512, "hidden": 5120, "samples": 2304, "batch_size": 64, "epochs": 10,
            "reps": 1}


def run(params: Params, work: Path) -> dict[str, Any]:
    sz = sizes(params)
    settings = {**sz, "latency_ms": params.latency_ms,
                "bandwidth_bytes_per_s": params.bandwidth_bytes_per_s,
                "total_bandwidth_bytes_per_s": params.total_bandwidth_bytes_per_s,
                "mount_op_ms": MOUNT_OP_S * 1000, "mount_write_bytes": MOUNT_WRITE_BYTES}
    result = new_result("checkpoint", f"Checkpoints while training a Keras model: "
                                      f"{sz['epochs']} epochs", settings)
    for key, label in CONTENDERS.items():
        contender(result, key, label)
    with scratch(work, "checkpoint") as w, Emulator(
        w, latency_ms=params.latency_ms, bandwidth=params.bandwidth_bytes_per_s,
        total_bandwidth=params.total_bandwidth_bytes_per_s, seed=params.seed,
    ) as emu:
        base = {"endpoint": emu.url, "key_file": str(emu.key_file), **sz}
        for rep in range(sz["reps"]):
            for key in rotated(list(CONTENDERS), rep):
                spec = {**base, "task": key, "dest": f"MyDrive/runs/bench-{rep}",
                        "local": str(w / f"local-{key}-{rep}")}
                _child(result, emu, w, params, key, spec, w / f"cache-{key}-{rep}")
    _summarise(result)
    return result


def _child(result: dict[str, Any], emu: Emulator, w: Path, params: Params, key: str,
           spec: dict[str, Any], cache: Path) -> None:
    entry = result["contenders"][key]
    try:
        r = _start({**spec, "contender": key}, emu.env(cache), w).wait(
            max(params.child_timeout_s, 1800.0))
    except ChildError as e:
        entry["errors"].append(str(e)[:4000])
        return
    reqs = emu.requests_between(*r["window"])
    r.update({"wall_s": r["op_s"], "requests": len(reqs),
              "upload_bytes": sum(q.request_bytes for q in reqs if q.path.startswith("/upload/")),
              "rss_growth_mib": r["growth_kib"] / 1024, "model_mib": r["model_bytes"] / MiB})
    if key == "cm_checkpoint" and r.get("last_epoch_on_drive") != spec["epochs"]:
        entry["errors"].append(f"the last checkpoint on Drive is epoch "
                               f"{r.get('last_epoch_on_drive')}, not {spec['epochs']}")
    entry["reps"].append(r)


def _start(spec: dict[str, Any], env: dict[str, str], work: Path) -> Child:
    return start_child(spec, env, work, module="benchmarks.scenarios.checkpoint")


def _summarise(result: dict[str, Any]) -> None:
    c = result["contenders"]
    for entry in c.values():
        entry["median"] = {k: med(entry, k) for k in
                           ("wall_s", "rss_growth_mib", "requests", "upload_bytes", "model_mib",
                            "uploaded", "skipped", "save_s")}
    m = {k: c[k]["median"] for k in c}
    plain = m["plain"]["wall_s"]
    r = result["ratios"] = {f"{k}_over_plain": ratio(m[k]["wall_s"], plain) for k in c if k != "plain"}
    model_mib = m["cm_checkpoint"]["model_mib"] or m["plain"]["model_mib"]
    growth = None
    if m["cm_checkpoint"]["rss_growth_mib"] is not None and m["plain"]["rss_growth_mib"] is not None:
        growth = m["cm_checkpoint"]["rss_growth_mib"] - m["plain"]["rss_growth_mib"]
    r["cm_rss_growth_above_plain_mib"] = growth
    r["cm_rss_growth_above_plain_over_model"] = ratio(growth, model_mib)
    target(result, "S8-overhead", "cm_checkpoint", "wall time <= 1.10x no checkpoints",
           r["cm_checkpoint_over_plain"], 1.10, higher_is_better=False, unit="x")
    target(result, "S8-rss", "cm_checkpoint", "peak RSS growth above plain <= 2x the model size",
           r["cm_rss_growth_above_plain_over_model"], 2.0, higher_is_better=False, unit="x model")
    for key in c:
        extra = ""
        if key == "cm_checkpoint" and m[key]["uploaded"] is not None:
            extra = (f"({m[key]['uploaded']:.0f} uploaded, {m[key]['skipped']:.0f} skipped while "
                     "uploads lagged)")
        row(result, key, wall_s=m[key]["wall_s"], rss_growth_mib=m[key]["rss_growth_mib"],
            requests=m[key]["requests"], extra=extra,
            throughput_text=f"{fmt(m[key]['save_s'], '.2f')} s/epoch saving on the training thread"
            if m[key]["save_s"] is not None else "—",
            ratio="" if key == "plain" else f"{fmt(r.get(f'{key}_over_plain'), '.3f')}x plain",
            target_ids=("S8-overhead", "S8-rss") if key == "cm_checkpoint" else ())
    result["notes"].append(
        f"model: {fmt(model_mib, '.0f')} MiB of float32 weights; the wall time is model.fit from "
        "call to return (DriveCheckpoint waits there for its last upload); RSS growth is the peak "
        "above the resident set right before fit; 'saving' is the time callbacks spent on the "
        "training thread per epoch")


# -- the contender side -------------------------------------------------------------------------

def _task(spec: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.child import Measure, _quiet_logs

    _quiet_logs()
    import keras
    import numpy as np

    key = spec["task"]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((spec["inputs"],)),
                              keras.layers.Dense(spec["hidden"], activation="relu"),
                              keras.layers.Dense(spec["hidden"], activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.SGD(0.001), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(spec["samples"], spec["inputs"])).astype("float32")
    y = rng.normal(size=(spec["samples"], 10)).astype("float32")
    model_bytes = sum(int(np.prod(w.shape)) * 4 for w in model.weights)
    local = Path(spec["local"])
    local.mkdir(parents=True, exist_ok=True)
    saving: list[float] = []

    class Timed(keras.callbacks.Callback):
        """Times the on_epoch_end of the callbacks it wraps (the training thread's cost)."""

        def __init__(self, inner: list[Any]) -> None:
            super().__init__()
            self.inner = inner

        def set_model(self, model: Any) -> None:
            super().set_model(model)
            for cb in self.inner:
                cb.set_model(model)

        def set_params(self, params: Any) -> None:
            for cb in self.inner:
                cb.set_params(params)

        def on_train_begin(self, logs: Any = None) -> None:
            for cb in self.inner:
                cb.on_train_begin(logs)

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            for cb in self.inner:
                cb.on_epoch_begin(epoch, logs)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            t0 = time.perf_counter()
            for cb in self.inner:
                cb.on_epoch_end(epoch, logs)
            saving.append(time.perf_counter() - t0)

        def on_train_end(self, logs: Any = None) -> None:
            for cb in self.inner:
                cb.on_train_end(logs)

    ckpt = None
    out: dict[str, Any] = {"model_bytes": model_bytes}
    if key == "plain":
        inner: list[Any] = []
    elif key == "cm_checkpoint":
        import colabmodels as cm

        cm.mount(interactive=False)
        ckpt = cm.DriveCheckpoint(spec["dest"], keep_last=2)
        inner = [ckpt]
    elif key == "modelcheckpoint_copy":
        mount = local / "mounted"
        mount.mkdir(exist_ok=True)
        target = local / "checkpoint.keras"

        class CopyToMount(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                _slow_copy(target, mount / target.name)

        inner = [keras.callbacks.ModelCheckpoint(str(target)), CopyToMount()]
    elif key == "backup_and_restore":
        inner = [keras.callbacks.BackupAndRestore(str(local / "backup"),
                                                  delete_checkpoint=False)]
    else:
        raise ValueError(key)
    callbacks = [Timed(inner)] if inner else []
    with Measure() as m:
        model.fit(x, y, epochs=spec["epochs"], batch_size=spec["batch_size"], verbose=0,
                  callbacks=callbacks)
    out.update(m.result)
    out["save_s"] = sum(saving) / len(saving) if saving else None
    if ckpt is not None:
        import colabmodels as cm

        out["uploaded"] = len(ckpt._up.uploaded)
        out["skipped"] = len(ckpt._up.skipped)
        versions = cm.versions(spec["dest"])
        out["versions_left"] = len(versions)
        out["last_epoch_on_drive"] = versions[-1].metadata.get("epoch") if versions else None
        out["checkpoint_bytes"] = sum(f["size"] for f in versions[-1].files) if versions else None
    return out


def _slow_copy(src: Path, dest: Path) -> None:
    """Copy ``src`` into a folder where every operation costs 50 ms (open, each 8 MiB write,
    close), as a FUSE mount of Drive does."""
    time.sleep(MOUNT_OP_S)  # open
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while True:
            block = fin.read(MOUNT_WRITE_BYTES)
            if not block:
                break
            time.sleep(MOUNT_OP_S)
            fout.write(block)
    time.sleep(MOUNT_OP_S)  # close (flush)
    os.utime(dest)


def main(argv: list[str]) -> int:
    return run_task(argv[0], _task)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
