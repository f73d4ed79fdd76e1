"""``make demo``: the quickstart notebook against the bundled Drive emulator.

Generates demo content (a small Keras classifier saved as HDF5 and a torch state dict), starts
:class:`~colabmodels.testing.FakeDrive` on 127.0.0.1 with that content shared by link, then
executes ``notebooks/01_quickstart.ipynb`` with nbclient and prints what each step did, or,
with ``--open``, opens the notebook in JupyterLab with the same environment.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "01_quickstart.ipynb"


def make_content(folder: Path) -> dict[str, Path]:
    """A Keras HDF5 classifier and a torch state dict, small enough to build in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    keras_path = folder / "classifier.h5"
    if not keras_path.exists():
        import keras

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")], name="demo_classifier")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.save(keras_path)
    out["keras"] = keras_path
    torch_path = folder / "encoder.pth"
    if not torch_path.exists():
        import torch

        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
        torch.save(net.state_dict(), torch_path)
    out["torch"] = torch_path
    return out


def stage(fd: Any, work: Path) -> dict[str, str]:
    """Put the demo content on the emulator ``fd`` and return the environment the notebook needs."""
    content = make_content(work / "content")
    keras_id = fd.put("MyDrive/demo/classifier.h5", content["keras"], public=True,
                      description="demo Keras classifier (HDF5)")
    torch_id = fd.put("MyDrive/demo/encoder.pth", content["torch"], public=True,
                      description="demo torch state dict")
    key = work / "service-account.json"
    fd.write_service_account(key)
    return {
        "COLABMODELS_DRIVE_ENDPOINT": fd.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key),
        "COLABMODELS_CACHE_DIR": str(work / "cache"),
        "COLABMODELS_CONFIG_DIR": str(work / "config"),
        "DEMO_KERAS_LINK": f"https://drive.google.com/file/d/{keras_id}/view?usp=sharing",
        "DEMO_TORCH_LINK": f"https://drive.google.com/open?id={torch_id}",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def execute_notebook(path: Path, work: Path, *, timeout: int = 600) -> tuple[Any, Exception | None]:
    """Run a notebook with nbclient in ``work`` (the kernel inherits this process's environment)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    try:
        client.execute()
    except CellExecutionError as e:
        return nb, e
    return nb, None


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="colabmodels demo", description=__doc__)
    parser.add_argument("--open", action="store_true", help="open the notebook in JupyterLab")
    parser.add_argument("--workdir", default=".demo", help="where demo files, cache and output go")
    args = parser.parse_args(argv)

    from .testing import FakeDrive

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"colabmodels demo: building demo content in {work}/content")
    with FakeDrive() as fd:
        env = stage(fd, work)
        print(f"Drive emulator at {fd.url} with MyDrive/demo/classifier.h5 and "
              "MyDrive/demo/encoder.pth, both shared by link")
        os.environ.update(env)
        if args.open:
            return _open_in_lab()
        print(f"executing {NOTEBOOK.name} ...")
        started = time.perf_counter()
        nb, failed = execute_notebook(NOTEBOOK, work)
        out_path = work / "01_quickstart.executed.ipynb"
        import nbformat

        nbformat.write(nb, out_path)
        print()
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            first = next((ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")), "")
            print(f"In  » {first}")
            for text in cell_texts(cell, stderr=False):
                for line in text.rstrip().splitlines()[:8]:
                    print(f"Out « {line}")
        print()
        elapsed = time.perf_counter() - started
        if failed is not None:
            print(f"demo FAILED after {elapsed:.1f} s; see {out_path}")
            print(str(failed)[-2000:])
            return 1
        print(f"demo done in {elapsed:.1f} s: loaded a Keras model and a torch state dict from "
              "share links, saved a version with metadata and loaded it back; the emulator "
              f"handled {len(fd.requests)} requests. Executed notebook: {out_path}")
        return 0


def _open_in_lab() -> int:
    print("opening the quickstart in JupyterLab; press Ctrl-C to stop the lab and the emulator")
    cmd = [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.root_dir={NOTEBOOK.parent}", "--LabApp.default_url=/lab/tree/01_quickstart.ipynb"]
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
