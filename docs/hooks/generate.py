"""MkDocs hook: the pages that are generated, so that they cannot drift from the code.

- ``reference/api.md``: one entry per name in ``colabmodels.__all__`` (a new public name appears
  by itself), rendered by mkdocstrings from the docstrings;
- ``reference/magics.md`` and ``reference/cli.md``: the magics' and the CLI's own ``--help``;
- ``benchmarks.md`` with its charts: from ``benchmarks/results/``;
- ``img/*.png``: the real-browser tests' screenshots when they are newer than the committed ones;
- ``notebooks/*.ipynb``: the demo notebooks *with their outputs*, copied from the executed copies
  that ``colabmodels demo --workdir .demo`` writes (``make docs`` runs it first); a missing or
  stale executed copy fails the build instead of showing a notebook without outputs.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import os
import shutil
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXECUTED_VAR = "COLABMODELS_DOCS_NOTEBOOKS"
"""Where the executed notebooks are (``NAME.executed.ipynb``); default ``.demo``."""


# -- the API reference --------------------------------------------------------------------------

def public_names() -> list[str]:
    import colabmodels

    return sorted(colabmodels.__all__, key=str.lower)


def api_markdown() -> str:
    """One section per public name, each pointing mkdocstrings at where the object is defined."""
    import colabmodels

    lines = [
        "# Python API",
        "",
        "Everything below is importable from the package itself (`import colabmodels as cm`).",
        "This page is generated from `colabmodels.__all__` and the docstrings.",
        "",
    ]
    for name in public_names():
        obj = getattr(colabmodels, name)
        if name == "__version__":
            lines += ["## `cm.__version__`", "", f"The installed version (`{obj}`).", ""]
            continue
        if isinstance(obj, types.ModuleType):
            page = f"{name}.md"
            lines += [f"## `cm.{name}`", "", f"The module `{obj.__name__}`: see [{name}]({page}).", ""]
            continue
        if inspect.isclass(obj) or inspect.isroutine(obj):
            target = f"{obj.__module__}.{obj.__qualname__}"
            note = ""
        else:  # an object, such as cm.cache: document its class
            cls = type(obj)
            target = f"{cls.__module__}.{cls.__qualname__}"
            note = f"`cm.{name}` is an instance of `{cls.__qualname__}`, documented here."
        lines += [f"## `cm.{name}`", ""]
        if note:
            lines += [note, ""]
        if _defined_at_top_level(target):
            lines += [f"::: {target}", "    options:", "      show_root_heading: false",
                      "      heading_level: 3", ""]
        else:
            # a class made on first use (a subclass of torch's Dataset or Keras' PyDataset, so
            # that importing colabmodels imports neither): written from the live object
            lines += [_live_markdown(name, obj), ""]
    return "\n".join(lines)


def _defined_at_top_level(target: str) -> bool:
    """Whether ``module.Name`` is written as a top-level class/def/assignment in the module's
    source (then mkdocstrings reads it statically)."""
    import importlib.util
    import re

    module, _, attr = target.rpartition(".")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return False
    source = Path(spec.origin).read_text(encoding="utf-8")
    return re.search(rf"^(class|def) {re.escape(attr)}\b|^{re.escape(attr)}\s*[:=]", source,
                     re.MULTILINE) is not None


def _live_markdown(name: str, obj: Any) -> str:
    """Signature and Google-style docstring of a live object, as Markdown."""
    from griffe import Docstring, DocstringSectionKind

    try:
        signature = str(inspect.signature(obj))
    except (TypeError, ValueError):
        signature = "(...)"
    out = ["```python", f"cm.{name}{signature}", "```", ""]
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and obj.__init__.__doc__ and obj.__init__ is not object.__init__:
        doc += "\n\n" + (inspect.getdoc(obj.__init__) or "")
    for section in Docstring(doc, parser="google").parse(warnings=False):
        if section.kind is DocstringSectionKind.text:
            out += [section.value, ""]
        elif section.kind in (DocstringSectionKind.parameters, DocstringSectionKind.attributes,
                              DocstringSectionKind.other_parameters):
            title = "Attributes" if section.kind is DocstringSectionKind.attributes else "Parameters"
            out += [f"**{title}:**", "", "| name | description |", "|---|---|"]
            out += [f"| `{p.name}` | {' '.join(p.description.split())} |" for p in section.value]
            out.append("")
        elif section.kind in (DocstringSectionKind.raises, DocstringSectionKind.returns):
            title = "Raises" if section.kind is DocstringSectionKind.raises else "Returns"
            out += [f"**{title}:**", ""]
            for item in section.value:
                kind = f"`{item.annotation}`: " if item.annotation else ""
                out.append(f"- {kind}{' '.join(item.description.split())}")
            out.append("")
    return "\n".join(out)


# -- the magics and the command line --------------------------------------------------------------

def magics_markdown() -> str:
    from colabmodels.magics import ColabModels

    lines = [
        "# Magics",
        "",
        "Load them with `%load_ext colabmodels`. Each is one call into the Python API; `%NAME?` in",
        "a notebook shows the same help as below (generated from the magics' argument parsers).",
        "Library errors print as one line; `%config ColabModels.full_tracebacks = True` brings",
        "the traceback back.",
        "",
        "## Options",
        "",
        "| option | default | meaning |",
        "|---|---|---|",
    ]
    for name, trait in sorted(ColabModels.class_traits(config=True).items()):
        lines.append(f"| `ColabModels.{name}` | `{trait.default_value!r}` | {trait.help} |")
    lines.append("")
    for name, fn in vars(ColabModels).items():
        parser = getattr(fn, "parser", None)
        if parser is None:
            continue
        lines += [f"## `%{name}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def _help_of(argv: list[str]) -> str:
    from colabmodels import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        cli.main(argv)
    return out.getvalue().rstrip()


def cli_markdown() -> str:
    from colabmodels import cli

    parser = cli.build_parser()
    lines = ["# Command line", "", "`colabmodels` is installed with the package (also",
             "`python -m colabmodels.cli`). Generated from the command's own `--help`.", "",
             "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices:
                lines += [f"## `colabmodels {command}`", "", "```text",
                          _help_of([command, "--help"]), "```", ""]
    return "\n".join(lines)


# -- benchmarks -------------------------------------------------------------------------------

BENCH = ROOT / "benchmarks" / "results"


def benchmark_pages() -> dict[str, str | Path]:
    """``{docs path: markdown text or a chart's file}`` for the benchmark page."""
    out: dict[str, str | Path] = {}
    parts = ["# Benchmarks", "",
             "Measured by `make bench` against the bundled emulator on 127.0.0.1, shaped like a real",
             "link (latency and bandwidth caps as stated in each run's header). Raw numbers are in",
             "`benchmarks/results/*.json`; `make bench QUICK=1` runs the same code paths on small",
             "sizes (the test suite runs it, so the benchmarks cannot rot).", ""]
    for report in [BENCH / "latest.md", *sorted(BENCH.glob("*/latest.md"))]:
        text = report.read_text(encoding="utf-8")
        # each report starts with its own "# title": one level down on this page
        text = "\n".join(("#" + line) if line.startswith("#") else line for line in text.splitlines())
        parts += [text, ""]
        charts = sorted(report.parent.glob("*.png"))
        if charts:
            parts += ["### Charts" if report.parent != BENCH else "## Charts", ""]
        for chart in charts:
            uri = f"benchmarks/{chart.relative_to(BENCH).as_posix()}"
            parts += [f"![{chart.stem.replace('_', ' ')}]({uri})", ""]
            out[uri] = chart
    out["benchmarks.md"] = "\n".join(parts)
    return out


# -- notebooks --------------------------------------------------------------------------------

def copy_executed_notebooks(docs_dir: Path) -> list[Path]:
    """Copy each ``notebooks/NN_*.ipynb``'s executed copy into ``docs/notebooks/``.

    Raises:
        RuntimeError: an executed copy is missing, older than its notebook, has no outputs,
            or stopped at an error.
    """
    executed_dir = Path(os.environ.get(EXECUTED_VAR) or ROOT / ".demo")
    target = docs_dir / "notebooks"
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        executed = executed_dir / f"{source.stem}.executed.ipynb"
        if not executed.exists() or executed.stat().st_mtime < source.stat().st_mtime:
            raise RuntimeError(
                f"{executed} is missing or older than {source.name}: run `make docs` (it executes "
                f"the notebooks first) or `colabmodels demo --workdir {executed_dir}`")
        nb = json.loads(executed.read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        if not any(c.get("outputs") for c in code):
            raise RuntimeError(f"{executed} has no outputs")
        failed = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        if failed:
            raise RuntimeError(f"{executed} stopped with {failed[0].get('ename')}: "
                               f"{failed[0].get('evalue')}; the site shows notebooks that ran")
        shutil.copyfile(executed, target / source.name)
        copied.append(target / source.name)
    return copied


# -- screenshots ------------------------------------------------------------------------------

SCREENSHOTS = ROOT / ".pytest_cache" / "screenshots"
"""Where the real-browser tests (tests/browser) save what Chromium showed."""


def fresh_screenshots(docs_dir: Path) -> dict[str, str | Path]:
    """``docs/img/NAME.png`` replaced by the browser tests' newer shot of the same name, so a
    site built after ``make test`` shows what the current code draws (``docs/img`` itself is
    refreshed with ``COLABMODELS_SCREENSHOTS=docs``)."""
    out: dict[str, str | Path] = {}
    for committed in sorted((docs_dir / "img").glob("*.png")):
        shot = SCREENSHOTS / committed.name
        if shot.exists() and shot.stat().st_mtime > committed.stat().st_mtime:
            out[f"img/{committed.name}"] = shot
    return out


# -- MkDocs events ----------------------------------------------------------------------------

def notebook_title(path: Path) -> str:
    """The notebook's first Markdown heading, else its name."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].replace("`", "").strip()
    return path.stem


def on_config(config: Any) -> Any:
    try:
        copied = copy_executed_notebooks(Path(config["docs_dir"]))
    except RuntimeError as e:
        from mkdocs.exceptions import PluginError

        raise PluginError(str(e)) from None
    # the Notebooks section lists every notebook there is (a new one appears by itself)
    for i, item in enumerate(config["nav"] or []):
        if isinstance(item, dict) and "Notebooks" in item:
            config["nav"][i] = {"Notebooks": [{notebook_title(p): f"notebooks/{p.name}"}
                                              for p in copied]}
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    pages: dict[str, str | Path] = {
        "reference/api.md": api_markdown(),
        "reference/magics.md": magics_markdown(),
        "reference/cli.md": cli_markdown(),
        **benchmark_pages(),
    }
    pages.update(fresh_screenshots(Path(config["docs_dir"])))
    for uri, content in pages.items():
        if uri in files.src_uris:
            files.remove(files.src_uris[uri])
        if isinstance(content, Path):
            files.append(File.generated(config, uri, abs_src_path=str(content)))
        else:
            files.append(File.generated(config, uri, content=content))
    return files


__all__ = ["api_markdown", "benchmark_pages", "cli_markdown", "copy_executed_notebooks",
           "magics_markdown", "public_names"]
