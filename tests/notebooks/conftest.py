"""The notebook tier: every ``notebooks/NN_*.ipynb`` executed with nbclient against the demo
servers (Drive emulator, moto S3, GCS emulator on 127.0.0.1), in two kernels:

- ``jupyter``: this environment's kernel (IPython 9, ipywidgets 8);
- ``colab``: a kernel from ``.venv-colab-nb`` (IPython 7.34, ipywidgets 7.7.1, ipykernel 6,
  the frameworks; built on first use, see envs.py), with ``COLAB_RELEASE_TAG`` set so
  colabmodels believes it runs in Colab, and the notebook's one switch flipped
  (``USE_EMULATOR = True``) as a Colab user would.

Each test gets its own demo servers, cache and Drive (the demo content is generated once per
session), so saved versions start at v1 and every download really happens.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from notebook_envs import Executed, Kernel, colab_kernel_python

from colabmodels import demo

SWITCH = "USE_EMULATOR = None"
_SCRUBBED = ("COLABMODELS_", "GOOGLE_APPLICATION_CREDENTIALS", "AWS_", "STORAGE_EMULATOR_HOST",
             "COLAB_RELEASE_TAG")


@pytest.fixture(scope="session")
def demo_content(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo-content")
    demo.make_content(folder)
    return folder


@pytest.fixture(scope="session")
def colab_python() -> str:
    """The Colab-pinned kernel's interpreter, checked to have what Colab has."""
    python = str(colab_kernel_python())
    versions = subprocess.run(
        [python, "-c", "import IPython, ipywidgets, ipykernel; "
                       "print(IPython.__version__, ipywidgets.__version__, ipykernel.__version__)"],
        capture_output=True, text=True, check=True).stdout.split()
    assert versions[:2] == ["7.34.0", "7.7.1"], versions
    assert versions[2].startswith("6."), versions
    return python


@pytest.fixture(params=["jupyter", "colab"])
def kernel(request) -> Kernel:
    if request.param == "jupyter":
        return Kernel("jupyter", None, {}, False, 8)
    python = request.getfixturevalue("colab_python")
    return Kernel("colab", python, {"COLAB_RELEASE_TAG": "test"}, True, 7)


@pytest.fixture
def run_notebook(tmp_path, demo_content, monkeypatch):
    """Execute notebooks/NAME in ``kernel`` against fresh demo servers; stops them afterwards."""
    started: list[demo.DemoServers] = []

    def run(name: str, kernel: Kernel) -> Executed:
        for var in list(os.environ):
            if var.startswith(_SCRUBBED):
                monkeypatch.delenv(var)
        servers = demo.start_emulator(tmp_path / "demo", content=demo_content)
        started.append(servers)
        for var, value in servers.env.items():
            monkeypatch.setenv(var, value)
        [path] = demo.notebooks([name])
        if kernel.flip_switch:
            source = path.read_text(encoding="utf-8")
            assert SWITCH in source, f"{path.name} lacks the first-cell switch"
            path = tmp_path / path.name
            path.write_text(source.replace(SWITCH, "USE_EMULATOR = True"), encoding="utf-8")
        nb, error = demo.execute_notebook(path, tmp_path / "run", python=kernel.python,
                                          kernel_env=kernel.env, timeout=600)
        import nbformat

        nbformat.write(nb, tmp_path / f"{path.stem}.{kernel.name}.ipynb")
        servers.stop()
        return Executed(nb, error, demo.notebook_text(nb), tmp_path / "demo", servers)

    yield run
    for servers in started:
        servers.stop()
