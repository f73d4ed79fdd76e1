"""The notebook runner: execute the demo notebooks with nbclient (a new kernel for each
``fresh-kernel`` cell) and summarise what they printed. Works from an installed package: the
notebooks ship inside it (``colabmodels/demo/notebooks``), and a source checkout uses its
``notebooks/`` folder."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RefError
from .content import QUIET_TF_ENV

__all__ = [
    "FRESH_KERNEL_TAG",
    "NOTEBOOK",
    "NOTEBOOKS_DIR",
    "RunResult",
    "cell_texts",
    "execute_notebook",
    "notebook_text",
    "notebooks",
    "run_notebooks",
    "widget_views",
]


def _notebooks_dir() -> Path:
    """The notebooks shipped in the package (a wheel), else the source checkout's ``notebooks/``."""
    shipped = Path(__file__).resolve().parent / "notebooks"
    if any(shipped.glob("[0-9][0-9]_*.ipynb")):
        return shipped
    return Path(__file__).resolve().parents[2] / "notebooks"


NOTEBOOKS_DIR = _notebooks_dir()
NOTEBOOK = NOTEBOOKS_DIR / "01_quickstart.ipynb"
FRESH_KERNEL_TAG = "fresh-kernel"
"""A cell with this tag starts a new kernel when the runner executes a notebook."""


def notebooks(names: list[str] | None = None) -> list[Path]:
    """``notebooks/NN_*.ipynb`` in order, or the ones named (``"04"``, a stem, or a path).

    Raises:
        RefError: a name matches no notebook.
    """
    found = sorted(p for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return found
    picked = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.exists():
            picked.append(path.resolve())
            continue
        matches = [p for p in found if p.stem == name or p.stem.startswith(name.rstrip("_") + "_")]
        if len(matches) != 1:
            raise RefError(f"no single notebook matches {name!r}; there are: "
                           + ", ".join(p.stem for p in found))
        picked.append(matches[0])
    return picked


def _kernel_manager(work: Path, python: str | None, env: Mapping[str, str] | None) -> Any:
    """A kernel manager whose kernel runs ``python`` (default: this interpreter)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec_dir = work / "kernels" / "demo"
    spec_dir.mkdir(parents=True, exist_ok=True)
    # Quiet TensorFlow (see QUIET_TF_ENV), and absl's Python logger at ERROR: Keras reports
    # harmless notes through it ("compiled metrics have yet to be built"); errors still show.
    quiet_absl = "import logging; logging.getLogger('absl').setLevel(logging.ERROR)"
    spec = {"argv": [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     f"--IPKernelApp.exec_lines={json.dumps([quiet_absl])}"],
            "display_name": "colabmodels demo", "language": "python",
            "env": {**QUIET_TF_ENV, **(env or {})}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    ksm = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)], ensure_native_kernel=False)
    # Unix sockets (short paths in the temp folder; removed at shutdown) rather than TCP ports:
    # local only, and no "running over TCP without encryption" warning from the kernel.
    import tempfile
    import uuid

    ipc = os.path.join(tempfile.gettempdir(), f"cm-kernel-{uuid.uuid4().hex[:12]}")
    return AsyncKernelManager(kernel_name="demo", kernel_spec_manager=ksm, transport="ipc", ip=ipc)


def _client_class() -> Any:
    from nbclient import NotebookClient

    class Client(NotebookClient):
        """nbclient, except that an Output widget whose ``msg_id`` is cleared while it was
        already empty changes nothing, as in JupyterLab's widget manager (nbclient pops an
        empty hook stack there and stops the run; seen with ipywidgets 7.7.1 callbacks)."""

        def remove_output_hook(self, msg_id: str, hook: Any) -> None:
            if msg_id and self.output_hook_stack.get(msg_id):
                super().remove_output_hook(msg_id, hook)

    return Client


def execute_notebook(path: Path, work: Path, *, timeout: int = 600, python: str | None = None,
                     kernel_env: Mapping[str, str] | None = None) -> tuple[Any, Exception | None]:
    """Run a notebook with nbclient, its kernel in ``work``; a cell tagged ``fresh-kernel``
    starts a new kernel (as a restart would), so what follows cannot lean on earlier state.

    Args:
        python: the kernel's interpreter (another environment's ``bin/python``).
        kernel_env: variables added to the kernel's environment (it inherits this process's).

    Returns:
        the notebook with outputs, and the error that stopped it (None when all cells ran).
    """
    import nbformat
    from jupyter_core.utils import run_sync
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    segments: list[list[Any]] = [[]]
    for cell in nb.cells:
        if FRESH_KERNEL_TAG in cell.get("metadata", {}).get("tags", []) and segments[-1]:
            segments.append([])
        segments[-1].append(cell)
    work.mkdir(parents=True, exist_ok=True)
    widget_mime = "application/vnd.jupyter.widget-state+json"
    widgets: dict[str, Any] = {}
    error: Exception | None = None
    for cells in segments:
        part = nbformat.v4.new_notebook(cells=cells, metadata=dict(nb.metadata))
        km = _kernel_manager(work, python, kernel_env)
        client = _client_class()(part, timeout=timeout, km=km,
                                 resources={"metadata": {"path": str(work)}})
        try:
            client.execute()
        except CellExecutionError as e:
            error = e
        finally:  # nbclient leaves running a kernel it was handed
            if run_sync(km.is_alive)():
                run_sync(km.shutdown_kernel)(now=True)
            widgets.update(part.metadata.get("widgets", {}).get(widget_mime, {}).get("state", {}))
        if error is not None:
            break
    if widgets:  # every segment's widget models, as one kernel's would be
        nb.metadata["widgets"] = {widget_mime: {"state": widgets, "version_major": 2,
                                                "version_minor": 0}}
    return nb, error


def cell_texts(cell: Any, *, stderr: bool = True) -> list[str]:
    """The text a code cell printed or displayed (errors as ``Name: value``)."""
    texts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            if output.get("name") == "stderr" and not stderr:
                continue
            texts.append(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" not in data:  # progress bars
                texts.append(data.get("text/plain", ""))
        elif output.get("output_type") == "error":
            texts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return texts


def notebook_text(nb: Any) -> str:
    """Everything the code cells of an executed notebook printed or displayed."""
    return "\n".join("\n".join(cell_texts(c)) for c in nb.cells if c.cell_type == "code")


def widget_views(nb: Any) -> int:
    """How many outputs of an executed notebook are widget views (progress bars, browsers)."""
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {}))


@dataclass
class RunResult:
    notebook: Path
    executed: Path
    seconds: float
    error: Exception | None
    nb: Any = field(repr=False, default=None)


def run_notebooks(paths: list[Path], work: Path, *, python: str | None = None,
                  kernel_env: Mapping[str, str] | None = None,
                  timeout: int = 600) -> list[RunResult]:
    """Execute ``paths`` one after another (the demo servers must be running and applied);
    each executed copy is written to ``work/NAME.executed.ipynb``."""
    import nbformat

    results = []
    for path in paths:
        started = time.perf_counter()
        nb, error = execute_notebook(path, work / "run" / path.stem, timeout=timeout,
                                     python=python, kernel_env=kernel_env)
        out = work / f"{path.stem}.executed.ipynb"
        nbformat.write(nb, out)
        results.append(RunResult(path, out, time.perf_counter() - started, error, nb))
    return results


def _summary(result: RunResult) -> None:
    print(f"\n== {result.notebook.name}")
    for cell in result.nb.cells:
        if cell.cell_type != "code" or not cell.get("outputs"):
            continue
        first = next((ln for ln in cell.source.splitlines()
                      if ln.strip() and not ln.lstrip().startswith("#")), "")
        print(f"In  » {first}")
        for text in cell_texts(cell, stderr=False):
            for line in text.rstrip().splitlines()[:8]:
                print(f"Out « {line}")
    state = "FAILED" if result.error is not None else "ran"
    print(f"-- {result.notebook.name} {state} in {result.seconds:.1f} s; executed copy: {result.executed}")
    if result.error is not None:
        print(str(result.error)[-2000:])
