"""Scenario: no byte sent twice (issue 25).

The run's emulator (20 ms latency, 16 MiB/s per connection, 128 MiB/s in total in the full run).
Contenders, each its own process (``python -m benchmarks.scenarios.nobytetwice SPEC.json``):

* ``save_v1``: ``cm.save_model`` of a torch state dict (``weights_mib`` MiB) to a new
  destination: the upload everyone pays once;
* ``save_v2_same``: the same state dict saved again as ``@v2``: Drive copies the unchanged file
  on its side (target: < 1 % of the weights uploaded);
* ``load_v2_after_v1``: a new process loads ``@v1`` and then ``@v2``: the media bytes of the
  ``@v2`` load (target: 0 weight bytes; only its manifest);
* ``publish_parallel`` / ``publish_serial``: a 20-file version (a SavedModel's shape:
  ``variables/variables.data-000NN-of-00020``, ``part_mib`` MiB each, plus ``saved_model.pb``)
  uploaded by ``registry.publish`` with its default parallelism, and with ``parallel=1`` (one
  connection); ratio serial/parallel (target >= 3x).
"""

from __future__ import annotations

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
    "save_v1": "cm.save_model, first version (uploads the weights)",
    "save_v2_same": "cm.save_model, same weights again as @v2 (Drive-side copy)",
    "load_v2_after_v1": "cm.load_model @v2 after @v1 in a new process",
    "publish_parallel": "20-file version, files uploaded in parallel",
    "publish_serial": "20-file version over one connection (parallel=1)",
}


def sizes(params: Params) -> dict[str, Any]:
    if params.quick:
        return {"weights_mib": 4, "parts": 20, "part_mib": 0.25, "reps": 1}
    return {"weights_mib": 64, "parts": 20, "part_mib": 4,
            "reps": int(params.extra.get("nobytetwice_reps", 2))}


def run(params: Params, work: Path) -> dict[str, Any]:
    sz = sizes(params)
    settings = {**sz, "latency_ms": params.latency_ms,
                "bandwidth_bytes_per_s": params.bandwidth_bytes_per_s,
                "total_bandwidth_bytes_per_s": params.total_bandwidth_bytes_per_s}
    result = new_result("nobytetwice", "No byte sent twice: equal versions, parallel multi-file "
                                       "saves", settings)
    for key, label in CONTENDERS.items():
        contender(result, key, label)
    with scratch(work, "nobytetwice") as w, Emulator(
        w, latency_ms=params.latency_ms, bandwidth=params.bandwidth_bytes_per_s,
        total_bandwidth=params.total_bandwidth_bytes_per_s, seed=params.seed,
    ) as emu:
        base = {"endpoint": emu.url, "key_file": str(emu.key_file), "sizes": sz}
        for rep in range(sz["reps"]):
            dest = f"MyDrive/bench/same-{rep}"
            for key in ("save_v1", "save_v2_same", "load_v2_after_v1"):  # in this order
                _child(result, emu, w, params, key, {**base, "task": key, "dest": dest},
                       w / f"cache-{key}-{rep}")
            for key in rotated(["publish_parallel", "publish_serial"], rep):
                _child(result, emu, w, params, key,
                       {**base, "task": key, "dest": f"MyDrive/bench/{key}-{rep}"},
                       w / f"cache-{key}-{rep}")
    _summarise(result, sz)
    return result


def _child(result: dict[str, Any], emu: Emulator, w: Path, params: Params, key: str,
           spec: dict[str, Any], cache: Path) -> None:
    entry = result["contenders"][key]
    try:
        r = _start({**spec, "contender": key}, emu.env(cache), w).wait(params.child_timeout_s)
    except ChildError as e:
        entry["errors"].append(str(e)[:4000])
        return
    reqs = emu.requests_between(*r["window"])
    r.update({"wall_s": r["op_s"], "requests": len(reqs),
              "upload_bytes": sum(q.request_bytes for q in reqs if q.path.startswith("/upload/")),
              "copies": len([q for q in reqs if q.method == "POST" and q.path.endswith("/copy")]),
              "media_bytes": sum(q.bytes for q in reqs if q.query.get("alt") == "media")})
    if "v2_window" in r:
        v2 = emu.requests_between(*r["v2_window"])
        r["v2_media_bytes"] = sum(q.bytes for q in v2 if q.query.get("alt") == "media")
    entry["reps"].append(r)


def _start(spec: dict[str, Any], env: dict[str, str], work: Path) -> Child:
    return start_child(spec, env, work, module="benchmarks.scenarios.nobytetwice")


def _summarise(result: dict[str, Any], sz: dict[str, Any]) -> None:
    c = result["contenders"]
    for entry in c.values():
        entry["median"] = {k: med(entry, k) for k in ("wall_s", "requests", "upload_bytes",
                                                      "copies", "media_bytes", "v2_media_bytes")}
    m = {k: c[k]["median"] for k in c}
    weights = sz["weights_mib"] * MiB
    up2 = m["save_v2_same"]["upload_bytes"]
    r = result["ratios"] = {
        "v2_upload_share": None if up2 is None else up2 / weights,
        "v2_load_media_share": None if m["load_v2_after_v1"]["v2_media_bytes"] is None
        else m["load_v2_after_v1"]["v2_media_bytes"] / weights,
        "serial_over_parallel": ratio(m["publish_serial"]["wall_s"], m["publish_parallel"]["wall_s"]),
        "v1_over_v2_save_time": ratio(m["save_v1"]["wall_s"], m["save_v2_same"]["wall_s"]),
    }
    target(result, "v2_upload", "save_v2_same", "< 1% of the weights uploaded",
           r["v2_upload_share"], 0.01, higher_is_better=False)
    target(result, "v2_load", "load_v2_after_v1", "0 weight bytes downloaded for @v2 "
           "(< 1% of the weights: only the manifest)", r["v2_load_media_share"], 0.01,
           higher_is_better=False)
    target(result, "parallel", "publish_parallel", ">= 3x faster than one connection",
           r["serial_over_parallel"], 3.0, higher_is_better=True)
    for key in c:
        mm = m[key]
        text = (f"uploaded {fmt((mm['upload_bytes'] or 0) / MiB, '.2f', ' MiB')}, "
                f"{fmt(mm['copies'], '.0f')} Drive-side copies")
        if key == "load_v2_after_v1":
            text = f"@v2 media {fmt((mm['v2_media_bytes'] or 0) / 1024, '.1f', ' KiB')}"
        rel = {"save_v2_same": f"{fmt(r['v1_over_v2_save_time'], '.1f')}x faster than v1",
               "publish_parallel": f"{fmt(r['serial_over_parallel'], '.1f')}x one connection"}.get(key, "")
        row(result, key, wall_s=mm["wall_s"], throughput_text=text, requests=mm["requests"],
            ratio=rel, target_ids={"save_v2_same": ("v2_upload",),
                                   "load_v2_after_v1": ("v2_load",),
                                   "publish_parallel": ("parallel",)}.get(key, ()))
    result["notes"].append(
        f"weights {sz['weights_mib']} MiB (torch state dict); the 20-file version is "
        f"{sz['parts']} x {sz['part_mib']} MiB plus saved_model.pb, uploaded by registry.publish "
        "(what cm.save_model runs after serialising)")


# -- the contender side -------------------------------------------------------------------------

def _state(sz: dict[str, Any]) -> Any:
    import torch

    n = int(sz["weights_mib"] * MiB // 4)
    g = torch.Generator().manual_seed(1)
    return {"w": torch.rand(n, generator=g)}


def _task(spec: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.child import Measure, _quiet_logs

    _quiet_logs()
    import colabmodels as cm

    cm.mount(interactive=False)
    key, sz, dest = spec["task"], spec["sizes"], spec["dest"]
    if key in ("save_v1", "save_v2_same"):
        state = _state(sz)
        with Measure() as m:
            info = cm.save_model(state, dest, progress=False)
        if info.version != (1 if key == "save_v1" else 2):
            raise RuntimeError(f"saved v{info.version}")
        return m.result
    if key == "load_v2_after_v1":
        import torch

        with Measure() as m:
            v1 = cm.load_model(f"{dest}@v1", progress=False)
            w1 = time.time()
            v2 = cm.load_model(f"{dest}@v2", progress=False)
            w2 = time.time()
        if not torch.equal(v1["w"], v2["w"]):
            raise RuntimeError("@v2 differs from @v1")
        return {**m.result, "v2_window": [w1, w2]}
    import tempfile

    from colabmodels.formats.info import SavedFiles
    from colabmodels.refs import parse_ref
    from colabmodels.registry import publish

    parts = sz["parts"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = [f"variables/variables.data-{i:05d}-of-{parts:05d}" for i in range(parts)]
        (folder / "variables").mkdir()
        for i, name in enumerate(names):
            (folder / name).write_bytes(bytes([i % 251]) * int(sz["part_mib"] * MiB))
        (folder / "saved_model.pb").write_bytes(b"\x08\x01" * 1000)
        saved = SavedFiles(format="tf-savedmodel", framework="tensorflow", framework_version="0",
                           files=[Path(p) for p in sorted([*names, "saved_model.pb"])],
                           model_path=Path("."))
        with Measure() as m:
            publish(folder, saved, parse_ref(dest), progress=False,
                    parallel=1 if key == "publish_serial" else None)
    return m.result


def main(argv: list[str]) -> int:
    return run_task(argv[0], _task, name="nobytetwice")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
