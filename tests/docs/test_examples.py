"""Every example in the documentation runs, against the demo servers (the Drive emulator, moto's
S3 and the GCS emulator on 127.0.0.1, with the demo content the pages name), as a reader who
started them with `colabmodels demo start` would run it. One process per page, a fresh cache
each, in page order; the first failing example fails its page's test with its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from colabmodels import demo

from .run_page import examples

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts)
RUNNABLE = [p for p in PAGES if any(runs for _, _, runs in examples(p.read_text(encoding="utf-8")))]

pytestmark = pytest.mark.timeout(900)


def test_the_runner_tells_runnable_examples_from_the_others():
    text = ("intro\n```python\nx = 1\n```\n<!-- not run: needs Colab -->\n```python\ny = 2\n```\n"
            "```bash\nls\n```\n```python title=\"t\"\nz = 3\n```\n")
    assert [(code, runs) for _, code, runs in examples(text)] == [
        ("x = 1\n", True), ("y = 2\n", False), ("z = 3\n", True)]


def test_every_guide_has_examples_that_run():
    guides = [p for p in PAGES if p.parent.name == "guides"]
    assert guides and set(guides) <= set(RUNNABLE), sorted(set(guides) - set(RUNNABLE))


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    work = tmp_path_factory.mktemp("docs-demo")
    running = demo.start_emulator(work / "demo", content=work / "content")
    yield running
    running.stop()


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT / "docs")) for p in RUNNABLE])
def test_the_examples_of_the_page_run(page, servers, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COLABMODELS_", "AWS_", "GOOGLE_APPLICATION_CREDENTIALS",
                                "STORAGE_EMULATOR_HOST", "COLAB_RELEASE_TAG"))}
    env.update(servers.env)
    env.update({"COLABMODELS_CACHE_DIR": str(tmp_path / "cache"),
                "COLABMODELS_CONFIG_DIR": str(tmp_path / "config"),
                "IPYTHONDIR": str(tmp_path / "ipython"), "MPLBACKEND": "Agg"})
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "docs" / "run_page.py"), str(page)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
