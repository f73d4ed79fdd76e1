"""Environments the notebook tier runs kernels in, built on first use and kept.

``.venv-colab-nb`` is what Colab ships for notebooks (IPython 7.34, ipywidgets 7.7.1, ipykernel
6.x) plus the frameworks the notebooks need (TensorFlow/Keras, torch, gensim, gcsfs, s3fs) and
colabmodels itself, editable. Only the kernel runs there: nbclient and the demo servers stay in
the test's own environment, as Colab's frontend and kernel are separate processes too.

``python tests/notebooks/notebook_envs.py colab`` builds it outside pytest (the stamp file records what
was installed; a changed pyproject.toml or requirement list rebuilds it).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colabmodels import demo

ROOT = Path(__file__).resolve().parents[2]
COLAB_NB = ROOT / ".venv-colab-nb"
TORCH_PIN = "torch==2.13.0"
COLAB_KERNEL_REQUIREMENTS = [
    "ipython==7.34.0",
    "ipywidgets==7.7.1",
    "ipykernel>=6.29,<7",
    TORCH_PIN,
    "-e", ".[tf,torch,gensim,gcs,s3]",
]
PIP = ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]


def _fingerprint(requirements: list[str]) -> str:
    """What the environment was built from: the package's dependency lists and ``requirements``
    (other edits of pyproject.toml do not rebuild it)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the whole file, then
        wanted: list[Any] = [text, requirements]
    else:
        project = tomllib.loads(text)["project"]
        wanted = [project.get("dependencies", []), project.get("optional-dependencies", {}),
                  requirements]
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()


def venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def make_venv(folder: Path, base_python: str | None = None) -> Path:
    """A new virtual environment from the interpreter running this (not from a venv's copy)."""
    base = base_python or getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--clear", str(folder)], check=True)
    return venv_python(folder)


def pip_install(python: Path, args: list[str], *, cwd: Path = ROOT, log: Path | None = None) -> None:
    """``pip install args`` with ``python``; on failure the error names the log's end."""
    log = log or python.parent.parent / "pip.log"
    with open(log, "ab") as out:
        done = subprocess.run([str(python), *PIP, *args], cwd=cwd, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"pip install {' '.join(args)} failed ({done.returncode}):\n{tail}")


def colab_kernel_python() -> Path:
    """``.venv-colab-nb/bin/python``, building the environment first if it is missing or stale."""
    from filelock import FileLock

    with FileLock(str(COLAB_NB) + ".lock"):  # two test sessions must not build it at once
        return _build_colab_kernel_env()


def _build_colab_kernel_env() -> Path:
    stamp = COLAB_NB / ".installed"
    wanted = _fingerprint(COLAB_KERNEL_REQUIREMENTS)
    python = venv_python(COLAB_NB)
    if stamp.exists() and stamp.read_text().strip() == wanted and python.exists():
        return python
    started = time.perf_counter()
    if not python.exists():
        make_venv(COLAB_NB)
    (COLAB_NB / "pip.log").unlink(missing_ok=True)
    pip_install(python, ["--upgrade", "pip"])
    pip_install(python, [TORCH_PIN])  # first, alone: nothing else may pull another torch
    pip_install(python, COLAB_KERNEL_REQUIREMENTS)
    stamp.write_text(wanted + "\n")
    (COLAB_NB / "build-seconds").write_text(f"{time.perf_counter() - started:.0f}\n")
    return python


# -- what the notebook tests share ------------------------------------------------------------

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass
class Kernel:
    name: str
    python: str | None
    env: dict[str, str]
    flip_switch: bool
    widgets_major: int


@dataclass
class Executed:
    nb: Any
    error: Exception | None
    text: str
    workdir: Path
    servers: demo.DemoServers

    def drive_requests(self) -> list[dict[str, Any]]:
        """The Drive emulator's request log (written when its servers stopped)."""
        return json.loads((self.workdir / "drive-requests.json").read_text())

    def widget_state(self) -> dict[str, Any]:
        return (self.nb.metadata.get("widgets", {})
                .get("application/vnd.jupyter.widget-state+json", {}).get("state", {}))


def assert_ran(done: Executed) -> None:
    assert done.error is None, str(done.error)[-3000:]


def assert_progress_widgets(done: Executed, kernel: Kernel) -> None:
    """tqdm.auto drew its bars as widgets: widget views in the outputs, and FloatProgress models
    of the kernel's ipywidgets generation (controls 1.5.0 on 7.x, 2.0.0 on 8.x) in the state."""
    views = [o for c in done.nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if WIDGET_VIEW in o.get("data", {})]
    assert views, "no widget views in the outputs"
    progress = [m for m in done.widget_state().values() if m["model_name"] == "FloatProgressModel"]
    assert progress, "no progress-bar widgets in the saved widget state"
    expected = "1.5.0" if kernel.widgets_major == 7 else "2.0.0"
    assert {m["model_module_version"] for m in progress} == {expected}


if __name__ == "__main__":
    if sys.argv[1:] == ["colab"]:
        print(colab_kernel_python())
    else:
        raise SystemExit("usage: python tests/notebooks/notebook_envs.py colab")
