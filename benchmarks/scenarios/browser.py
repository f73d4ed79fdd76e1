"""Scenario 6: open a Drive folder of many files in a file picker.

What a user waits for is the first rows. The folder (``listing_files`` files: 20,000 in the full
run, at 20 ms latency per request) is populated in the orchestrator with ``FakeDrive.put``.
Contenders, each its own process, signed in before the clock starts:

* ``cm_browser``: the Drive browser's model (``BrowserModel.open(folder)``), timed until the
  first screen (one page of 100 rows, folders first, sorted by Drive) is in; its requests are
  the ones the emulator logged in that window;
* ``cm_browser_all``: the same model with pages of 1,000 and **More** pressed until the whole
  folder is listed (what scrolling to the end costs; the first rows arrive after one request);
* ``pydrive2_getlist``: a picker built on PyDrive2, ``drive.ListFile({"q": "'ID' in parents and
  trashed=false"}).GetList()``: nothing can be shown before it returns the whole folder.

``python -m benchmarks.scenarios.browser SPEC.json`` is the contender side (the harness's
``benchmarks.child`` protocol: it writes its numbers to ``spec["result_file"]``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ..child import run_task
from ..common import Child, ChildError, Emulator, Params, ratio, rotated, scratch, start_child
from .base import contender, fmt, med, new_result, row

CONTENDERS = {
    "cm_browser": "colabmodels DriveBrowser model: first screen (100 rows)",
    "cm_browser_all": "colabmodels DriveBrowser model: pages of 1,000 to the end",
    "pydrive2_getlist": "PyDrive2 ListFile({q}).GetList() (a picker built on it)",
}
FOLDER = "MyDrive/datasets/many"


def run(params: Params, work: Path) -> dict[str, Any]:
    n = params.listing_files
    settings = {"files": n, "latency_ms": params.latency_ms, "reps": params.listing_reps,
                "first_screen_rows": 100}
    result = new_result("browser", f"Opening a Drive folder of {n:,} files in a picker", settings)
    for key, label in CONTENDERS.items():
        contender(result, key, label)
    with scratch(work, "browser") as w, Emulator(
        w, latency_ms=params.latency_ms, bandwidth=params.bandwidth_bytes_per_s,
        total_bandwidth=params.total_bandwidth_bytes_per_s, seed=params.seed,
    ) as emu:
        folder_id = emu.fd.mkdir(FOLDER)
        t0 = time.perf_counter()
        for i in range(n):
            emu.fd.put(f"{FOLDER}/img_{i:06d}.jpg", b"\xff\xd8\xff\xe0" + i.to_bytes(8, "little"))
        settings["populate_s"] = time.perf_counter() - t0
        settings["folder_id"] = folder_id
        for rep in range(params.listing_reps):
            for key in rotated(list(CONTENDERS), rep):
                _one(result, emu, w, params, key, rep, folder_id, n)
    _summarise(result)
    return result


def _one(result: dict[str, Any], emu: Emulator, w: Path, params: Params, key: str, rep: int,
         folder_id: str, n: int) -> None:
    entry = result["contenders"][key]
    spec = {"task": "browser", "contender": key, "folder_id": folder_id, "endpoint": emu.url,
            "key_file": str(emu.key_file), "files": n}
    try:
        r = _start(spec, emu.env(w / "cache"), w).wait(params.child_timeout_s)
    except ChildError as e:
        entry["errors"].append(f"rep {rep}: {e}")
        return
    lists = [q for q in emu.requests_between(*r["window"])
             if q.path == "/drive/v2/files" and q.method == "GET"]
    first = [q for q in emu.requests_between(*r["first_window"])
             if q.path == "/drive/v2/files" and q.method == "GET"]
    r.update({"rep": rep, "wall_s": r["op_s"], "requests": len(emu.requests_between(*r["window"])),
              "list_requests": len(lists), "first_screen_requests": len(first)})
    expected = 100 if key == "cm_browser" else n
    if r["count"] != min(expected, n):
        entry["errors"].append(f"rep {rep}: showed {r['count']} rows, expected {min(expected, n)}")
    entry["reps"].append(r)


def _start(spec: dict[str, Any], env: dict[str, str], work: Path) -> Child:
    return start_child(spec, env, work, module="benchmarks.scenarios.browser")


def _summarise(result: dict[str, Any]) -> None:
    c = result["contenders"]
    for entry in c.values():
        entry["median"] = {m: med(entry, m) for m in
                           ("wall_s", "first_s", "requests", "list_requests", "first_screen_requests")}
    m = {k: c[k]["median"] for k in c}
    result["ratios"] = {
        "getlist_over_browser_first_rows": ratio(m["pydrive2_getlist"]["first_s"],
                                                 m["cm_browser"]["first_s"]),
        "getlist_over_browser_all": ratio(m["pydrive2_getlist"]["wall_s"], m["cm_browser_all"]["wall_s"]),
    }
    r = result["ratios"]
    for key in c:
        first, screen = m[key]["first_s"], m[key]["first_screen_requests"]
        rel = {"cm_browser": "1.00",
               "cm_browser_all": f"whole folder {fmt(ratio(m[key]['wall_s'], m['pydrive2_getlist']['wall_s']), '.2f')}x GetList",
               "pydrive2_getlist": f"first rows {fmt(r['getlist_over_browser_first_rows'], '.1f')}x later"}[key]
        row(result, key, wall_s=m[key]["wall_s"],
            throughput_text=f"first rows {fmt(first, '.3f', ' s')} after "
                            f"{fmt(screen, '.0f')} list request(s)",
            requests=m[key]["requests"], ratio=rel)
    result["notes"].append("first rows = the time until a picker can show anything; GetList "
                           "returns only when the whole folder is listed")
    result["notes"].append(f"populating {result['settings']['files']:,} files with FakeDrive.put "
                           f"took {fmt(result['settings'].get('populate_s'), '.1f', ' s')}")


# -- the contender side -------------------------------------------------------------------------

def _task(spec: dict[str, Any]) -> dict[str, Any]:
    key, fid = spec["contender"], spec["folder_id"]
    if key.startswith("cm_browser"):
        import colabmodels as cm
        from colabmodels.browse import Place
        from colabmodels.widgets.browser_model import BrowserModel

        cm.mount(interactive=False)
        model = BrowserModel("MyDrive", page_size=100 if key == "cm_browser" else 1000)
        if not model.wait(120) or model.error is not None:
            raise RuntimeError(f"the browser did not start: {model.error}")
        place = Place("folder", "many", FOLDER, id=fid)
        w0, t0 = time.time(), time.perf_counter()
        model.open(place)
        model.wait(600)
        first_s, w1 = time.perf_counter() - t0, time.time()
        if key == "cm_browser_all":
            while model.more():
                model.wait(600)
        op_s, w2 = time.perf_counter() - t0, time.time()
        if model.error is not None:
            raise RuntimeError(str(model.error))
        count = len(model.rows)
        model.close()
    else:
        from colabmodels.testing.fakedrive.client import pydrive2_drive

        drive = pydrive2_drive(spec["endpoint"], spec["key_file"])
        drive.GetAbout()
        w0, t0 = time.time(), time.perf_counter()
        items = drive.ListFile({"q": f"'{fid}' in parents and trashed=false"}).GetList()
        op_s, w2 = time.perf_counter() - t0, time.time()
        first_s, w1, count = op_s, w2, len(items)
    return {"op_s": op_s, "first_s": first_s, "window": [w0, w2], "first_window": [w0, w1],
            "count": count}


def main(argv: list[str]) -> int:
    import logging

    logging.getLogger("googleapiclient").setLevel(logging.ERROR)
    return run_task(argv[0], _task, name="browser")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
