"""Scenario 2: load a model that is already in the cache.

Two models are put in the emulator (a torch state dict of ~100 MB and a ``.keras`` model) and
fetched once into a cache. Then, per framework and repetition, one process loads the cached
file repeatedly, interleaving (order rotated every round):

* ``plain``: ``torch.load(path, weights_only=True, map_location="cpu")`` /
  ``keras.saving.load_model(path)`` of the cached file itself;
* ``cm_offline``: ``cm.load_model(share_link, offline=True)`` (no network at all);
* ``cm_online``: ``cm.load_model(share_link)`` (one metadata request to check the file did not
  change).

The first load of each contender in a process is kept apart (``first``: one-time import and
warm-up costs) and left out of the medians. Requests are counted per load from the emulator's
log, within the time window the child reports for that load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..common import ChildError, Emulator, MiB, Params, median, ratio, rotated, run_child, scratch
from .base import contender, fmt, med, new_result, row, target, target_exact

FRAMEWORKS = ("torch", "keras")
CONTENDERS = {
    "plain": {"torch": "torch.load(weights_only=True) of the cached file",
              "keras": "keras.saving.load_model of the cached file"},
    "cm_offline": {"torch": "cm.load_model offline=True", "keras": "cm.load_model offline=True"},
    "cm_online": {"torch": "cm.load_model online", "keras": "cm.load_model online"},
}
OFFLINE_RATIO_TARGET = 1.05


def link(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view?usp=sharing"


def run(params: Params, work: Path) -> dict[str, Any]:
    settings = {"torch_state_dict_bytes": params.cache_torch_bytes,
                "keras_params": params.cache_keras_params, "processes_per_framework":
                params.cache_reps, "rounds_per_process": params.cache_inner,
                "latency_ms": params.latency_ms}
    result = new_result("cache_hit", "Cache hit: load an already cached model", settings)
    for fw in FRAMEWORKS:
        for key, labels in CONTENDERS.items():
            contender(result, f"{fw}_{key}", f"[{fw}] {labels[fw]}")
    with scratch(work, "cache_hit") as w, Emulator(
        w, latency_ms=params.latency_ms, bandwidth=params.bandwidth_bytes_per_s,
        total_bandwidth=params.total_bandwidth_bytes_per_s, seed=params.seed,
    ) as emu:
        cache = w / "cache"
        try:
            models = run_child({"task": "make_models", "out_dir": str(w / "models"),
                                "torch_bytes": params.cache_torch_bytes,
                                "keras_params": params.cache_keras_params},
                               emu.env(w / "unused-cache"), w, params.child_timeout_s)
            ids = {"torch": emu.fd.put("MyDrive/models/resnet-ish/weights.pth", models["torch"]),
                   "keras": emu.fd.put("MyDrive/models/dense/model.keras", models["keras"])}
            settings["keras_params"] = models.get("keras_params")
            for fw in FRAMEWORKS:
                settings[f"{fw}_file_bytes"] = Path(models[fw]).stat().st_size
                Path(models[fw]).unlink()
            refs = {fw: link(ids[fw]) for fw in FRAMEWORKS}
            run_child({"task": "prefetch", "refs": list(refs.values())}, emu.env(cache), w,
                      params.child_timeout_s)
        except ChildError as e:
            for entry in result["contenders"].values():
                entry["errors"].append(f"setup: {e}")
            _summarise(result)
            return result
        for rep in range(params.cache_reps):
            for fw in rotated(list(FRAMEWORKS), rep):
                _one(result, emu, w, cache, params, fw, refs[fw], rep)
    _summarise(result)
    return result


def _one(result: dict[str, Any], emu: Emulator, w: Path, cache: Path, params: Params, fw: str,
         ref: str, rep: int) -> None:
    spec = {"task": "cache_hit", "framework": fw, "ref": ref, "inner": params.cache_inner,
            "contenders": rotated(list(CONTENDERS), rep)}
    try:
        r = run_child(spec, emu.env(cache), w, params.child_timeout_s)
    except ChildError as e:
        for key in CONTENDERS:
            result["contenders"][f"{fw}_{key}"]["errors"].append(f"rep {rep}: {e}")
        return
    process_requests = emu.requests_between(r["t_start"], r["t_end"])
    for key in CONTENDERS:
        entry = result["contenders"][f"{fw}_{key}"]
        for i, load in enumerate(r["loads"][key]):
            entry["reps"].append(_describe(emu, load, rep, i))
        entry.setdefault("first", []).append(_describe(emu, r["first"][key], rep, -1))
        entry.setdefault("process_requests", []).append(len(process_requests))
    result["settings"][f"{fw}_cached_bytes"] = r["size"]


def _describe(emu: Emulator, load: dict[str, Any], rep: int, rnd: int) -> dict[str, Any]:
    reqs = emu.requests_between(*load["window"])
    return {**load, "rep": rep, "round": rnd, "wall_s": load["op_s"],
            "rss_growth_mib": load["growth_kib"] / 1024, "requests": len(reqs),
            "request_paths": [f"{q.method} {q.path}" for q in reqs]}


def _summarise(result: dict[str, Any]) -> None:
    c = result["contenders"]
    for entry in c.values():
        entry["median"] = {m: med(entry, m) for m in ("wall_s", "rss_growth_mib", "requests")}
        entry["median"]["first_wall_s"] = median([f["wall_s"] for f in entry.get("first", [])])
    for fw in FRAMEWORKS:
        plain, off, on = (c[f"{fw}_{k}"] for k in CONTENDERS)
        t_plain, t_off, t_on = (e["median"]["wall_s"] for e in (plain, off, on))
        result["ratios"][f"{fw}_offline_over_plain"] = ratio(t_off, t_plain)
        result["ratios"][f"{fw}_online_over_plain"] = ratio(t_on, t_plain)
        result["ratios"][f"{fw}_offline_over_plain_paired_median"] = median(_paired(off, plain))
        result["ratios"][f"{fw}_online_over_plain_paired_median"] = median(_paired(on, plain))
        target(result, f"S2-{fw}-offline", f"{fw}_cm_offline",
               f"offline hit <= {OFFLINE_RATIO_TARGET:.2f}x plain load",
               result["ratios"][f"{fw}_offline_over_plain"], OFFLINE_RATIO_TARGET,
               higher_is_better=False, unit="x")
        target_exact(result, f"S2-{fw}-online-requests", f"{fw}_cm_online",
                     "exactly 1 request per online hit",
                     [x["requests"] for x in on["reps"] + on.get("first", [])], 1)
        target_exact(result, f"S2-{fw}-offline-requests", f"{fw}_cm_offline",
                     "0 requests per offline hit",
                     [x["requests"] for x in off["reps"] + off.get("first", [])], 0)
        row(result, f"{fw}_plain", wall_s=t_plain, rss_growth_mib=plain["median"]["rss_growth_mib"],
            requests=plain["median"]["requests"], ratio="1.00 (baseline)")
        row(result, f"{fw}_cm_offline", wall_s=t_off, rss_growth_mib=off["median"]["rss_growth_mib"],
            requests=_req_range(off), ratio=f"{fmt(ratio(t_off, t_plain), '.3f')}x plain",
            target_ids=(f"S2-{fw}-offline", f"S2-{fw}-offline-requests"))
        row(result, f"{fw}_cm_online", wall_s=t_on, rss_growth_mib=on["median"]["rss_growth_mib"],
            requests=_req_range(on), ratio=f"{fmt(ratio(t_on, t_plain), '.3f')}x plain",
            target_ids=(f"S2-{fw}-online-requests",))
    result["notes"].append("requests: per load (min-max over all loads incl. the first of each "
                           "process); the sign-in of each process (token + about) is not a hit "
                           "and is counted apart in contenders[*].process_requests")
    result["notes"].append(f"sizes in MiB: torch {fmt(_mib(result['settings'].get('torch_cached_bytes')), '.1f')}, "
                           f"keras {fmt(_mib(result['settings'].get('keras_cached_bytes')), '.1f')}")


def _mib(n: int | None) -> float | None:
    return None if n is None else n / MiB


def _req_range(entry: dict[str, Any]) -> str:
    values = [x["requests"] for x in entry["reps"] + entry.get("first", [])]
    if not values:
        return "—"
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _paired(a: dict[str, Any], b: dict[str, Any]) -> list[float | None]:
    """Ratios of loads in the same process and round."""
    by = {(x["rep"], x["round"]): x["wall_s"] for x in b["reps"]}
    return [ratio(x["wall_s"], by.get((x["rep"], x["round"]))) for x in a["reps"]]
