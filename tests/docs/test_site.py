"""The generated reference pages of the documentation site cover what the package offers: every
name in ``colabmodels.__all__``, every magic and every CLI command (the full build, with its
link checks, is `make docs`)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

import colabmodels

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hook():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "hooks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_page_has_a_section_for_every_public_name(hook):
    text = hook.api_markdown()
    missing = [n for n in colabmodels.__all__ if f"## `cm.{n}`" not in text]
    assert not missing
    assert "::: colabmodels.api.load_model" in text  # rendered from the docstring where defined
    assert "is an instance of `Cache`" in text


def test_the_magics_and_cli_pages_hold_their_help(hook):
    from colabmodels.magics import ColabModels

    magics = hook.magics_markdown()
    for name in ("drive_mount", "load_model", "save_model", "models", "cache", "drive_browse", "dataset"):
        assert f"## `%{name}`" in magics
        assert getattr(ColabModels, name).parser.format_help().strip().splitlines()[0] in magics
    cli = hook.cli_markdown()
    for command in ("fetch", "versions", "cache", "fakedrive", "demo"):
        assert f"## `colabmodels {command}`" in cli
    assert "--ready-file" in cli  # the emulator's own options, forwarded


def test_a_notebook_that_stopped_at_an_error_or_is_stale_fails_the_build(hook, tmp_path, monkeypatch):
    monkeypatch.setenv(hook.EXECUTED_VAR, str(tmp_path))
    with pytest.raises(RuntimeError, match="missing or older"):
        hook.copy_executed_notebooks(tmp_path / "docs")
    for source in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        nb = json.loads(source.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ok\n"}]
        (tmp_path / f"{source.stem}.executed.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    copied = hook.copy_executed_notebooks(tmp_path / "docs")
    assert len(copied) == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    first = sorted(tmp_path.glob("*.executed.ipynb"))[0]
    nb = json.loads(first.read_text(encoding="utf-8"))
    nb["cells"][-1]["outputs"] = [{"output_type": "error", "ename": "NotFoundError", "evalue": "x",
                                   "traceback": []}]
    first.write_text(json.dumps(nb), encoding="utf-8")
    os.utime(first)
    with pytest.raises(RuntimeError, match="stopped with NotFoundError"):
        hook.copy_executed_notebooks(tmp_path / "docs")
