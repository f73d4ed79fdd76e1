"""The architecture stays as docs/architecture.md draws it.

- ``colabmodels.__all__`` is sorted and exports every public name of DESIGN.md that is built;
- the import contracts in pyproject.toml ([tool.importlinter]) hold, so an import that points up,
  a face importing another face, or a cycle fails pytest as well as ``make lint``;
- the contracts have teeth: the same check on a copy of the package with one bad import fails.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import colabmodels
from colabmodels.errors import MissingDependencyError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "colabmodels"

# DESIGN.md, "Public names (stable; tests and notebooks rely on them)".
DESIGN_PUBLIC_NAMES = [
    "DatasetPanel", "DriveBrowser", "DriveImageFolder", "DriveImageSequence", "DriveSession",
    "FormatInfo", "SavedModelInfo", "cache", "errors", "fetch", "image_dataset_from_drive",
    "load_ipython_extension", "load_model", "mount", "pack", "save_model", "sniff_format",
    "unload_ipython_extension", "versions",
]

BUILT_FROM_A_FRAMEWORK = {"DriveImageFolder", "DriveImageSequence"}


def _defined_names() -> set[str]:
    """Functions and classes anywhere in the package (not the emulator; also those built inside
    a function, like a torch Dataset made on first use), top-level assignments and module
    names: what "is built" means for a public name."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue
        names.add(path.stem)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
        for node in tree.body:
            if isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


@pytest.mark.colab
def test_package_all_is_sorted_without_duplicates():
    names = list(colabmodels.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


@pytest.mark.colab
@pytest.mark.parametrize("name", DESIGN_PUBLIC_NAMES)
def test_design_public_name_is_exported(name):
    if name not in _defined_names():
        pytest.skip(f"{name} is not built yet")
    assert name in colabmodels.__all__, f"{name} is built but not exported by colabmodels"
    assert name in dir(colabmodels)
    if name in BUILT_FROM_A_FRAMEWORK:
        return  # resolving it imports Keras or torch (seconds); the frameworks tier loads them
    try:
        assert getattr(colabmodels, name) is not None
    except MissingDependencyError:
        pass  # exported; it needs an optional extra that this environment does not have


@pytest.mark.colab
def test_cm_cache_is_the_cache_object():
    from colabmodels.cachestore import Cache

    assert isinstance(colabmodels.cache, Cache)


# -- import contracts ---------------------------------------------------------------------------

def _lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("importlinter")
    exe = Path(sys.executable).with_name("lint-imports")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "importlinter.cli"]
    return subprocess.run([*command, "--no-logo", "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _contracts() -> list[dict]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["importlinter"]["contracts"]


@pytest.mark.colab
def test_every_module_has_a_layer():
    """A new module or package must be placed in the layers (and docs/architecture.md), or
    nothing would check what it imports."""
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    placed = {name.strip().strip("()") for layer in layers["layers"]
              for name in layer.replace(":", "|").split("|")}
    children = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    apart = {"__init__", "__main__", "testing"}  # the package itself, `python -m`, the emulator
    assert children - apart - placed == set()
    assert placed - children == set()  # no layer names a module that is gone


def test_import_contracts_hold():
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout
    assert done.stdout.count("KEPT") >= 6


@pytest.mark.parametrize("module, bad_import, broken", [
    ("magics.py", "from . import cli", "Faces do not import each other: magics and cli"),
    ("cli.py", "from . import widgets", "Faces do not import each other: cli and widgets"),
    ("widgets/__init__.py", "from .. import magics", "widgets never import the magics"),
    ("cachestore.py", "from . import api", "Imports point down only"),
    ("refs.py", "from .drive import session", "Imports point down only"),
    ("testing/__init__.py", "from .. import cachestore", "The Drive emulator imports nothing"),
    ("bulk.py", "import googleapiclient.discovery", "Drive requests stay in colabmodels.drive"),
    ("browse.py", "from pydrive2.drive import GoogleDrive", "Drive requests stay in colabmodels.drive"),
])
def test_an_import_that_breaks_a_contract_fails_the_check(tmp_path, module, bad_import, broken):
    copy = tmp_path / "colabmodels"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = copy / module
    target.write_text(target.read_text() + f"\n{bad_import}  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = _lint_imports(tmp_path, env)
    assert done.returncode != 0, done.stdout
    assert any(broken in line and "BROKEN" in line for line in done.stdout.splitlines()), done.stdout


# -- the Drive room -------------------------------------------------------------------------------

# A request to Drive as the code writes it: a resource call chained into a method
# (``s.files().list(``, ``service.changes().getStartPageToken(``), a request run through the
# session (``session.execute(lambda s: ...)``, ``.execute(one_page, what=...)``), or a URL of
# the v2 API. Docstrings are left out (they may name requests).
DRIVE_REQUEST = re.compile(
    r"\.(?:files|changes|drives|about|permissions|revisions|replies|comments|parents|children|"
    r"teamdrives|channels|apps|properties)\(\)\s*\.\s*\w+\("
    r"|\.execute\(\s*(?:lambda\b|\w+\s*,\s*what\s*=)"
    r"|[\"']drive/v2/"
)


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """``path``'s source lines outside docstrings (so text about requests is not counted)."""
    text = path.read_text()
    doc_lines: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                doc_lines.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if n not in doc_lines]


def drive_requests_outside_the_room(package: Path) -> list[str]:
    """Every line of ``package`` outside ``drive/`` and the emulator that makes a Drive request."""
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.parts[0] in ("drive", "testing"):
            continue
        for n, line in _code_lines(path):
            if DRIVE_REQUEST.search(line):
                found.append(f"{rel}:{n}: {line.strip()}")
    return found


@pytest.mark.colab
def test_drive_requests_are_made_only_in_the_drive_room():
    """docs/architecture.md, "The Drive room": a new Drive request goes to colabmodels/drive/."""
    assert drive_requests_outside_the_room(PACKAGE) == []


@pytest.mark.parametrize("module, request_line", [
    ("bulk.py", "x = session.execute(lambda s: s.files().list(q='x'), what='y')"),
    ("browse.py", "x = s.changes().getStartPageToken()"),
    ("registry.py", "x = session.execute(one_page, what='listing')"),
    ("api.py", "URL = 'https://www.googleapis.com/' + 'drive/v2/files'"),
])
def test_a_drive_request_outside_the_room_is_found(tmp_path, module, request_line):
    copy = tmp_path / "colabmodels"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n\ndef _added():\n    {request_line}\n")
    found = drive_requests_outside_the_room(copy)
    assert len(found) == 1 and found[0].startswith(f"{module}:"), found
