"""Scenario 4: a download killed half-way, then resumed by a new process.

A child runs ``cm.fetch``; the orchestrator watches the partial download's part record
(``<cache>/partial/<key>.incomplete.parts.json``) and sends SIGKILL as soon as it lists half of
the parts as done. A second child runs the same ``cm.fetch`` with the same cache. The emulator's
log says how many media bytes each phase was sent; everything above the file size was
transferred twice. Target: at most one chunk (``COLABMODELS_CHUNK_BYTES``) re-downloaded.

Two variants, interleaved:

* ``cm_fetch_resume``: SIGKILL the moment half the parts are recorded as done (the trigger the
  target is defined with). With every connection capped alike, parts finish in waves, so this
  moment is usually a wave boundary where the parts in flight have only just started;
* ``cm_fetch_resume_midpart``: the same trigger, then SIGKILL half a part's transfer time later
  (``chunk / per-connection cap / 2``), when the parts in flight are about half written: a
  kill at an arbitrary moment, as a user's Ctrl-C or a runtime restart would be.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from ..common import (
    ChildError,
    Emulator,
    MiB,
    Params,
    media_bytes,
    rotated,
    run_child,
    scratch,
    start_child,
    write_payload,
)
from .base import contender, fmt, med, new_result, row, target

VARIANTS = {
    "cm_fetch_resume": "colabmodels cm.fetch, SIGKILL when half the parts are done, then resumed",
    "cm_fetch_resume_midpart": "colabmodels cm.fetch, SIGKILL half a part's transfer time after "
                               "half the parts are done (parts in flight half written), then resumed",
}
DEFAULT_CHUNK = 8 * MiB  # colabmodels.config.chunk_bytes() without the environment variable


def run(params: Params, work: Path) -> dict[str, Any]:
    size = params.resume_bytes
    chunk = params.resume_chunk_bytes or DEFAULT_CHUNK
    bw = params.resume_bandwidth_bytes_per_s or params.bandwidth_bytes_per_s
    total_bw = params.resume_total_bandwidth_bytes_per_s or params.total_bandwidth_bytes_per_s
    n_parts = -(-size // chunk)
    settings = {"file_bytes": size, "chunk_bytes": chunk, "parts": n_parts,
                "kill_when_parts_done": -(-n_parts // 2), "latency_ms": params.latency_ms,
                "bandwidth_bytes_per_s": bw, "total_bandwidth_bytes_per_s": total_bw,
                "reps": params.resume_reps}
    result = new_result("resume", f"Resume of a {size / MiB:.0f} MiB download killed at 50 %",
                        settings)
    for key, label in VARIANTS.items():
        contender(result, key, label)
    settings["midpart_kill_delay_s"] = chunk / bw / 2
    with scratch(work, "resume") as w, Emulator(w, latency_ms=params.latency_ms, bandwidth=bw,
                                                 total_bandwidth=total_bw, seed=params.seed) as emu:
        src = w / "payload.bin"
        md5 = write_payload(src, size, seed=params.seed + 3)
        fid = emu.fd.put("MyDrive/models/resume.bin", src)
        src.unlink()
        extra = {"COLABMODELS_CHUNK_BYTES": str(chunk)} if params.resume_chunk_bytes else {}
        for rep in range(params.resume_reps):
            for key in rotated(list(VARIANTS), rep):
                delay = settings["midpart_kill_delay_s"] if key.endswith("_midpart") else 0.0
                _one(result, emu, w, params, key, rep, fid, md5, chunk, n_parts, extra, delay)
    _summarise(result, params, chunk)
    return result


def _one(result: dict[str, Any], emu: Emulator, w: Path, params: Params, key: str, rep: int,
         fid: str, md5: str, chunk: int, n_parts: int, extra: dict[str, str],
         delay: float) -> None:
    entry = result["contenders"][key]
    cache = w / f"cache-{rep}-{key}"
    env = emu.env(cache, **extra)
    spec = {"task": "download", "contender": "cm_fetch", "file_id": fid, "verify_md5": md5,
            "endpoint": emu.url, "key_file": str(emu.key_file)}
    half = -(-n_parts // 2)
    n0 = len(emu.fd.requests)
    child = start_child(spec, env, w)
    done_at_kill: list[int] = []
    offsets_at_kill: dict[str, int] = {}
    t_spawn = time.monotonic()
    killed = False
    while time.monotonic() - t_spawn < params.child_timeout_s:
        if child.proc.poll() is not None:
            break
        for record in (cache / "partial").glob("*.parts.json"):
            try:
                state = json.loads(record.read_text())
            except (OSError, ValueError):
                continue
            if len(state.get("done", [])) >= half:
                if delay:
                    time.sleep(delay)
                if child.proc.poll() is None:
                    child.proc.send_signal(signal.SIGKILL)
                    killed = True
                break
        if killed or child.proc.poll() is not None:
            break
        time.sleep(0.005)
    if not killed:
        child.proc.kill()
    child.proc.wait()
    time.sleep(0.5)  # let the emulator notice the dead connections and close their records
    for record in (cache / "partial").glob("*.parts.json"):
        try:
            state = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        done_at_kill = list(state.get("done", []))
        offsets_at_kill = dict(state.get("offsets", {}))
    if not killed:
        entry["errors"].append(f"rep {rep}: the child was not killed half-way (it exited with "
                               f"{child.proc.returncode} before the kill)")
        return
    reqs = emu.fd.requests
    phase1 = reqs[n0:]
    n1 = len(reqs)
    try:
        r2 = run_child(spec, env, w, params.child_timeout_s)
    except ChildError as e:
        entry["errors"].append(f"rep {rep}: resume failed: {e}")
        return
    phase2 = emu.fd.requests[n1:]
    size = params.resume_bytes
    b1, b2 = media_bytes(phase1, fid), media_bytes(phase2, fid)
    done_bytes = sum(min(size, (i + 1) * chunk) - i * chunk for i in done_at_kill)
    refetched_done = _bytes_into_parts(phase2, fid, set(done_at_kill), chunk, size)
    r = {
        "rep": rep,
        "kill_delay_s": delay,
        "parts_done_at_kill": len(done_at_kill),
        "offsets_recorded_at_kill": offsets_at_kill,
        "phase1_media_bytes": b1,
        "phase1_media_requests": sum(1 for q in phase1 if q.query.get("alt") == "media"),
        "phase2_media_bytes": b2,
        "phase2_media_requests": sum(1 for q in phase2 if q.query.get("alt") == "media"),
        "phase2_requests": len(phase2),
        "total_media_bytes": b1 + b2,
        "redownloaded_bytes": b1 + b2 - size,
        "redownloaded_chunks": (b1 + b2 - size) / chunk,
        "done_parts_bytes_at_kill": done_bytes,
        "phase1_bytes_outside_done_parts": b1 - done_bytes,
        "phase2_bytes_into_parts_done_before_kill": refetched_done,
        "resume_wall_s": r2["op_s"],
        "resume_md5_ok": r2.get("md5_ok"),
        "rss_growth_mib": r2["growth_kib"] / 1024,
        "wall_s": r2["op_s"],
    }
    if r2.get("md5_ok") is False:
        entry["errors"].append(f"rep {rep}: the resumed file's md5 does not match")
    shutil.rmtree(cache, ignore_errors=True)
    entry["reps"].append(r)


def _bytes_into_parts(records: list[Any], fid: str, parts: set[int], chunk: int, size: int) -> int:
    """Media bytes sent in ``records`` that fall into ``parts`` (ranges from the Range header)."""
    total = 0
    for q in records:
        if q.query.get("alt") != "media" or fid not in q.path:
            continue
        value = q.headers.get("range", "")
        start = 0
        if value.startswith("bytes="):
            start = int(value[6:].split("-", 1)[0] or 0)
        end = start + q.bytes
        for i in parts:
            lo, hi = i * chunk, min(size, (i + 1) * chunk)
            total += max(0, min(end, hi) - max(start, lo))
    return total


def _summarise(result: dict[str, Any], params: Params, chunk: int) -> None:
    size = params.resume_bytes
    for key, entry in result["contenders"].items():
        entry["median"] = {m: med(entry, m) for m in
                           ("redownloaded_bytes", "redownloaded_chunks", "total_media_bytes",
                            "phase1_media_bytes", "phase2_media_bytes", "parts_done_at_kill",
                            "phase2_bytes_into_parts_done_before_kill", "resume_wall_s",
                            "rss_growth_mib", "wall_s", "phase1_media_requests",
                            "phase2_media_requests")}
        worst = max((x["redownloaded_bytes"] for x in entry["reps"]), default=None)
        m = entry["median"]
        prefix = "" if key == "cm_fetch_resume" else "midpart_"
        result["ratios"].update({
            f"{prefix}total_transferred_over_size": None if m["total_media_bytes"] is None
            else m["total_media_bytes"] / size,
            f"{prefix}redownloaded_chunks_median": m["redownloaded_chunks"],
            f"{prefix}redownloaded_chunks_worst": None if worst is None else worst / chunk,
        })
        tid = "S4-redownload" if key == "cm_fetch_resume" else "S4-redownload-midpart"
        when = "" if key == "cm_fetch_resume" else ", killed mid-part"
        target(result, tid, key, f"<= 1 chunk ({chunk / MiB:g} MiB) re-downloaded (worst "
               f"repetition{when})", None if worst is None else worst / chunk, 1.0,
               higher_is_better=False, unit="chunks")
        reqs = None
        if m["phase1_media_requests"] is not None and m["phase2_media_requests"] is not None:
            reqs = f"{m['phase1_media_requests']:.0f}+{m['phase2_media_requests']:.0f} media"
        row(result, key, wall_s=m["resume_wall_s"],
            throughput_text=f"{fmt(_mib(m['total_media_bytes']), '.1f')} MiB sent for "
                            f"{size / MiB:.0f} MiB",
            rss_growth_mib=m["rss_growth_mib"], requests=reqs,
            ratio=f"re-downloaded {fmt(_mib(m['redownloaded_bytes']), '.1f')} MiB = "
                  f"{fmt(m['redownloaded_chunks'], '.2f')} chunks (worst "
                  f"{fmt(result['ratios'][prefix + 'redownloaded_chunks_worst'], '.2f')})",
            target_ids=(tid,))
    result["notes"].append("wall time = the resumed process's fetch; requests = media requests "
                           "of the killed + the resumed process; bytes = media bytes the emulator "
                           "sent in both phases")


def _mib(n: float | None) -> float | None:
    return None if n is None else n / MiB
