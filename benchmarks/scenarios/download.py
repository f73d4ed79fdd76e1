"""Scenario 1: download one large model file, cold cache, three ways.

* ``cm_fetch``: ``cm.fetch(file_id)`` into an empty cache (a new cache folder every repetition):
  one metadata request, parallel ranged GETs, md5 verification, atomic move into the cache.
* ``pydrive2``: ``drive.CreateFile({"id": ...}).GetContentFile(path)`` (PyDrive2's own download:
  ``MediaIoBaseDownload`` in 100 MiB requests on one connection).
* ``bytesio``: the notebook recipe: ``MediaIoBaseDownload(io.BytesIO(), files().get_media(...))``
  on a googleapiclient service, then ``open(path, "wb").write(fh.getvalue())``.

Each contender is its own process; the orchestrator hosts the emulator (latency, a cap per
connection and a cap for the whole server). Repetitions are interleaved with the contender
order rotated each time. Timed: the download call only (sign-in happens before, untimed, for
every contender); throughput = file size / that time.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..common import (
    ChildError,
    Emulator,
    MiB,
    Params,
    media_bytes,
    median,
    ratio,
    rotated,
    run_child,
    scratch,
    write_payload,
)
from .base import contender, fmt, med, new_result, row, target

CONTENDERS = {
    "cm_fetch": "colabmodels cm.fetch (cold cache)",
    "pydrive2": "PyDrive2 GetContentFile",
    "bytesio": "MediaIoBaseDownload into BytesIO + write",
}

RSS_LIMIT_MIB = 64.0
SPEEDUP_TARGET = 4.0
CAP_SHARE_TARGET = 0.85


def run(params: Params, work: Path) -> dict[str, Any]:
    size = params.download_bytes
    settings = {"file_bytes": size, "latency_ms": params.latency_ms,
                "bandwidth_bytes_per_s": params.bandwidth_bytes_per_s,
                "total_bandwidth_bytes_per_s": params.total_bandwidth_bytes_per_s,
                "reps": params.download_reps}
    result = new_result("download", f"Download of a {size / MiB:.0f} MiB model file", settings)
    for key, label in CONTENDERS.items():
        contender(result, key, label)
    with scratch(work, "download") as w, Emulator(
        w, latency_ms=params.latency_ms, bandwidth=params.bandwidth_bytes_per_s,
        total_bandwidth=params.total_bandwidth_bytes_per_s, seed=params.seed,
    ) as emu:
        src = w / "payload.bin"
        md5 = write_payload(src, size, seed=params.seed + 1)
        fid = emu.fd.put("MyDrive/models/big-model.bin", src)
        src.unlink()
        settings["file_id"] = fid
        for rep in range(params.download_reps):
            for key in rotated(list(CONTENDERS), rep):
                _one(result, emu, w, params, key, rep, fid, md5)
    _summarise(result, params)
    return result


def _one(result: dict[str, Any], emu: Emulator, w: Path, params: Params, key: str, rep: int,
         fid: str, md5: str) -> None:
    entry = result["contenders"][key]
    cache = w / f"cache-{rep}-{key}"
    out = w / f"out-{rep}-{key}.bin"
    spec = {"task": "download", "contender": key, "file_id": fid, "out": str(out),
            "endpoint": emu.url, "key_file": str(emu.key_file), "verify_md5": md5}
    try:
        r = run_child(spec, emu.env(cache), w, params.child_timeout_s)
    except ChildError as e:
        entry["errors"].append(f"rep {rep}: {e}")
        return
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        out.unlink(missing_ok=True)
    reqs = emu.requests_between(*r["window"])
    media = [q for q in reqs if q.query.get("alt") == "media"]
    r.update({
        "rep": rep,
        "wall_s": r["op_s"],
        "throughput_mib_s": params.download_bytes / MiB / r["op_s"],
        "rss_growth_mib": r["growth_kib"] / 1024,
        "requests": len(reqs),
        "media_requests": len(media),
        "media_bytes": media_bytes(reqs, fid),
        "connections": len({q.connection for q in media}),
    })
    if r.get("size") != params.download_bytes or r.get("md5_ok") is False:
        entry["errors"].append(f"rep {rep}: wrong content (size {r.get('size')}, md5 ok "
                               f"{r.get('md5_ok')})")
    entry["reps"].append(r)


def _summarise(result: dict[str, Any], params: Params) -> None:
    c = result["contenders"]
    for entry in c.values():
        entry["median"] = {m: med(entry, m) for m in
                           ("wall_s", "throughput_mib_s", "rss_growth_mib", "requests",
                            "media_requests", "connections", "process_s")}
    tput = {k: c[k]["median"]["throughput_mib_s"] for k in c}
    cap = params.total_bandwidth_bytes_per_s / MiB
    per_conn = params.bandwidth_bytes_per_s / MiB
    paired = _paired(c["cm_fetch"]["reps"], c["pydrive2"]["reps"])
    result["ratios"] = {
        "cm_vs_getcontentfile_throughput": ratio(tput["cm_fetch"], tput["pydrive2"]),
        "cm_vs_getcontentfile_throughput_paired_median": median(paired),
        "cm_vs_bytesio_throughput": ratio(tput["cm_fetch"], tput["bytesio"]),
        "cm_share_of_total_cap": ratio(tput["cm_fetch"], cap),
        "getcontentfile_share_of_connection_cap": ratio(tput["pydrive2"], per_conn),
        "bytesio_rss_growth_over_file_size": ratio(c["bytesio"]["median"]["rss_growth_mib"],
                                                   params.download_bytes / MiB),
        "cm_rss_growth_over_file_size": ratio(c["cm_fetch"]["median"]["rss_growth_mib"],
                                              params.download_bytes / MiB),
    }
    r = result["ratios"]
    target(result, "S1-speedup", "cm_fetch", f">= {SPEEDUP_TARGET:.0f}x GetContentFile throughput",
           r["cm_vs_getcontentfile_throughput"], SPEEDUP_TARGET, higher_is_better=True, unit="x")
    target(result, "S1-cap", "cm_fetch",
           f">= {CAP_SHARE_TARGET:.0%} of the server cap ({CAP_SHARE_TARGET * cap:.0f} MiB/s)",
           r["cm_share_of_total_cap"], CAP_SHARE_TARGET, higher_is_better=True)
    target(result, "S1-rss", "cm_fetch", f"peak RSS growth < {RSS_LIMIT_MIB:.0f} MiB",
           c["cm_fetch"]["median"]["rss_growth_mib"], RSS_LIMIT_MIB, higher_is_better=False,
           unit="MiB")
    if params.download_bytes <= RSS_LIMIT_MIB * MiB:
        result["notes"].append("quick run: the file is smaller than the RSS limit, so the memory "
                               "target says little here")
    m = {k: c[k]["median"] for k in c}
    row(result, "cm_fetch", wall_s=m["cm_fetch"]["wall_s"],
        throughput_mib_s=tput["cm_fetch"], rss_growth_mib=m["cm_fetch"]["rss_growth_mib"],
        requests=m["cm_fetch"]["requests"],
        ratio=f"{fmt(r['cm_vs_getcontentfile_throughput'], '.1f')}x GetContentFile; "
              f"{fmt(_pct(r['cm_share_of_total_cap']), '.0f')}% of server cap",
        target_ids=("S1-speedup", "S1-cap", "S1-rss"))
    row(result, "pydrive2", wall_s=m["pydrive2"]["wall_s"], throughput_mib_s=tput["pydrive2"],
        rss_growth_mib=m["pydrive2"]["rss_growth_mib"], requests=m["pydrive2"]["requests"],
        ratio=f"1.0 (baseline); {fmt(_pct(r['getcontentfile_share_of_connection_cap']), '.0f')}% "
              "of one connection's cap")
    row(result, "bytesio", wall_s=m["bytesio"]["wall_s"], throughput_mib_s=tput["bytesio"],
        rss_growth_mib=m["bytesio"]["rss_growth_mib"], requests=m["bytesio"]["requests"],
        ratio=f"{fmt(ratio(tput['bytesio'], tput['pydrive2']), '.2f')}x GetContentFile; RSS "
              f"growth {fmt(r['bytesio_rss_growth_over_file_size'], '.1f')}x file size")


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


def _paired(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[float | None]:
    by_rep = {r["rep"]: r for r in b}
    return [ratio(r["throughput_mib_s"], by_rep[r["rep"]]["throughput_mib_s"])
            for r in a if r["rep"] in by_rep]
