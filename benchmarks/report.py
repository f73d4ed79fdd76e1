"""Write a run's results: ``latest.json``, ``latest.md`` and PNG charts (matplotlib, Agg)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from .common import MiB
from .scenarios.base import fmt

CHARTS = {
    "download": "download.png",
    "upload": "upload.png",
    "cache_hit": "cache_hit.png",
    "resume": "resume.png",
    "listing": "listing.png",
}
COLUMNS = ("Scenario", "Contender", "Median wall time", "Throughput", "Peak RSS growth",
           "Requests", "Ratio", "Target", "Verdict")


def write_all(out: Path, run: dict[str, Any]) -> list[Path]:
    """Write everything into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, filename in CHARTS.items():
        if name in run["scenarios"]:
            path = out / filename
            try:
                CHART_FUNCS[name](run["scenarios"][name], run["params"], path)
            except Exception as e:  # a chart must never lose the numbers
                run.setdefault("chart_errors", []).append(f"{filename}: {type(e).__name__}: {e}")
                _placeholder(path, f"{filename}: {e}")
            written.append(path)
    run["charts"] = [p.name for p in written]
    md = out / "latest.md"
    md.write_text(markdown(run))
    js = out / "latest.json"
    js.write_text(json.dumps(_clean(run), indent=1, default=str))
    return [js, md, *written]


def _clean(obj: Any) -> Any:
    """JSON without NaN/inf (they become null)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


# -- markdown ---------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table_rows(run: dict[str, Any]) -> list[list[str]]:
    rows = []
    for sc in run["scenarios"].values():
        for r in sc.get("rows", []):
            req = r["requests"]
            rows.append([
                sc["title"], r["contender"],
                fmt(r["wall_s"], ".3f", " s"),
                r.get("throughput") or "—",
                fmt(r["rss_growth_mib"], ".1f", " MiB"),
                req if isinstance(req, str) else fmt(req, ".0f"),
                r["ratio"] or "—", r["target"] or "—", r["verdict"],
            ])
    return rows


def markdown(run: dict[str, Any]) -> str:
    m = run["machine"]
    p = run["params"]
    lines = [
        f"# colabmodels benchmarks{' (quick run)' if p['quick'] else ''}",
        "",
        f"Run {run['created']} on {m.get('cpu_model')} ({m.get('cpu_count')} CPUs, "
        f"{fmt((m.get('memory_bytes') or 0) / 2**30, '.0f')} GiB), Python {m.get('python')}, "
        f"load average {', '.join(f'{x:.2f}' for x in m.get('loadavg_start', []))} at the start, "
        f"{', '.join(f'{x:.2f}' for x in m.get('loadavg_end', []))} at the end. "
        f"Commit {str(m.get('git_commit'))[:10]} ({m.get('git_dirty_files')} files changed).",
        "",
        f"Emulator: {p['latency_ms']:g} ms latency per request, "
        f"{p['bandwidth_bytes_per_s'] / MiB:g} MiB/s per connection, "
        f"{p['total_bandwidth_bytes_per_s'] / MiB:g} MiB/s for the whole server "
        "(the emulator runs in the orchestrating process, every contender in a process of its "
        "own). Medians over interleaved repetitions; ratios are between numbers of this run.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for r in table_rows(run):
        lines.append("| " + " | ".join(_cell(c) for c in r) + " |")
    lines += ["", "## Targets", "", "| Target | Contender | Measured | Threshold | Verdict |",
              "|---|---|---|---|---|"]
    for sc in run["scenarios"].values():
        for t in sc.get("targets", []):
            measured = t["measured"]
            shown = fmt(measured, ".3f") if isinstance(measured, (int, float)) else "—"
            if t.get("exact"):
                shown = f"min {t.get('min')}, max {t.get('max')}"
            lines.append(f"| {_cell(t['id'] + ': ' + t['text'])} | {_cell(t['contender'])} | "
                         f"{shown} | {t['threshold']:g} | **{t['verdict']}** |")
    lines += ["", "## Notes", ""]
    for sc in run["scenarios"].values():
        for note in sc.get("notes", []):
            lines.append(f"- {sc['title']}: {note}")
        if sc.get("duration_s") is not None:
            lines.append(f"- {sc['title']}: scenario took {sc['duration_s']:.0f} s")
    errors = [(sc["title"], key, e) for sc in run["scenarios"].values()
              for key, c in sc.get("contenders", {}).items() for e in c.get("errors", [])]
    errors += [(sc["title"], "-", sc["error"]) for sc in run["scenarios"].values() if sc.get("error")]
    if errors:
        lines += ["", "## Errors", ""]
        for title, key, e in errors:
            lines.append(f"- {title} / {key}: `{_cell(str(e).splitlines()[0] if e else e)}`")
    if run.get("chart_errors"):
        lines += ["", "Chart errors: " + "; ".join(run["chart_errors"])]
    lines += ["", "Raw numbers of every repetition: `latest.json`. Charts: "
              + ", ".join(f"`{c}`" for c in run.get("charts", [])) + "."]
    return "\n".join(lines) + "\n"


# -- charts -----------------------------------------------------------------------------------

def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _placeholder(path: Path, text: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, text[:200], ha="center", va="center", wrap=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _bars(ax: Any, sc: dict[str, Any], keys: list[str], metric: str, *, labels: list[str] | None = None,
          scale: float = 1.0, color: str = "C0") -> None:
    """Median bars with every repetition as a dot."""
    labels = labels or [sc["contenders"][k]["label"] for k in keys]
    for i, k in enumerate(keys):
        reps = [r[metric] * scale for r in sc["contenders"][k]["reps"] if r.get(metric) is not None]
        if not reps:
            ax.annotate("n/a", (i, 0), ha="center", va="bottom", fontsize=8)
            continue
        medv = statistics.median(reps)
        ax.bar(i, medv, color=color, alpha=0.75)
        ax.scatter([i] * len(reps), reps, color="k", s=12, zorder=3)
        ax.annotate(f"{medv:.3g}", (i, medv), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([_wrap(x) for x in labels], fontsize=7)


def _wrap(text: str, width: int = 22) -> str:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    lines.append(cur)
    return "\n".join(lines)


def chart_download(sc: dict[str, Any], params: dict[str, Any], path: Path) -> None:
    plt = _plt()
    keys = list(sc["contenders"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    _bars(a, sc, keys, "throughput_mib_s")
    cap = params["total_bandwidth_bytes_per_s"] / MiB
    conn = params["bandwidth_bytes_per_s"] / MiB
    a.axhline(cap, color="r", ls="--", lw=1, label=f"server cap {cap:g} MiB/s")
    a.axhline(0.85 * cap, color="orange", ls=":", lw=1, label="85 % of server cap (target)")
    a.axhline(conn, color="g", ls="--", lw=1, label=f"per-connection cap {conn:g} MiB/s")
    a.set_ylabel("MiB/s")
    a.set_title("Throughput (median; dots: repetitions)")
    a.legend(fontsize=7)
    _bars(b, sc, keys, "rss_growth_mib", color="C1")
    b.axhline(64, color="r", ls="--", lw=1, label="64 MiB (target for cm.fetch)")
    b.axhline(sc["settings"]["file_bytes"] / MiB, color="grey", ls=":", lw=1, label="file size")
    b.set_ylabel("MiB")
    b.set_title("Peak RSS growth over the pre-download RSS")
    b.legend(fontsize=7)
    fig.suptitle(sc["title"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chart_upload(sc: dict[str, Any], params: dict[str, Any], path: Path) -> None:
    plt = _plt()
    keys = list(sc["contenders"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    _bars(a, sc, keys, "throughput_mib_s")
    conn = params["bandwidth_bytes_per_s"] / MiB
    a.axhline(conn, color="r", ls="--", lw=1, label=f"per-connection cap {conn:g} MiB/s")
    a.axhline(0.8 * conn, color="orange", ls=":", lw=1, label="0.8 of it (target)")
    a.set_ylabel("MiB/s (model file bytes / wall time)")
    a.set_title("Throughput (median; dots: repetitions)")
    a.legend(fontsize=7)
    _bars(b, sc, keys, "rss_growth_mib", color="C1")
    b.axhline(64, color="r", ls="--", lw=1, label="64 MiB (flat-memory target)")
    b.set_ylabel("MiB")
    b.set_title("Peak RSS growth over the pre-upload RSS")
    b.legend(fontsize=7)
    fig.suptitle(sc["title"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chart_cache_hit(sc: dict[str, Any], params: dict[str, Any], path: Path) -> None:
    plt = _plt()
    fws = ("torch", "keras")
    fig, axes = plt.subplots(1, len(fws), figsize=(12, 4.8))
    for ax, fw in zip(axes, fws, strict=True):
        keys = [k for k in sc["contenders"] if k.startswith(fw + "_")]
        _bars(ax, sc, keys, "wall_s", scale=1000.0,
              labels=[sc["contenders"][k]["label"].split("] ", 1)[-1] for k in keys])
        ax.set_ylabel("ms per load")
        off = sc["ratios"].get(f"{fw}_offline_over_plain")
        on = sc["ratios"].get(f"{fw}_online_over_plain")
        ax.set_title(f"{fw}: offline {fmt(off, '.3f')}x, online {fmt(on, '.3f')}x plain")
    fig.suptitle(sc["title"] + " (median; dots: every timed load)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chart_resume(sc: dict[str, Any], params: dict[str, Any], path: Path) -> None:
    plt = _plt()
    size = sc["settings"]["file_bytes"] / MiB
    chunk = sc["settings"]["chunk_bytes"] / MiB
    bars = [(key, r) for key, c in sc["contenders"].items() for r in c["reps"]]
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(bars) + 3), 4.8))
    xs = list(range(len(bars)))
    p1 = [r["phase1_media_bytes"] / MiB for _, r in bars]
    p2 = [r["phase2_media_bytes"] / MiB for _, r in bars]
    ax.bar(xs, p1, label="sent to the killed process", color="C0")
    ax.bar(xs, p2, bottom=p1, label="sent to the resuming process", color="C2")
    ax.axhline(size, color="k", lw=1, label=f"file size {size:g} MiB")
    ax.axhline(size + chunk, color="r", ls="--", lw=1, label=f"file + 1 chunk ({chunk:g} MiB): target")
    for x, a, b in zip(xs, p1, p2, strict=True):
        ax.annotate(f"+{a + b - size:.1f}", (x, a + b), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs)
    ax.set_xticklabels([("mid-part kill" if key.endswith("_midpart") else "kill at 50 % of parts")
                        + f"\nrep {r['rep']}" for key, r in bars], fontsize=7)
    ax.set_ylabel("MiB of media sent (labels: MiB above file size)")
    ax.set_title(sc["title"], fontsize=10)
    top = max([size + 2 * chunk, *[a + b for a, b in zip(p1, p2, strict=True)]])
    ax.set_ylim(0, top * 1.1)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chart_listing(sc: dict[str, Any], params: dict[str, Any], path: Path) -> None:
    plt = _plt()
    keys = list(sc["contenders"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    _bars(a, sc, keys, "first_s", color="C2")
    a.set_ylabel("s")
    a.set_title("Time to the first page (plain GetList: n/a, it returns at the end)")
    _bars(b, sc, [k for k in keys if not k.endswith("_maxresults")], "wall_s")
    b.set_ylabel("s")
    b.set_title("Time to the full list")
    fig.suptitle(sc["title"] + " (median; dots: repetitions)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


CHART_FUNCS = {
    "download": chart_download,
    "upload": chart_upload,
    "cache_hit": chart_cache_hit,
    "resume": chart_resume,
    "listing": chart_listing,
}
