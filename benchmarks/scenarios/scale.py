"""Scenario: folders at the scale of real datasets (issue 25).

One emulator (the run's latency, 20 ms per request in the full run) holds a folder of
``big_files`` files (300,000 in the full run) and a dataset of ``panel_images`` images
(100,000: 10 class folders), filled with ``FakeDrive.put_many`` in the orchestrator.
Contenders, each its own process (``python -m benchmarks.scenarios.scale SPEC.json``), signed in
before the clock starts:

* ``browser_first``: the Drive browser's model opens the big folder: the time until the first
  screen (100 rows) is in, and the list requests that took (target: <= 1 s, one request);
* ``browser_paging``: the same model presses **More** ``paging_pages`` times (1,000 rows a
  page): the slowest page, i.e. how long the browser is busy after a click (target <= 1 s);
* ``panel_first_counts``: ``DatasetPanelModel`` on the 100,000-image dataset: the time until a
  summary shows class counts (target <= 2 s), until the summary is complete, and how many
  summaries came in between (the panel filling in as pages arrive);
* ``walk_rss_small`` / ``walk_rss_big``: the dataset listing (``tree.walk_tree``) of a 20,000-
  and the 300,000-file folder: peak RSS growth of the process (listing memory must stay bounded:
  it is reported per file).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ..child import run_task
from ..common import Child, ChildError, Emulator, Params, scratch, start_child
from .base import contender, fmt, med, new_result, row, target

CONTENDERS = {
    "browser_first": "DriveBrowser model: first screen of the big folder",
    "browser_paging": "DriveBrowser model: More pressed, pages of 1,000",
    "panel_first_counts": "DatasetPanel model on the image dataset: first class counts",
    "walk_rss_small": "dataset listing (walk_tree) of the small folder",
    "walk_rss_big": "dataset listing (walk_tree) of the big folder",
}
BIG = "MyDrive/scale/big"
SMALL = "MyDrive/scale/small"
PANEL = "MyDrive/scale/panel"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60 + b"\xff\xd9"


def sizes(params: Params) -> dict[str, Any]:
    if params.quick:
        return {"big_files": 3000, "small_files": 1000, "panel_images": 2000, "classes": 10,
                "paging_pages": 2, "reps": 1}
    return {"big_files": int(params.extra.get("scale_big_files", 300_000)),
            "small_files": 20_000, "panel_images": 100_000, "classes": 10, "paging_pages": 10,
            "reps": int(params.extra.get("scale_reps", 2))}


def run(params: Params, work: Path) -> dict[str, Any]:
    sz = sizes(params)
    settings = {**sz, "latency_ms": params.latency_ms}
    result = new_result("scale", f"Folders of {sz['big_files']:,} files and a dataset of "
                                 f"{sz['panel_images']:,} images", settings)
    for key, label in CONTENDERS.items():
        contender(result, key, label)
    with scratch(work, "scale") as w, Emulator(
        w, latency_ms=0, bandwidth=params.bandwidth_bytes_per_s,
        total_bandwidth=params.total_bandwidth_bytes_per_s, seed=params.seed,
    ) as emu:
        fd = emu.fd
        t0 = time.perf_counter()
        fd.put_many(BIG, (f"img_{i:06d}.jpg" for i in range(sz["big_files"])), JPEG)
        settings["populate_big_s"] = time.perf_counter() - t0
        fd.put_many(SMALL, (f"img_{i:06d}.jpg" for i in range(sz["small_files"])), JPEG)
        per = sz["panel_images"] // sz["classes"]
        t0 = time.perf_counter()
        for c in range(sz["classes"]):
            fd.put_many(f"{PANEL}/class_{c:02d}", (f"img_{i:06d}.jpg" for i in range(per)), JPEG)
        settings["populate_panel_s"] = time.perf_counter() - t0
        settings["big_folder_id"] = fd.resolve(BIG)
        fd.latency_ms = params.latency_ms
        base = {"endpoint": emu.url, "key_file": str(emu.key_file), "sizes": sz,
                "big_id": settings["big_folder_id"]}
        for rep in range(sz["reps"]):
            for key in CONTENDERS:
                if key.startswith("walk_rss") and rep:
                    continue  # memory: one repetition is enough
                _child(result, emu, w, params, key, {**base, "task": key}, w / f"cache-{key}-{rep}")
    _summarise(result, sz)
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
    r["requests"] = len(reqs)
    r["list_requests"] = len([q for q in reqs if q.path == "/drive/v2/files" and q.method == "GET"])
    if "first_window" in r:
        r["first_requests"] = len([q for q in emu.requests_between(*r["first_window"])
                                   if q.path == "/drive/v2/files" and q.method == "GET"])
    r["wall_s"] = r["op_s"]
    r["rss_growth_mib"] = r["growth_kib"] / 1024 if "growth_kib" in r else None
    entry["reps"].append(r)


def _start(spec: dict[str, Any], env: dict[str, str], work: Path) -> Child:
    return start_child(spec, env, work, module="benchmarks.scenarios.scale")


def _summarise(result: dict[str, Any], sz: dict[str, Any]) -> None:
    c = result["contenders"]
    metrics = ("wall_s", "first_s", "first_requests", "requests", "list_requests", "worst_page_s",
               "counts_s", "complete_s", "updates", "rss_growth_mib", "files")
    for entry in c.values():
        entry["median"] = {k: med(entry, k) for k in metrics}
    m = {k: c[k]["median"] for k in c}
    target(result, "browser_first", "browser_first", "first rows <= 1 s", m["browser_first"]["first_s"],
           1.0, higher_is_better=False, unit="s")
    target(result, "browser_one_request", "browser_first", "first rows after 1 list request",
           m["browser_first"]["first_requests"], 1, higher_is_better=False)
    target(result, "browser_paging", "browser_paging", "slowest page <= 1 s",
           m["browser_paging"]["worst_page_s"], 1.0, higher_is_better=False, unit="s")
    target(result, "panel_counts", "panel_first_counts", "first class counts <= 2 s",
           m["panel_first_counts"]["counts_s"], 2.0, higher_is_better=False, unit="s")
    small, big = m["walk_rss_small"], m["walk_rss_big"]
    per_small = (small["rss_growth_mib"] or 0) * 1024 / sz["small_files"] if small["rss_growth_mib"] else None
    per_big = (big["rss_growth_mib"] or 0) * 1024 / sz["big_files"] if big["rss_growth_mib"] else None
    result["ratios"] = {"rss_per_file_kib_small": per_small, "rss_per_file_kib_big": per_big,
                        "rss_per_file_big_over_small": (per_big / per_small)
                        if per_small and per_big else None}
    target(result, "walk_rss_bounded", "walk_rss_big",
           "listing memory per file at 300k <= 1.5x that at 20k (bounded, linear)",
           result["ratios"]["rss_per_file_big_over_small"], 1.5, higher_is_better=False)
    row(result, "browser_first", wall_s=m["browser_first"]["wall_s"],
        throughput_text=f"first rows {fmt(m['browser_first']['first_s'], '.3f', ' s')} after "
                        f"{fmt(m['browser_first']['first_requests'], '.0f')} list request(s)",
        requests=m["browser_first"]["requests"], target_ids=("browser_first", "browser_one_request"))
    row(result, "browser_paging", wall_s=m["browser_paging"]["wall_s"],
        throughput_text=f"slowest page {fmt(m['browser_paging']['worst_page_s'], '.3f', ' s')}",
        requests=m["browser_paging"]["list_requests"], target_ids=("browser_paging",))
    p = m["panel_first_counts"]
    row(result, "panel_first_counts", wall_s=p["complete_s"],
        throughput_text=f"counts at {fmt(p['counts_s'], '.2f', ' s')}, complete at "
                        f"{fmt(p['complete_s'], '.2f', ' s')}, {fmt(p['updates'], '.0f')} updates",
        requests=p["requests"], target_ids=("panel_counts",))
    for key, per in (("walk_rss_small", per_small), ("walk_rss_big", per_big)):
        row(result, key, wall_s=m[key]["wall_s"], rss_growth_mib=m[key]["rss_growth_mib"],
            throughput_text=f"{fmt(m[key]['files'], ',.0f')} files, {fmt(per, '.2f', ' KiB')}/file",
            requests=m[key]["requests"],
            target_ids=("walk_rss_bounded",) if key == "walk_rss_big" else ())
    s = result["settings"]
    result["notes"].append(f"emulator: {s['latency_ms']:.0f} ms per request; populating with "
                           f"FakeDrive.put_many took {fmt(s.get('populate_big_s'), '.1f', ' s')} for "
                           f"{sz['big_files']:,} files and {fmt(s.get('populate_panel_s'), '.1f', ' s')} "
                           f"for {sz['panel_images']:,} images")


# -- the contender side -------------------------------------------------------------------------

def _task(spec: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.child import Measure, _quiet_logs

    _quiet_logs()
    import colabmodels as cm

    cm.mount(interactive=False)
    key, sz = spec["task"], spec["sizes"]
    if key in ("browser_first", "browser_paging"):
        from colabmodels.browse import Place
        from colabmodels.widgets.browser_model import BrowserModel

        model = BrowserModel("MyDrive", page_size=100 if key == "browser_first" else 1000)
        if not model.wait(120) or model.error is not None:
            raise RuntimeError(f"the browser did not start: {model.error}")
        place = Place("folder", "big", BIG, id=spec["big_id"])
        w0, t0 = time.time(), time.perf_counter()
        model.open(place)
        model.wait(600)
        first_s, w1 = time.perf_counter() - t0, time.time()
        worst = first_s
        pages = 0
        while key == "browser_paging" and pages < sz["paging_pages"] and model.more():
            t1 = time.perf_counter()
            model.wait(600)
            worst = max(worst, time.perf_counter() - t1)
            pages += 1
        op_s, w2 = time.perf_counter() - t0, time.time()
        if model.error is not None:
            raise RuntimeError(str(model.error))
        rows = len(model.rows)
        model.close()
        return {"op_s": op_s, "first_s": first_s, "worst_page_s": worst, "rows": rows,
                "window": [w0, w2], "first_window": [w0, w1]}
    if key == "panel_first_counts":
        import threading

        from colabmodels.widgets.dataset_panel_model import DatasetPanelModel

        seen: dict[str, float] = {}
        updates = [0]
        done = threading.Event()
        w0, t0 = time.time(), time.perf_counter()
        holder: dict[str, Any] = {}

        def on(event: str) -> None:
            model = holder.get("model")
            summary = getattr(model, "summary", None)
            if event != "summary" or summary is None:
                return
            updates[0] += 1
            now = time.perf_counter() - t0
            if sum(summary.counts.values()) and "counts" not in seen:
                seen["counts"] = now
            if summary.complete and "complete" not in seen:
                seen["complete"] = now
                done.set()

        model = DatasetPanelModel(PANEL, max_thumbnails=0)
        holder["model"] = model
        model.observe(on)
        on("summary")  # a summary that arrived before the observer
        done.wait(900)
        op_s, w1 = time.perf_counter() - t0, time.time()
        total = sum(model.summary.counts.values()) if model.summary else 0
        model.close()
        if total != sz["panel_images"]:
            raise RuntimeError(f"the panel counted {total} images, expected {sz['panel_images']}")
        return {"op_s": op_s, "counts_s": seen.get("counts"), "complete_s": seen.get("complete"),
                "updates": updates[0], "window": [w0, w1]}
    from colabmodels.datasets.listing import resolve_folder
    from colabmodels.tree import walk_tree

    folder = BIG if key == "walk_rss_big" else SMALL
    backend, root = resolve_folder(folder)
    with Measure() as m:
        tree = walk_tree(backend, root)
        files = len(tree.file_nodes())
    expected = sz["big_files"] if key == "walk_rss_big" else sz["small_files"]
    if files != expected:
        raise RuntimeError(f"listed {files} files, expected {expected}")
    return {**m.result, "files": files}


def main(argv: list[str]) -> int:
    return run_task(argv[0], _task, name="scale")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
