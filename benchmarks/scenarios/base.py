"""The shape every scenario returns, and small helpers to fill it.

A scenario result (one entry of ``latest.json["scenarios"]``)::

    {"name", "title", "settings": {...},
     "contenders": {key: {"label", "reps": [raw numbers of each repetition], "errors": [...],
                          "median": {metric: value}}},
     "ratios": {name: value},
     "targets": [{"id", "contender", "text", "measured", "threshold", "verdict"}],
     "rows": [{"contender", "wall_s", "throughput_mib_s", "rss_growth_mib", "requests",
               "ratio", "target", "verdict"}],
     "notes": [...]}

``verdict`` is ``pass``, ``miss`` or ``n/a`` (not measurable in this run, e.g. a contender
failed). Nothing here asserts: a miss is a number in the report, never an exception.
"""

from __future__ import annotations

from typing import Any

from ..common import MiB, median


def new_result(name: str, title: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "title": title, "settings": settings, "contenders": {}, "ratios": {},
            "targets": [], "rows": [], "notes": []}


def contender(result: dict[str, Any], key: str, label: str) -> dict[str, Any]:
    return result["contenders"].setdefault(key, {"label": label, "reps": [], "errors": [],
                                                  "median": {}})


def med(entry: dict[str, Any], metric: str) -> float | None:
    return median([r.get(metric) for r in entry["reps"]])


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "miss")


def target(result: dict[str, Any], tid: str, contender_key: str, text: str,
           measured: float | None, threshold: float, *, higher_is_better: bool,
           unit: str = "") -> dict[str, Any]:
    """Record a target; ``measured`` None (no data) gives ``n/a``."""
    if measured is None:
        ok = None
    else:
        ok = measured >= threshold if higher_is_better else measured <= threshold
    t = {"id": tid, "contender": contender_key, "text": text, "measured": measured,
         "threshold": threshold, "unit": unit, "higher_is_better": higher_is_better,
         "verdict": verdict(ok)}
    result["targets"].append(t)
    return t


def target_exact(result: dict[str, Any], tid: str, contender_key: str, text: str,
                 values: list[float], expected: float) -> dict[str, Any]:
    """A target every measured value must meet exactly (e.g. requests per cache hit)."""
    ok = None if not values else all(v == expected for v in values)
    measured = None if not values else median(values)
    t = {"id": tid, "contender": contender_key, "text": text, "measured": measured,
         "min": min(values) if values else None, "max": max(values) if values else None,
         "threshold": expected, "unit": "", "exact": True, "verdict": verdict(ok)}
    result["targets"].append(t)
    return t


def mib(n: float | None) -> float | None:
    return None if n is None else n / MiB


def fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:{spec}}{unit}"


def row(result: dict[str, Any], key: str, *, wall_s: float | None = None,
        throughput_mib_s: float | None = None, rss_growth_mib: float | None = None,
        requests: float | str | None = None, ratio: str = "", target_ids: tuple[str, ...] = (),
        extra: str = "", throughput_text: str | None = None) -> None:
    """One table row; its target/verdict columns summarise the targets named."""
    targets = [t for t in result["targets"] if t["id"] in target_ids]
    result["rows"].append({
        "contender": result["contenders"][key]["label"] + (f" {extra}" if extra else ""),
        "key": key,
        "wall_s": wall_s,
        "throughput_mib_s": throughput_mib_s,
        "throughput": throughput_text if throughput_text is not None
        else fmt(throughput_mib_s, ".1f", " MiB/s"),
        "rss_growth_mib": rss_growth_mib,
        "requests": requests,
        "ratio": ratio,
        "target": "; ".join(t["text"] for t in targets),
        "verdict": "; ".join(t["verdict"] for t in targets) if targets else "—",
    })
