"""The benchmark harness runs end to end in quick mode and writes complete, readable results.

Nothing here looks at timings or target verdicts: the quick run is small and the machine may be
busy. It checks that every scenario and contender ran, that the numbers are numbers, that the
Markdown table has a row per contender and that the charts are PNG files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(960)]

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from benchmarks.scenarios import SCENARIOS as _REGISTERED  # noqa: E402  (every scenario must run)

SCENARIOS = set(_REGISTERED)
CHARTS = ("download.png", "upload.png", "cache_hit.png", "listing.png", "resume.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench") / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLABMODELS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,  # a hang guard
    )
    return proc, out


def test_quick_run_exits_cleanly(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = quick_run
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"


def test_json_has_every_scenario_with_numeric_medians(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_run
    data = json.loads((out / "latest.json").read_text())
    assert data["params"]["quick"] is True
    assert {"machine", "params", "scenarios"} <= set(data)
    assert set(data["scenarios"]) == SCENARIOS
    for name, sc in data["scenarios"].items():
        assert "error" not in sc, f"{name}: {sc.get('error')}"
        assert sc["contenders"], name
        for key, c in sc["contenders"].items():
            assert not c["errors"], f"{name}/{key}: {c['errors']}"
            assert c["reps"], f"{name}/{key} has no repetitions"
            assert _is_number(c["median"]["wall_s"]), f"{name}/{key}: {c['median']}"
            assert all(_is_number(r["wall_s"]) for r in c["reps"])
        for t in sc["targets"]:
            assert t["verdict"] in {"pass", "miss", "n/a"}
    # A few medians each scenario is about.
    sc = data["scenarios"]
    assert _is_number(sc["download"]["contenders"]["cm_fetch"]["median"]["throughput_mib_s"])
    assert _is_number(sc["download"]["contenders"]["bytesio"]["median"]["rss_growth_mib"])
    assert _is_number(sc["upload"]["contenders"]["cm_backend_upload"]["median"]["throughput_mib_s"])
    for key in ("cm_fetch_resume", "cm_fetch_resume_midpart"):
        assert _is_number(sc["resume"]["contenders"][key]["median"]["redownloaded_bytes"])
    assert _is_number(sc["listing"]["contenders"]["cm_lister"]["median"]["first_s"])
    for fw in ("torch", "keras"):
        assert _is_number(sc["cache_hit"]["contenders"][f"{fw}_cm_online"]["median"]["requests"])


def test_markdown_table_has_a_row_per_contender(
    quick_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_run
    data = json.loads((out / "latest.json").read_text())
    md = (out / "latest.md").read_text()
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| Scenario |"))
    for column in ("Contender", "Median wall time", "Throughput", "Peak RSS growth", "Requests",
                   "Ratio", "Target", "Verdict"):
        assert column in header
    for sc in data["scenarios"].values():
        for c in sc["contenders"].values():
            prefix = f"| {sc['title']} | {c['label']}"
            assert any(line.startswith(prefix) for line in lines), f"no row for {prefix!r}"


def test_charts_are_png_files(quick_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = quick_run
    for name in CHARTS:
        path = out / name
        assert path.is_file(), name
        assert path.read_bytes()[:8] == PNG_MAGIC, f"{name} is not a PNG"
