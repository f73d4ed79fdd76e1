"""Browser tier: a real JupyterLab (or the classic Notebook UI, nbclassic) on 127.0.0.1 driven by
Debian's Chromium through Playwright. ``classic_notebook`` runs twice: with this env's ipywidgets 8,
and with what Colab ships (a .venv-colab-nb kernel, ipywidgets 7.7.1, and the 7.x page manager).

`make test` installs Chromium with apt when run as root. Without it these tests skip, except
under CI=true, where a missing browser is a failure: CI must prove the page really works.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("COLABMODELS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


def _need_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + "; under CI=true the browser tier must run")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """A Jupyter server the tests opened: JupyterLab (``ui="lab"``) or the classic Notebook UI
    (``ui="classic"``, nbclassic), with ipywidgets ``widgets`` (8, or 7 as Colab ships) in its
    kernel and page."""

    def __init__(self, root: Path, port: int, token: str, proc: subprocess.Popen[bytes], log: Path,
                 *, ui: str = "lab", widgets: int = 8):
        self.root, self.port, self.token, self.proc, self.log = root, port, token, proc, log
        self.ui, self.widgets = ui, widgets

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def notebook_url(self, name: str) -> str:
        if self.ui == "classic":
            return f"{self.url}notebooks/{name}?token={self.token}"
        return f"{self.url}lab/tree/{name}?token={self.token}&reset"


JupyterLab = JupyterServer  # the name the first browser tests were written with

# What Colab ships for widgets (ipywidgets 7.7.1 in the kernel, the 7.x widget manager in the
# page): the notebook tier's .venv-colab-nb, whose widgetsnbextension 3.6 is the classic UI's.
_NOTEBOOK_ENVS = Path(__file__).resolve().parents[1] / "notebooks" / "notebook_envs.py"


def _colab_kernel_python() -> Path:
    """``.venv-colab-nb``'s python (built by the notebook tier's helper when missing)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("colabmodels_notebook_envs", _NOTEBOOK_ENVS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return Path(module.colab_kernel_python())


# The classic UI's widget manager released with ipywidgets 7.7.1. pip gives that env the newest
# 3.6.x (3.6.10), whose Output widget the classic page cannot create ("_deserialize_state is not
# a function"), which takes every widget that holds an Output down with it (3.6.7 to 3.6.10 fail
# so in nbclassic 1.3.3; 3.6.1 to 3.6.6 work).
WIDGETS7_PAGE = "widgetsnbextension==3.6.1"


def _widget_manager_7(folder: Path) -> Path:
    """``WIDGETS7_PAGE``'s nbextension unpacked under ``folder`` (downloaded, never installed: an
    install would replace this env's widgetsnbextension); return the ``share/jupyter`` to add."""
    import zipfile

    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
         "-q", "--no-deps", "--only-binary=:all:", "-d", str(folder), WIDGETS7_PAGE],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wheels = list(folder.glob("widgetsnbextension-*.whl"))
    if done.returncode != 0 or not wheels:
        raise RuntimeError(f"pip download {WIDGETS7_PAGE} failed:\n{done.stderr[-2000:]}")
    share = folder / "share" / "jupyter"
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in wheel.namelist():
            head, sep, rest = name.partition(".data/data/share/jupyter/")
            if sep and rest.startswith("nbextensions/") and "/" not in head:
                target = share / rest
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(wheel.read(name))
    assert (share / "nbextensions" / "jupyter-js-widgets" / "extension.js").exists()
    return share


def _start_jupyter(tmp_path_factory: pytest.TempPathFactory, *, ui: str = "lab",
                   widgets: int = 8) -> Iterator[JupyterServer]:
    """Start a Jupyter server on 127.0.0.1 with a fresh token and private Jupyter dirs, wait
    until it answers, yield it, stop it. ``ui``: "lab" (JupyterLab) or "classic" (nbclassic).
    ``widgets=7``: the kernel and the page's widget manager are Colab's ipywidgets 7.7.1."""
    _need_browser()
    root = tmp_path_factory.mktemp(ui)
    home = tmp_path_factory.mktemp(f"{ui}-home")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "COLABMODELS_CACHE_DIR": str(home / "cache"),
    }
    if widgets == 7:
        python = _colab_kernel_python()
        # JUPYTER_PATH is searched first: the notebook's python3 kernel runs in that env, and
        # the page loads the 7.x widget manager instead of ours
        spec = home / "colab-jupyter" / "kernels" / "python3"
        spec.mkdir(parents=True)
        env["JUPYTER_PATH"] = os.pathsep.join([str(home / "colab-jupyter"),
                                               str(_widget_manager_7(home / "widgets7"))])
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (Colab's ipywidgets 7.7.1)", "language": "python"}))
    log = home / "server.log"
    common = [
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
    ]
    if ui == "lab":
        cmd = [sys.executable, "-m", "jupyterlab", *common, "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    elif ui == "classic":
        pytest.importorskip("nbclassic", reason="the classic Notebook UI needs nbclassic (dev extra)")
        cmd = [sys.executable, "-m", "nbclassic", *common]
    else:
        raise ValueError(f"ui must be 'lab' or 'classic', not {ui!r}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = JupyterServer(root, port, token, proc, log, ui=ui, widgets=widgets)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}api/status?token={token}", timeout=2) as r:
                    json.load(r)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Jupyter ({ui}) did not start:\n"
                                       + log.read_text()[-3000:]) from None
                time.sleep(0.3)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(home / "runtime", ignore_errors=True)


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    yield from _start_jupyter(tmp_path_factory, ui="lab")


@pytest.fixture(scope="session", params=[8, 7], ids=["ipywidgets8", "ipywidgets7-colab"])
def classic_notebook(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """The classic Notebook UI (nbclassic) with this env's ipywidgets 8, then with Colab's 7.7.1."""
    yield from _start_jupyter(tmp_path_factory, ui="classic", widgets=request.param)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
