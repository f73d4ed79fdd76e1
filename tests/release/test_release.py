"""The release check: what we ship builds, passes `twine check`, and works once installed.

The sdist and the wheel are built with `python -m build`; the wheel is installed into a clean
virtual environment (no source tree on the path: every command runs in a temporary folder, with
PYTHONPATH unset), and there:

- `import colabmodels` is light (no TensorFlow, torch, Keras, gensim or PyDrive2 imported) and
  comes from the installed package;
- `colabmodels --help` works;
- the emulator's command line serves, and the installed `colabmodels fetch` reads a file from it;
- `colabmodels demo 01` runs the quickstart notebook (shipped inside the wheel) top to bottom;
- `gdrive://` resolves through the `fsspec.specs` entry point, without importing colabmodels
  first (checked once pyproject.toml declares the entry point).

The install is `colabmodels[tf,torch,demo]` (what notebook 01 needs), from the package sources
pip is configured with. A second, resolve-only check: pip 23.0.1 resolves the extras whose
dependencies once ended in `ResolutionImpossible` there (`[gcs,s3,gensim,demo]`: s3fs and
aiobotocore against moto's boto3); the TensorFlow and torch extras are resolved by the install
above (pip 23 would fetch each multi-hundred-MB wheel just to read its metadata).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
TORCH_PIN = "torch==2.13.0"  # never a bare torch: an open range may pull a multi-GB CUDA build
HEAVY = ("tensorflow", "torch", "keras", "gensim", "pydrive2", "googleapiclient", "PIL")

pytestmark = pytest.mark.timeout(1800)


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {done.returncode}\n"
                             f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that points at a source tree, a venv or our servers."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
           and not k.startswith(("COLABMODELS_", "AWS_", "GOOGLE_APPLICATION_CREDENTIALS",
                                 "STORAGE_EMULATOR_HOST", "COLAB_RELEASE_TAG", "PYTEST_"))}
    env.update(extra)
    return env


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=out)
    [wheel] = out.glob("colabmodels-*.whl")
    [sdist] = out.glob("colabmodels-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory) -> Path:
    """A clean venv with the wheel and what notebook 01 needs; returns its bin/ folder."""
    where = tmp_path_factory.mktemp("venv")
    venv.create(where / "v", with_pip=True)
    bin_dir = where / "v" / "bin"
    # --no-compile: byte-compiling TensorFlow's and torch's sources is most of an install's time
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
          "--no-compile", TORCH_PIN, f"{dists['wheel']}[tf,torch,demo]"], cwd=where, env=_clean_env(), timeout=1500)
    return bin_dir


def test_sdist_and_wheel_pass_twine_check_and_hold_what_we_ship(dists):
    _run([sys.executable, "-m", "twine", "check", "--strict", str(dists["wheel"]),
          str(dists["sdist"])], cwd=dists["wheel"].parent)
    names = zipfile.ZipFile(dists["wheel"]).namelist()
    assert "colabmodels/py.typed" in names
    notebooks = sorted(n for n in names if n.startswith("colabmodels/demo/notebooks/"))
    shipped = sorted(f"colabmodels/demo/notebooks/{p.name}"
                     for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks == shipped and shipped
    assert "colabmodels/testing/fakedrive/__main__.py" in names  # the emulator ships
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/"))]
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(dists["wheel"]).read(entry_points).decode()
    assert "colabmodels = colabmodels.cli:main" in text
    for group, entries in _pyproject()["project"].get("entry-points", {}).items():
        for name, target in entries.items():
            assert f"[{group}]" in text and f"{name} = {target}" in text


def test_import_is_light_and_comes_from_the_installed_package(installed, tmp_path):
    code = ("import sys, colabmodels\n"
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "print(colabmodels.__file__)\n"
            "assert not heavy, heavy\n")
    out = _run([str(installed / "python"), "-c", code], cwd=tmp_path, env=_clean_env()).stdout
    assert str(installed.parent) in out and str(ROOT) not in out


def test_the_command_line_answers_help(installed, tmp_path):
    out = _run([str(installed / "colabmodels"), "--help"], cwd=tmp_path, env=_clean_env()).stdout
    assert "fetch" in out and "demo" in out and "cache" in out


@pytest.fixture(scope="module")
def emulator(installed, tmp_path_factory):
    """The installed emulator's command line, serving a small folder tree."""
    where = tmp_path_factory.mktemp("emulator")
    (where / "content" / "data").mkdir(parents=True)
    (where / "content" / "data" / "hello.txt").write_text("hello from the wheel\n")
    ready, key = where / "ready.json", where / "key.json"
    proc = subprocess.Popen(
        [str(installed / "python"), "-m", "colabmodels.testing.fakedrive", "--port", "0",
         "--ready-file", str(ready), "--service-account-file", str(key),
         "--demo-content", str(where / "content")],
        cwd=where, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the emulator did not become ready"
            time.sleep(0.2)
        yield {"url": json.loads(ready.read_text())["url"], "key": str(key), "dir": where}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_emulator_command_line_serves_what_the_installed_cli_fetches(installed, emulator, tmp_path):
    env = _clean_env(COLABMODELS_DRIVE_ENDPOINT=emulator["url"],
                     GOOGLE_APPLICATION_CREDENTIALS=emulator["key"],
                     COLABMODELS_CACHE_DIR=str(tmp_path / "cache"))
    out = _run([str(installed / "colabmodels"), "fetch", "MyDrive/data/hello.txt", "--no-progress"],
               cwd=tmp_path, env=env).stdout
    path = Path(out.strip().splitlines()[-1])
    assert path.read_text() == "hello from the wheel\n"
    assert str(tmp_path / "cache") in str(path)


def test_gdrive_urls_resolve_through_the_entry_point(installed, emulator, tmp_path):
    specs = _pyproject()["project"].get("entry-points", {}).get("fsspec.specs", {})
    if "gdrive" not in specs:
        pytest.skip("pyproject.toml declares no fsspec.specs entry point for gdrive yet")
    code = ("import sys, fsspec\n"
            "cls = fsspec.get_filesystem_class('gdrive')\n"
            "assert 'colabmodels' not in sys.modules or cls.__module__.startswith('colabmodels')\n"
            "print(cls.__module__, cls.__name__)\n"
            f"with fsspec.open('gdrive://MyDrive/data/hello.txt', 'rb', service_account={emulator['key']!r},"
            f" endpoint={emulator['url']!r}) as f:\n"
            "    print(f.read().decode())\n")
    out = _run([str(installed / "python"), "-c", code], cwd=tmp_path,
               env=_clean_env(COLABMODELS_CACHE_DIR=str(tmp_path / "cache"))).stdout
    assert specs["gdrive"].replace(":", " ") in out
    assert "hello from the wheel" in out


def test_colabmodels_demo_runs_notebook_01_from_the_installed_package(installed, tmp_path):
    done = _run([str(installed / "colabmodels"), "demo", "01", "--workdir", str(tmp_path / "demo")],
                cwd=tmp_path, env=_clean_env(HOME=str(tmp_path)), timeout=1200, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    assert "1 of 1 notebooks ran top to bottom" in done.stdout
    assert "keras model: demo_classifier" in done.stdout
    executed = json.loads((tmp_path / "demo" / "01_quickstart.executed.ipynb").read_text())
    assert any(c.get("outputs") for c in executed["cells"] if c["cell_type"] == "code")


def test_the_extras_resolve_with_pip_23(dists, tmp_path):
    venv.create(tmp_path / "v", with_pip=True)
    python = str(tmp_path / "v" / "bin" / "python")
    env = _clean_env()
    _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "pip==23.0.1"],
         cwd=tmp_path, env=env)
    done = _run([python, "-m", "pip", "install", "--disable-pip-version-check", "--dry-run",
                 "--ignore-installed", f"{dists['wheel']}[gcs,s3,gensim,demo]"],
                cwd=tmp_path, env=env, timeout=1500)
    assert "Would install" in done.stdout
    assert "colabmodels-" in done.stdout and "ResolutionImpossible" not in done.stderr
