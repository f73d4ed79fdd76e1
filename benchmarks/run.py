"""Run the benchmarks: ``python -m benchmarks.run [--quick] [--out DIR] [--only a,b] [--reps N]``.

Scenarios (see ``benchmarks/README.md``): ``download``, ``cache_hit``, ``upload``, ``resume``,
``listing``, ``browser``. Results go to ``--out`` (default ``benchmarks/results``, or
``benchmarks/results/quick`` with ``--quick``): ``latest.json`` (machine,
parameters, every repetition's raw numbers, medians, ratios, target verdicts), ``latest.md``
(the table) and PNG charts.

Exit status: 0 when every contender ran (whether or not targets were met), 1 when a contender
or a scenario failed, 2 on bad arguments. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from .common import REPO, Params, machine_info
from .report import table_rows, write_all
from .scenarios import SCENARIOS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few repetitions (same code paths); targets not expected")
    p.add_argument("--out", type=Path, default=None,
                   help="where latest.json, latest.md and the PNGs go (default: benchmarks/results; "
                        "with --quick: benchmarks/results/quick, so a quick run never replaces "
                        "the full results)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(SCENARIOS)}")
    p.add_argument("--reps", type=int, help="override the repetitions of every scenario")
    p.add_argument("--work-dir", type=Path, help="scratch space (default: a temporary folder)")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch folder (child logs)")
    return p


def _compile_package() -> None:
    """Byte-compile colabmodels before any contender starts, as ``pip install`` does: each
    contender is a new process, and where PYTHONDONTWRITEBYTECODE is set (or the tree is an
    editable install never imported yet) it would otherwise compile our modules from source
    every time, while TensorFlow and Keras load theirs compiled."""
    import compileall

    compileall.compile_dir(str(REPO / "colabmodels"), quiet=1, workers=0)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}", file=sys.stderr)
        return 2
    params = Params.quick_run() if args.quick else Params.full()
    if args.out is None:
        args.out = REPO / "benchmarks" / "results" / ("quick" if args.quick else "")
    if args.reps:
        for name in ("download_reps", "cache_reps", "upload_reps", "resume_reps", "listing_reps"):
            setattr(params, name, args.reps)
        params.extra.update({f"{name}_reps": args.reps for name in ("datasets", "scale",
                                                                     "nobytetwice")})
    if args.work_dir:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    _compile_package()
    work = Path(tempfile.mkdtemp(prefix="colabmodels-bench-", dir=args.work_dir))
    run: dict[str, Any] = {
        "schema": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "params": params.as_dict(),
        "scenarios": {},
    }
    t_run = time.perf_counter()
    failed = False
    try:
        for name, module in SCENARIOS.items():
            if only and name not in only:
                continue
            print(f"[bench] {name} ...", flush=True)
            t0 = time.perf_counter()
            try:
                result = module.run(params, work)
            except Exception as e:
                result = {"name": name, "title": name, "error": f"{type(e).__name__}: {e}",
                          "traceback": traceback.format_exc(), "contenders": {}, "rows": [],
                          "targets": [], "notes": [], "ratios": {}, "settings": {}}
                print(result["traceback"], file=sys.stderr)
            result["duration_s"] = time.perf_counter() - t0
            run["scenarios"][name] = result
            errors = [e for c in result["contenders"].values() for e in c.get("errors", [])]
            failed = failed or bool(errors) or "error" in result
            verdicts = ", ".join(f"{t['id']}={t['verdict']}" for t in result.get("targets", []))
            print(f"[bench] {name}: {result['duration_s']:.0f} s"
                  + (f"; {verdicts}" if verdicts else "")
                  + (f"; {len(errors)} error(s): {errors[0].splitlines()[0]}" if errors else ""),
                  flush=True)
    finally:
        run["machine"]["loadavg_end"] = list(os.getloadavg())
        run["duration_s"] = time.perf_counter() - t_run
        if args.keep_work:
            print(f"[bench] scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    files = write_all(args.out, run)
    for r in table_rows(run):
        print(" | ".join(r))
    print(f"[bench] {run['duration_s']:.0f} s; wrote {', '.join(str(f) for f in files)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
