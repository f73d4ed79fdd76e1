"""Scenario 3: upload a large model.

* ``cm_save_model``: ``cm.save_model(state_dict, "MyDrive/bench/save/rN")`` of a torch state
  dict holding ``upload_bytes`` of float32 tensors (already in memory before timing starts):
  serialise to a temporary folder, sha256, claim ``v1``, resumable upload in chunks, manifest,
  Drive metadata. End to end.
* ``cm_backend_upload``: the raw upload path alone, ``DriveBackend.upload(file, ref)`` of a
  prepared file of the same size (no serialisation, no manifest).
* ``pydrive2``: ``CreateFile({...}); SetContentFile(path); Upload()``.

Uploads are resumable uploads on one connection each, so the reference is the emulator's
per-connection cap. For ``cm_save_model`` the emulator's log also gives the time spent in
upload requests, and the child times serialisation + hashing once more on its own, so the
report can say which part of ``save_model`` is the upload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..common import (
    ChildError,
    Emulator,
    MiB,
    Params,
    ratio,
    rotated,
    run_child,
    scratch,
    upload_bytes,
    write_payload,
)
from .base import contender, fmt, med, new_result, row, target

CONTENDERS = {
    "cm_save_model": "colabmodels cm.save_model (torch state dict, end to end)",
    "cm_backend_upload": "colabmodels DriveBackend.upload (raw upload path)",
    "pydrive2": "PyDrive2 SetContentFile + Upload",
}
RATE_SHARE_TARGET = 0.8
RSS_LIMIT_MIB = 64.0


def run(params: Params, work: Path) -> dict[str, Any]:
    size = params.upload_bytes
    settings = {"model_bytes": size, "latency_ms": params.latency_ms,
                "bandwidth_bytes_per_s": params.bandwidth_bytes_per_s,
                "total_bandwidth_bytes_per_s": params.total_bandwidth_bytes_per_s,
                "reps": params.upload_reps}
    result = new_result("upload", f"Upload of a {size / MiB:.0f} MiB model", settings)
    for key, label in CONTENDERS.items():
        contender(result, key, label)
    with scratch(work, "upload") as w, Emulator(
        w, latency_ms=params.latency_ms, bandwidth=params.bandwidth_bytes_per_s,
        total_bandwidth=params.total_bandwidth_bytes_per_s, seed=params.seed,
    ) as emu:
        src = w / "model.bin"
        md5 = write_payload(src, size, seed=params.seed + 2)
        folder_id = emu.fd.mkdir("MyDrive/bench/pydrive2")
        emu.fd.mkdir("MyDrive/bench/raw")
        emu.fd.mkdir("MyDrive/bench/save")
        for rep in range(params.upload_reps):
            for key in rotated(list(CONTENDERS), rep):
                _one(result, emu, w, params, key, rep, src, md5, folder_id)
    _summarise(result, params)
    return result


def _one(result: dict[str, Any], emu: Emulator, w: Path, params: Params, key: str, rep: int,
         src: Path, md5: str, folder_id: str) -> None:
    entry = result["contenders"][key]
    spec: dict[str, Any] = {"task": "upload", "contender": key, "endpoint": emu.url,
                            "key_file": str(emu.key_file)}
    cleanup: str | None = None
    if key == "cm_save_model":
        cleanup = f"MyDrive/bench/save/r{rep}"
        spec.update(dest=cleanup, nbytes=params.upload_bytes, tensors=16)
    elif key == "cm_backend_upload":
        cleanup = f"MyDrive/bench/raw/r{rep}"
        spec.update(dest=f"{cleanup}/model.bin", src=str(src))
    else:
        spec.update(src=str(src), folder_id=folder_id, title=f"r{rep}.bin")
    try:
        r = run_child(spec, emu.env(w / f"cache-{rep}-{key}"), w, params.child_timeout_s)
    except ChildError as e:
        entry["errors"].append(f"rep {rep}: {e}")
        return
    reqs = emu.requests_between(*r["window"])
    uploads = [q for q in reqs if q.path.startswith("/upload/")]
    if key == "cm_save_model":
        model_bytes = sum(f["size"] for f in r["files"])
    else:
        model_bytes = src.stat().st_size
    r.update({
        "rep": rep,
        "wall_s": r["op_s"],
        "model_file_bytes": model_bytes,
        "throughput_mib_s": model_bytes / MiB / r["op_s"],
        "rss_growth_mib": r["growth_kib"] / 1024,
        "requests": len(reqs),
        "upload_requests": len(uploads),
        "upload_body_bytes": upload_bytes(reqs),
        "connections": len({q.connection for q in uploads}),
    })
    if uploads:
        t0 = min(q.started for q in uploads)
        t1 = max(q.started + q.duration_s for q in uploads)
        r["upload_requests_span_s"] = t1 - t0
        r["upload_phase_mib_s"] = model_bytes / MiB / (t1 - t0) if t1 > t0 else None
    fid = r.get("file_id")
    if fid:
        meta = emu.fd.metadata(fid)
        if meta.get("md5Checksum") != md5:
            entry["errors"].append(f"rep {rep}: uploaded md5 {meta.get('md5Checksum')} != {md5}")
    try:
        if cleanup:
            emu.fd.delete(cleanup)
        elif fid:
            emu.fd.delete(fid)
    except FileNotFoundError:
        pass
    entry["reps"].append(r)


def _summarise(result: dict[str, Any], params: Params) -> None:
    c = result["contenders"]
    for entry in c.values():
        entry["median"] = {m: med(entry, m) for m in
                           ("wall_s", "throughput_mib_s", "rss_growth_mib", "requests",
                            "upload_requests", "upload_phase_mib_s", "upload_requests_span_s",
                            "serialise_s", "sha256_s", "process_s")}
    cap = params.bandwidth_bytes_per_s / MiB
    m = {k: c[k]["median"] for k in c}
    tput = {k: m[k]["throughput_mib_s"] for k in c}
    r = result["ratios"]
    for k in c:
        r[f"{k}_share_of_connection_cap"] = ratio(tput[k], cap)
    r["cm_save_model_vs_pydrive2_throughput"] = ratio(tput["cm_save_model"], tput["pydrive2"])
    r["cm_backend_upload_vs_pydrive2_throughput"] = ratio(tput["cm_backend_upload"], tput["pydrive2"])
    r["cm_save_model_upload_phase_share_of_connection_cap"] = ratio(
        m["cm_save_model"]["upload_phase_mib_s"], cap)
    save_wall = m["cm_save_model"]["wall_s"]
    r["cm_save_model_serialise_and_hash_share_of_wall"] = ratio(
        _sum(m["cm_save_model"]["serialise_s"], m["cm_save_model"]["sha256_s"]), save_wall)
    for k, tid in (("cm_save_model", "S3-save"), ("cm_backend_upload", "S3-raw")):
        target(result, f"{tid}-rate", k,
               f">= {RATE_SHARE_TARGET:.1f} of the per-connection cap ({RATE_SHARE_TARGET * cap:.1f} MiB/s)",
               r[f"{k}_share_of_connection_cap"], RATE_SHARE_TARGET, higher_is_better=True)
        target(result, f"{tid}-rss", k, f"flat memory: peak RSS growth < {RSS_LIMIT_MIB:.0f} MiB",
               m[k]["rss_growth_mib"], RSS_LIMIT_MIB, higher_is_better=False, unit="MiB")
    row(result, "cm_save_model", wall_s=save_wall, throughput_mib_s=tput["cm_save_model"],
        rss_growth_mib=m["cm_save_model"]["rss_growth_mib"],
        requests=m["cm_save_model"]["requests"],
        ratio=f"{fmt(r['cm_save_model_share_of_connection_cap'], '.2f')} of conn cap "
              f"(upload phase {fmt(r['cm_save_model_upload_phase_share_of_connection_cap'], '.2f')}); "
              f"{fmt(r['cm_save_model_vs_pydrive2_throughput'], '.2f')}x PyDrive2",
        target_ids=("S3-save-rate", "S3-save-rss"))
    row(result, "cm_backend_upload", wall_s=m["cm_backend_upload"]["wall_s"],
        throughput_mib_s=tput["cm_backend_upload"],
        rss_growth_mib=m["cm_backend_upload"]["rss_growth_mib"],
        requests=m["cm_backend_upload"]["requests"],
        ratio=f"{fmt(r['cm_backend_upload_share_of_connection_cap'], '.2f')} of conn cap; "
              f"{fmt(r['cm_backend_upload_vs_pydrive2_throughput'], '.2f')}x PyDrive2",
        target_ids=("S3-raw-rate", "S3-raw-rss"))
    row(result, "pydrive2", wall_s=m["pydrive2"]["wall_s"], throughput_mib_s=tput["pydrive2"],
        rss_growth_mib=m["pydrive2"]["rss_growth_mib"], requests=m["pydrive2"]["requests"],
        ratio=f"{fmt(r['pydrive2_share_of_connection_cap'], '.2f')} of conn cap (baseline)")
    ser = m["cm_save_model"]["serialise_s"]
    sha = m["cm_save_model"]["sha256_s"]
    result["notes"].append(
        f"cm.save_model breakdown (medians): serialise {fmt(ser, '.2f')} s, sha256 "
        f"{fmt(sha, '.2f')} s (timed again on their own after the save), time inside upload "
        f"requests {fmt(m['cm_save_model']['upload_requests_span_s'], '.2f')} s, of "
        f"{fmt(save_wall, '.2f')} s end to end")
    result["notes"].append(f"throughput = model file bytes / wall time; per-connection cap "
                           f"{cap:.0f} MiB/s; model file of save_model = the serialised .pth")


def _sum(*xs: float | None) -> float | None:
    return None if any(x is None for x in xs) else sum(x for x in xs if x is not None)

