"""Binder, checked here: the environment built from binder/ the way repo2docker builds it, with
no Docker, and the quickstart executed in it.

repo2docker, for this repository: a fresh Python environment (``runtime.txt``), ``pip install -r
binder/requirements.txt`` from the repository root, ``binder/postBuild`` once, and at every
launch ``binder/start`` wrapping the notebook server's command. Here: a fresh venv from this
interpreter, the same pip install, the same postBuild with a fresh ``HOME``, and ``binder/start``
wrapping ``python -m colabmodels.demo run 01`` (nbclient executing the notebook in a kernel of
that venv) instead of the notebook server.

What differs from a real Binder build: repo2docker starts from its own base environment (conda,
with JupyterLab, ipykernel and nbclient already there); here the venv gets ipykernel and nbclient
first, as the stand-in for that base. PyTorch's CPU index (``--extra-index-url`` in the
requirements) is not reachable from this machine, so that line is dropped and pip finds the same
``torch==2.13.0`` CPU wheel on local disk; on Binder it comes from the index. Nothing runs in a
container, and the Python is this machine's 3.11 (``runtime.txt`` asks Binder for 3.11 too).

The build takes minutes: it happens once per test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from notebook_envs import ROOT, make_venv, pip_install

from colabmodels import demo

pytest.importorskip("nbformat")
pytestmark = pytest.mark.timeout(2400)

BINDER = ROOT / "binder"
REPO2DOCKER_BASE = ["ipykernel>=6.29", "nbclient>=0.10"]
UNREACHABLE_HERE = "--extra-index-url https://download.pytorch.org/whl/cpu"


def reachable_requirements(source: Path, dest: Path) -> Path:
    """binder/requirements.txt without the index this machine cannot reach."""
    lines = source.read_text(encoding="utf-8").splitlines()
    dest.write_text("\n".join(ln for ln in lines if ln.strip() != UNREACHABLE_HERE) + "\n",
                    encoding="utf-8")
    return dest


def binder_environ(venv: Path, home: Path) -> dict[str, str]:
    """What a Binder container has: the environment's bin first on PATH, its own HOME, and
    nothing of this machine's colabmodels, Google, AWS or virtualenv settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COLABMODELS_", "GOOGLE_", "AWS_", "STORAGE_EMULATOR_HOST",
                                "VIRTUAL_ENV", "PYTHONPATH", "COLAB_", "JUPYTER_", "IPYTHONDIR"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


@pytest.fixture(scope="session")
def binder_build(tmp_path_factory):
    """The Binder environment, built once per session: (venv, home, environ, seconds taken)."""
    root = tmp_path_factory.mktemp("binder")
    started = time.perf_counter()
    python = make_venv(root / "env")
    pip_install(python, REPO2DOCKER_BASE, log=root / "pip.log")
    requirements = reachable_requirements(BINDER / "requirements.txt", root / "requirements.txt")
    pip_install(python, ["-r", str(requirements)], cwd=ROOT, log=root / "pip.log")
    home = root / "home"
    home.mkdir()
    env = binder_environ(root / "env", home)
    post = subprocess.run([str(BINDER / "postBuild")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert post.returncode == 0, post.stdout[-2000:] + post.stderr[-3000:]
    return root / "env", home, env, time.perf_counter() - started


def test_binder_requirements_install_cpu_torch_pinned_and_the_demo_extra():
    lines = [ln.strip() for ln in (BINDER / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert UNREACHABLE_HERE in lines  # Binder has no GPU: CPU-only wheels, not a CUDA build
    assert "torch==2.13.0" in lines
    extras = next(ln for ln in lines if ln.startswith("-e ."))
    assert all(x in extras for x in ("tf", "torch", "gensim", "gcs", "s3", "demo"))
    for script in ("postBuild", "start"):
        assert os.access(BINDER / script, os.X_OK), f"binder/{script} is not executable"
    assert (BINDER / "start").read_text().rstrip().endswith('exec "$@"')


def test_binder_environment_runs_the_quickstart_without_google_credentials(binder_build, tmp_path):
    venv, home, env, build_seconds = binder_build
    demo_dir = home / ".colabmodels-demo"
    assert (demo_dir / "content" / "classifier.h5").is_file()  # made by postBuild
    out = tmp_path / "out"
    try:
        run = subprocess.run(
            [str(BINDER / "start"), "python", "-m", "colabmodels.demo", "run", "01",
             "--workdir", str(out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        state = json.loads((demo_dir / "state.json").read_text())
    finally:
        stopped = subprocess.run([str(venv / "bin" / "python"), "-m", "colabmodels.demo", "stop",
                                  "--workdir", str(demo_dir)], cwd=ROOT, env=env, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert stopped.returncode == 0  # binder/start's servers were still serving the session
    assert not demo._alive(state["pid"])
    assert "1 of 1 notebooks ran top to bottom" in run.stdout
    # the kernel was the Binder environment's Python, pointed at start's servers
    spec = json.loads((out / "run" / "01_quickstart" / "kernels" / "demo" / "kernel.json").read_text())
    assert Path(spec["argv"][0]).parent == venv / "bin"
    assert state["env"]["COLABMODELS_CACHE_DIR"].startswith(str(home))
    import nbformat

    nb = nbformat.read(out / "01_quickstart.executed.ipynb", as_version=4)
    text = demo.notebook_text(nb)
    assert "the bundled emulator with demo content" in text
    assert "keras model: demo_classifier" in text
    assert "torch state dict: 4 tensors" in text
    assert "v1 predicts like the original: True" in text
    assert demo.widget_views(nb) > 0
    print(f"Binder environment built in {build_seconds:.0f} s")
