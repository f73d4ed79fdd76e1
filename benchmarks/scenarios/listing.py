"""Scenario 5: list a Drive folder of many files.

The folder is populated in the orchestrator with ``FakeDrive.put`` (in-process, no HTTP; the
time it took is recorded). Contenders, each its own process, list the folder by id:

* ``cm_lister``: ``api.backend_for(ref).list(ref)`` iterated to the end (pages of 1000, a
  ``fields=`` selection); time to the first item and to the last;
* ``pydrive2_getlist``: ``drive.ListFile({"q": "'ID' in parents and trashed=false"}).GetList()``
  (PyDrive2 then pages 1000 at a time through everything);
* ``pydrive2_getlist_maxresults``: ``drive.ListFile({"q": ..., "maxResults": 1000}).GetList()``.
  With ``maxResults`` set, PyDrive2's ``GetList`` makes ONE call and returns the first page only
  (``pydrive2/apiattr.py``, ``ApiResourceList.GetList``), so this is a first-page time, and its
  count is checked against ``min(1000, files)``;
* ``pydrive2_iter``: ``ListFile({"q": ..., "maxResults": 1000})`` iterated page by page (time to
  the first page and to the end).

Every contender signs in before its clock starts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..common import ChildError, Emulator, Params, ratio, rotated, run_child, scratch
from .base import contender, fmt, med, new_result, row

CONTENDERS = {
    "cm_lister": "colabmodels DriveBackend.list",
    "pydrive2_getlist": "PyDrive2 ListFile({q}).GetList()",
    "pydrive2_getlist_maxresults": "PyDrive2 ListFile({q, maxResults: 1000}).GetList() "
                                   "(first page only)",
    "pydrive2_iter": "PyDrive2 ListFile({q, maxResults: 1000}) iterator",
}


def run(params: Params, work: Path) -> dict[str, Any]:
    n = params.listing_files
    settings = {"files": n, "latency_ms": params.latency_ms,
                "bandwidth_bytes_per_s": params.bandwidth_bytes_per_s,
                "total_bandwidth_bytes_per_s": params.total_bandwidth_bytes_per_s,
                "reps": params.listing_reps}
    result = new_result("listing", f"Listing a Drive folder of {n:,} files", settings)
    for key, label in CONTENDERS.items():
        contender(result, key, label)
    with scratch(work, "listing") as w, Emulator(
        w, latency_ms=params.latency_ms, bandwidth=params.bandwidth_bytes_per_s,
        total_bandwidth=params.total_bandwidth_bytes_per_s, seed=params.seed,
    ) as emu:
        folder = "MyDrive/datasets/many"
        folder_id = emu.fd.mkdir(folder)
        t0 = time.perf_counter()
        for i in range(n):
            emu.fd.put(f"{folder}/img_{i:06d}.jpg", b"\xff\xd8\xff\xe0" + i.to_bytes(8, "little"))
        settings["populate_s"] = time.perf_counter() - t0
        settings["populate_method"] = "FakeDrive.put in-process, one call per file"
        settings["folder_id"] = folder_id
        for rep in range(params.listing_reps):
            for key in rotated(list(CONTENDERS), rep):
                _one(result, emu, w, params, key, rep, folder_id, n)
    _summarise(result)
    return result


def _one(result: dict[str, Any], emu: Emulator, w: Path, params: Params, key: str, rep: int,
         folder_id: str, n: int) -> None:
    entry = result["contenders"][key]
    spec = {"task": "list", "contender": key, "folder_id": folder_id, "endpoint": emu.url,
            "key_file": str(emu.key_file)}
    try:
        r = run_child(spec, emu.env(w / "cache"), w, params.child_timeout_s)
    except ChildError as e:
        entry["errors"].append(f"rep {rep}: {e}")
        return
    reqs = emu.requests_between(*r["window"])
    lists = [q for q in reqs if q.path == "/drive/v2/files" and q.method == "GET"]
    r.update({"rep": rep, "wall_s": r["op_s"], "requests": len(reqs),
              "list_requests": len(lists), "response_bytes": sum(q.bytes for q in lists),
              "rss_growth_mib": r["growth_kib"] / 1024,
              "files_per_s": r["count"] / r["op_s"] if r["op_s"] else None})
    expected = min(1000, n) if key == "pydrive2_getlist_maxresults" else n
    if key == "pydrive2_getlist_maxresults" and r["first_s"] is None:
        r["first_s"] = r["op_s"]
    if r["count"] != expected:
        entry["errors"].append(f"rep {rep}: listed {r['count']} files, expected {expected}")
    entry["reps"].append(r)


def _summarise(result: dict[str, Any]) -> None:
    c = result["contenders"]
    for entry in c.values():
        entry["median"] = {m: med(entry, m) for m in
                           ("wall_s", "first_s", "requests", "list_requests", "response_bytes",
                            "rss_growth_mib", "files_per_s")}
    m = {k: c[k]["median"] for k in c}
    result["ratios"] = {
        "getlist_over_cm_full": ratio(m["pydrive2_getlist"]["wall_s"], m["cm_lister"]["wall_s"]),
        "iter_over_cm_full": ratio(m["pydrive2_iter"]["wall_s"], m["cm_lister"]["wall_s"]),
        "iter_over_cm_first_page": ratio(m["pydrive2_iter"]["first_s"], m["cm_lister"]["first_s"]),
        "getlist_maxresults_over_cm_first_page": ratio(m["pydrive2_getlist_maxresults"]["wall_s"],
                                                       m["cm_lister"]["first_s"]),
        "cm_response_bytes_over_pydrive2": ratio(m["cm_lister"]["response_bytes"],
                                                 m["pydrive2_getlist"]["response_bytes"]),
    }
    r = result["ratios"]
    for key in c:
        first = m[key]["first_s"]
        rel = ""
        if key == "cm_lister":
            rel = "1.00"
        elif key == "pydrive2_getlist":
            rel = f"{fmt(r['getlist_over_cm_full'], '.2f')}x colabmodels (full list)"
        elif key == "pydrive2_getlist_maxresults":
            rel = (f"{fmt(r['getlist_maxresults_over_cm_first_page'], '.2f')}x colabmodels' first "
                   "page; lists only the first 1,000")
        else:
            rel = (f"{fmt(r['iter_over_cm_full'], '.2f')}x colabmodels (full list), "
                   f"{fmt(r['iter_over_cm_first_page'], '.2f')}x (first page)")
        row(result, key, wall_s=m[key]["wall_s"],
            throughput_text=f"{fmt(m[key]['files_per_s'], ',.0f')} files/s; first page "
                            f"{fmt(first, '.3f', ' s')}",
            rss_growth_mib=m[key]["rss_growth_mib"],
            requests=m[key]["requests"], ratio=rel)
    result["notes"].append("no target for this scenario; wall time = full list (first page for "
                           "GetList with maxResults, which returns nothing more)")
    result["notes"].append(f"populating {result['settings']['files']:,} files with FakeDrive.put "
                           f"took {fmt(result['settings'].get('populate_s'), '.1f', ' s')}")

