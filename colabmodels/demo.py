"""The demo notebooks, runnable anywhere: ``make demo``, CI, Binder, Colab and plain Jupyter.

Every notebook in ``notebooks/NN_*.ipynb`` starts with the same first cell::

    USE_EMULATOR = None   # None: the bundled emulator unless this is Colab with your files filled in
    MY_FILES = {"KERAS_LINK": "https://drive.google.com/file/d/YOUR_KERAS_FILE_ID/view"}
    from colabmodels.demo import setup
    FILES = setup(MY_FILES, use_emulator=USE_EMULATOR)

:func:`setup` either returns your own references (after checking that no ``YOUR_...``
placeholder is left) or starts the demo servers (:func:`start_emulator`) and returns the demo
content's references under the same keys, with the environment pointed at the servers.

The demo servers run in one background process (``python -m colabmodels.demo serve``): the
bundled Drive emulator, moto's S3 server and gcp-storage-emulator, all on 127.0.0.1, with demo
content generated on first use (a Keras classifier as HDF5, a torch state dict, a TF
SavedModel, a TF checkpoint and VGG-style weights). The process outlives a kernel restart, so a
"fresh kernel" finds the same servers and files again; its state file (``state.json`` in the
work folder, named by ``COLABMODELS_DEMO_STATE``) holds the environment and the references.

Command line (``python -m colabmodels.demo`` or ``colabmodels demo``)::

    colabmodels demo [NOTEBOOK ...] [--open] [--workdir D]   run every notebook (or the ones named:
                                                            "04", "04_cloud...", a path), or open
                                                            them all in JupyterLab
    colabmodels demo start [--workdir D] [--print-env]      start the servers in the background
    colabmodels demo stop [--workdir D]                     stop them
    colabmodels demo prepare [--workdir D]                  only generate the demo content
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ColabModelsError, RefError

__all__ = [
    "FRESH_KERNEL_TAG",
    "GCS_BUCKET",
    "LOOPBACK",
    "NOTEBOOK",
    "NOTEBOOKS_DIR",
    "PLACEHOLDER",
    "S3_BUCKET",
    "SHAPES_DATASET",
    "STATE_VAR",
    "WORKDIR_VAR",
    "DemoServers",
    "NotebookFiles",
    "RunResult",
    "cell_texts",
    "default_workdir",
    "demo_servers",
    "execute_notebook",
    "main",
    "make_content",
    "make_shapes",
    "notebook_text",
    "notebooks",
    "run_notebooks",
    "running",
    "s3_requests",
    "serve",
    "setup",
    "small_vgg_class",
    "stage",
    "start_emulator",
    "stop_emulator",
    "widget_views",
]

logger = logging.getLogger(__name__)

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK = NOTEBOOKS_DIR / "01_quickstart.ipynb"
STATE_VAR = "COLABMODELS_DEMO_STATE"
"""Environment variable naming the running demo servers' state file."""
WORKDIR_VAR = "COLABMODELS_DEMO_DIR"
"""Environment variable naming the demo work folder (default ``~/.colabmodels-demo``)."""
FRESH_KERNEL_TAG = "fresh-kernel"
"""A cell with this tag starts a new kernel when the runner executes a notebook."""
PLACEHOLDER = "YOUR_"
LOOPBACK = "127.0.0.1"
GCS_BUCKET = "demo-models"
S3_BUCKET = "demo-weights"
_STATS_PATH = "/_colabmodels_demo/requests"


# -- demo content -----------------------------------------------------------------------------

def small_vgg_class() -> Any:
    """The VGG-style torch architecture of the demo weights (``features`` conv blocks, an
    ``avgpool`` and a ``classifier`` MLP, like torchvision's VGG; 32x32 RGB in, 10 classes)."""
    from torch import nn

    class SmallVGG(nn.Module):
        def __init__(self, num_classes: int = 10) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
            self.avgpool = nn.AdaptiveAvgPool2d((4, 4))
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(inplace=True),
                nn.Dropout(0.5), nn.Linear(64, num_classes))

        def forward(self, x: Any) -> Any:
            return self.classifier(self.avgpool(self.features(x)))

    return SmallVGG


def _atomic_target(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


SHAPES_DATASET = "MyDrive/datasets/shapes"
"""Where the demo image dataset lives on the emulator's Drive (notebook 03)."""


def make_shapes(folder: Path, *, per_class: int = 20, size: int = 64) -> Path:
    """A small image dataset: ``circles/``, ``squares/``, ``triangles/``, ``per_class`` JPEGs
    of ``size`` x ``size`` each (a shape of random colour, place and size; seeded). Kept."""
    if (folder / "triangles" / f"triangle_{per_class - 1:02d}.jpg").exists():
        return folder
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(3)
    tmp = _atomic_target(folder)
    for kind in ("circle", "square", "triangle"):
        (tmp / f"{kind}s").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            back = tuple(rng.randrange(150, 256) for _ in range(3))
            ink = tuple(rng.randrange(0, 110) for _ in range(3))
            img = Image.new("RGB", (size, size), back)
            draw = ImageDraw.Draw(img)
            r = rng.randrange(size // 5, size // 3)
            x, y = (rng.randrange(r + 2, size - r - 2) for _ in range(2))
            if kind == "circle":
                draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
            elif kind == "square":
                draw.rectangle((x - r, y - r, x + r, y + r), fill=ink)
            else:
                draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=ink)
            img.save(tmp / f"{kind}s" / f"{kind}_{i:02d}.jpg", "JPEG", quality=90)
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def make_content(folder: Path) -> dict[str, Path]:
    """Generate the demo files in ``folder`` (kept; only missing ones are made).

    Returns:
        ``{"keras": classifier.h5, "torch": encoder.pth, "savedmodel": standardizer/,
        "checkpoint": regressor-ckpt/, "vgg": small_vgg.pth, "shapes": shapes/}`` (shapes: the
        image dataset of notebook 03, see :func:`make_shapes`).
    """
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    out = {"keras": folder / "classifier.h5", "torch": folder / "encoder.pth",
           "savedmodel": folder / "standardizer", "checkpoint": folder / "regressor-ckpt",
           "vgg": folder / "small_vgg.pth"}
    if not out["keras"].exists():
        import keras

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")], name="demo_classifier")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        tmp = _atomic_target(out["keras"]).with_suffix(".h5")
        model.save(tmp)
        os.replace(tmp, out["keras"])
    if not out["torch"].exists():
        import torch

        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
        tmp = _atomic_target(out["torch"])
        torch.save(net.state_dict(), tmp)
        os.replace(tmp, out["torch"])
    if not out["vgg"].exists():
        import torch

        torch.manual_seed(0)
        vgg = small_vgg_class()()
        # saved like a training script with DataParallel does: wrapped, with "module." prefixes
        checkpoint = {"epoch": 12, "state_dict": {f"module.{k}": v for k, v in vgg.state_dict().items()}}
        tmp = _atomic_target(out["vgg"])
        torch.save(checkpoint, tmp)
        os.replace(tmp, out["vgg"])
    if not out["savedmodel"].exists() or not out["checkpoint"].exists():
        import tensorflow as tf

        if not out["savedmodel"].exists():
            class Standardizer(tf.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.mean = tf.Variable([1.0, 2.0, 3.0])
                    self.std = tf.Variable([0.5, 1.0, 2.0])

                @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
                def __call__(self, x: Any) -> Any:
                    return (x - self.mean) / self.std

            tmp = _atomic_target(out["savedmodel"])
            shutil.rmtree(tmp, ignore_errors=True)
            tf.saved_model.save(Standardizer(), str(tmp))
            os.replace(tmp, out["savedmodel"])
        if not out["checkpoint"].exists():
            class LinearRegressor(tf.Module):
                def __init__(self) -> None:
                    super().__init__()
                    self.w = tf.Variable([[1.5], [-2.0], [0.25]])
                    self.b = tf.Variable([0.5])

            tmp = _atomic_target(out["checkpoint"])
            shutil.rmtree(tmp, ignore_errors=True)
            tf.train.Checkpoint(model=LinearRegressor()).save(str(tmp / "ckpt"))
            os.replace(tmp, out["checkpoint"])
    out["shapes"] = make_shapes(folder / "shapes")
    return out


def stage(fd: Any, work: Path, content_dir: Path | None = None) -> dict[str, str]:
    """Put the Drive part of the demo content on the emulator ``fd``.

    Returns:
        the environment a notebook needs for Drive, plus ``DEMO_KERAS_LINK``/``DEMO_TORCH_LINK``.
    """
    content = make_content(content_dir or work / "content")
    keras_id = fd.put("MyDrive/demo/classifier.h5", content["keras"], public=True,
                      description="demo Keras classifier (HDF5)")
    torch_id = fd.put("MyDrive/demo/encoder.pth", content["torch"], public=True,
                      description="demo torch state dict")
    for rel, path in _tree_files(content["shapes"]):  # the image dataset of notebook 03
        fd.put(f"{SHAPES_DATASET.rsplit('/', 1)[0]}/{rel}", path)
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


def _tree_files(root: Path) -> Iterator[tuple[str, Path]]:
    if root.is_file():
        yield root.name, root
        return
    for p in sorted(root.rglob("*")):
        if p.is_file():
            yield f"{root.name}/{p.relative_to(root).as_posix()}", p


# -- the servers (run inside the `serve` process) ---------------------------------------------

class _CountingApp:
    """WSGI middleware: counts requests by method and path, and answers the count query."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == _STATS_PATH:
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            needle = (query.get("path") or [""])[0]
            counts: dict[str, int] = {}
            with self.lock:
                for method, seen_path in self.seen:
                    if needle in seen_path:
                        counts[method] = counts.get(method, 0) + 1
            body = json.dumps(counts).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        with self.lock:
            self.seen.append((environ.get("REQUEST_METHOD", ""), path))
        return self.app(environ, start_response)


class _S3Server:
    """moto's S3 on 127.0.0.1 behind :class:`_CountingApp`."""

    def __enter__(self) -> _S3Server:
        from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = _CountingApp(DomainDispatcherApplication(create_backend_app))
        self.server = make_server(LOOPBACK, 0, app, threaded=True, request_handler=MotoRequestHandler)
        self.endpoint = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)

    def put_tree(self, bucket: str, prefix: str, root: Path) -> None:
        import botocore.session

        client = botocore.session.Session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing")
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
        for name, path in _tree_files(root):
            client.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=path.read_bytes())
        client.close()


class _GCSServer:
    """gcp-storage-emulator (JSON API, in memory) on 127.0.0.1."""

    def __enter__(self) -> _GCSServer:
        from gcp_storage_emulator.server import create_server

        self.server = create_server(LOOPBACK, _free_port(), in_memory=True)
        self.server.start()
        port = self.server._api._httpd.server_address[1]
        self.endpoint = f"http://{LOOPBACK}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def put_tree(self, bucket: str, prefix: str, root: Path) -> None:
        import uuid

        from gcp_storage_emulator.handlers import buckets

        with contextlib.suppress(Exception):  # already there
            buckets.create_bucket(bucket, self.server._storage)
        for name, path in _tree_files(root):
            boundary = uuid.uuid4().hex
            meta = json.dumps({"name": f"{prefix}{name}",
                               "contentType": "application/octet-stream"}).encode()
            body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode()
                    + meta + f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
                    + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode())
            url = (f"{self.endpoint}/upload/storage/v1/b/{urllib.parse.quote(bucket, safe='')}/o"
                   "?uploadType=multipart")
            req = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": f"multipart/related; boundary={boundary}"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                resp.read()


def _write_request_log(fd: Any, path: Path) -> None:
    records = [{"method": r.method, "path": r.path, "alt": (r.query or {}).get("alt"),
                "status": r.status} for r in list(fd.requests)]
    path.write_text(json.dumps(records), encoding="utf-8")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def serve(workdir: Path, ready_file: Path, *, content_dir: Path | None = None,
          stop: threading.Event | None = None) -> int:
    """Run the demo servers with the demo content until SIGTERM/SIGINT (or ``stop`` is set).

    Writes the state (pid, environment, references) to ``ready_file`` once everything serves,
    and the Drive emulator's request log to ``workdir/drive-requests.json`` when stopping.
    """
    from .testing import FakeDrive

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    content_dir = content_dir or workdir / "content"
    content = make_content(content_dir)
    with contextlib.ExitStack() as stack:
        fd = stack.enter_context(FakeDrive())
        stack.callback(_write_request_log, fd, workdir / "drive-requests.json")
        drive_env = stage(fd, workdir, content_dir)
        env = {k: v for k, v in drive_env.items() if not k.startswith("DEMO_")}
        env[STATE_VAR] = str(ready_file)
        files = {"KERAS_LINK": drive_env["DEMO_KERAS_LINK"], "TORCH_LINK": drive_env["DEMO_TORCH_LINK"],
                 "DATASET": SHAPES_DATASET}
        services = {"drive": fd.url}
        if _has("moto") and _has("s3fs"):
            s3 = stack.enter_context(_S3Server())
            s3.put_tree(S3_BUCKET, "small_vgg/", content["vgg"])
            env.update({"AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_EC2_METADATA_DISABLED": "true"})
            files["S3_WEIGHTS"] = f"s3://{S3_BUCKET}/small_vgg/small_vgg.pth"
            files["S3_VERSIONS"] = f"s3://{S3_BUCKET}/runs/small-vgg"
            services["s3"] = s3.endpoint
        if _has("gcp_storage_emulator") and _has("gcsfs"):
            gcs = stack.enter_context(_GCSServer())
            for key in ("savedmodel", "checkpoint", "keras"):
                gcs.put_tree(GCS_BUCKET, "", content[key])
            env.update({"STORAGE_EMULATOR_HOST": gcs.endpoint, "NO_GCE_CHECK": "true"})
            files["GCS_SAVEDMODEL"] = f"gs://{GCS_BUCKET}/{content['savedmodel'].name}"
            files["GCS_HDF5"] = f"gs://{GCS_BUCKET}/{content['keras'].name}"
            files["GCS_CHECKPOINT"] = f"gs://{GCS_BUCKET}/{content['checkpoint'].name}"
            services["gcs"] = gcs.endpoint
        state = {"pid": os.getpid(), "workdir": str(workdir), "env": env, "files": files,
                 "services": services}
        tmp = _atomic_target(ready_file)
        tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
        os.replace(tmp, ready_file)
        logger.info("demo servers ready: %s", services)
        while not stop.wait(0.5):
            pass
    with contextlib.suppress(OSError):
        if json.loads(ready_file.read_text(encoding="utf-8")).get("pid") == os.getpid():
            ready_file.unlink()
    return 0


# -- starting and finding the servers ---------------------------------------------------------

@dataclass
class DemoServers:
    """Running demo servers: their process, environment and demo references."""

    pid: int
    workdir: Path
    env: dict[str, str]
    files: dict[str, str]
    services: dict[str, str]
    started_here: bool = False

    def apply(self) -> None:
        """Point this process (and the kernels and subprocesses it starts) at the servers."""
        os.environ.update(self.env)

    def stop(self, *, timeout: float = 30) -> None:
        """Stop the server process (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        _terminate(self.pid, timeout=timeout)
        with contextlib.suppress(OSError):
            (self.workdir / "state.json").unlink()


def default_workdir() -> Path:
    return Path(os.environ.get(WORKDIR_VAR) or Path.home() / ".colabmodels-demo").resolve()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _terminate(pid: int, *, timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or LOOPBACK, parts.port or 80), timeout=2):
            return True
    except OSError:
        return False


def running(state_file: Path | None = None) -> DemoServers | None:
    """The demo servers named by ``state_file`` (default: ``$COLABMODELS_DEMO_STATE``), if they
    are still running and answering."""
    state_file = state_file or (Path(os.environ[STATE_VAR]) if os.environ.get(STATE_VAR) else None)
    if state_file is None:
        return None
    try:
        state = json.loads(Path(state_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not _alive(int(state["pid"])) or not all(_answers(u) for u in state["services"].values()):
        return None
    return DemoServers(int(state["pid"]), Path(state["workdir"]), dict(state["env"]),
                       dict(state["files"]), dict(state["services"]))


def start_emulator(workdir: str | os.PathLike[str] | None = None, *,
                   content: str | os.PathLike[str] | None = None,
                   timeout: float = 600) -> DemoServers:
    """Start the demo servers in a background process, or find the ones already running.

    The process outlives the caller (and a kernel restart); stop it with
    :func:`stop_emulator` or :meth:`DemoServers.stop`. The first start generates the demo
    content (TensorFlow, Keras and torch are needed for that), later ones reuse it.

    Args:
        workdir: demo content, cache, key file, state and log (default ``~/.colabmodels-demo``).
        content: where the generated demo content is kept (default ``workdir/content``).
        timeout: seconds to wait for the servers.

    Returns:
        the servers; call :meth:`DemoServers.apply` to point this process at them.

    Raises:
        ColabModelsError: the server process failed; the message holds the end of its log.
    """
    found = running()
    if found is not None and (workdir is None or Path(workdir).resolve() == found.workdir):
        return found
    work = Path(workdir).resolve() if workdir is not None else default_workdir()
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    state_file = work / "state.json"
    found = running(state_file)
    if found is not None:
        return found
    with contextlib.suppress(OSError):
        state_file.unlink()
    log_path = work / "servers.log"
    extra = ["--content", str(Path(content).resolve())] if content is not None else []
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "colabmodels.demo", "serve", "--workdir", str(work),
             "--ready-file", str(state_file), *extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise ColabModelsError(f"the demo servers exited with status {proc.returncode}; "
                                   f"the end of {log_path}:\n{tail}")
        found = running(state_file)
        if found is not None and found.pid == proc.pid:
            found.started_here = True
            return found
        time.sleep(0.2)
    _terminate(proc.pid, timeout=10)
    raise ColabModelsError(f"the demo servers did not start within {timeout:.0f} s; see {log_path}")


def stop_emulator(workdir: str | os.PathLike[str] | None = None) -> bool:
    """Stop the demo servers of ``workdir``; False if none were running."""
    work = Path(workdir).resolve() if workdir is not None else default_workdir()
    found = running(work / "state.json")
    if found is None:
        return False
    found.stop()
    return True


@contextlib.contextmanager
def demo_servers(workdir: str | os.PathLike[str] | None = None, *,
                 content: str | os.PathLike[str] | None = None) -> Iterator[DemoServers]:
    """The demo servers for a run: reused if already running (and then left running),
    otherwise started here and stopped on exit."""
    servers = start_emulator(workdir, content=content)
    try:
        yield servers
    finally:
        if servers.started_here:
            servers.stop()


def s3_requests(path_contains: str = "") -> dict[str, int] | None:
    """Requests the demo S3 server handled, by HTTP method, whose path contains
    ``path_contains``; None when S3 is not the demo server."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3")
    if not endpoint or running() is None:
        return None
    url = f"{endpoint}{_STATS_PATH}?{urllib.parse.urlencode({'path': path_contains})}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        return {str(k): int(v) for k, v in json.loads(resp.read()).items()}


# -- the first cell of every notebook ---------------------------------------------------------

class NotebookFiles(dict):
    """What :func:`setup` returns: the references by key, and how they were chosen."""

    def __init__(self, files: Mapping[str, str], *, emulator: DemoServers | None, note: str) -> None:
        super().__init__(files)
        self.emulator = emulator
        self.note = note

    def __repr__(self) -> str:
        lines = [self.note]
        if self.emulator is not None:
            lines.append("servers: " + ", ".join(f"{k} {v}" for k, v in self.emulator.services.items()))
        lines += [f"  {k} = {v}" for k, v in self.items()]
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def setup(my_files: Mapping[str, str] | None = None, *, use_emulator: bool | None = None,
          workdir: str | os.PathLike[str] | None = None) -> NotebookFiles:
    """The first cell of every demo notebook: your own files, or the emulator's demo content.

    Args:
        my_files: your references by key (share links, ``gs://``, ``s3://``, Drive paths);
            values still containing ``YOUR_`` are placeholders you have not filled in.
        use_emulator: True: the bundled emulator and demo content (started here if not
            running); False: your own files and Drive; None: the emulator, except in Colab
            when every placeholder is filled in.
        workdir: the emulator's work folder (see :func:`start_emulator`).

    Returns:
        the references to use, under the keys of ``my_files`` (plus any other demo keys).

    Raises:
        RefError: your own files are asked for but some are still placeholders.
        ColabModelsError: the emulator could not be started.
    """
    from . import config

    my_files = dict(my_files or {})
    unfilled = sorted(k for k, v in my_files.items() if PLACEHOLDER in str(v))
    if use_emulator is None:
        if config.in_colab() and unfilled and len(unfilled) < len(my_files):
            raise RefError(
                "MY_FILES is filled in only partly: replace the YOUR_... placeholders of "
                f"{', '.join(unfilled)}, or set USE_EMULATOR = True for the demo content.")
        use_emulator = not config.in_colab() or bool(unfilled)
    if not use_emulator:
        if unfilled:
            raise RefError(
                f"MY_FILES still has placeholders: {', '.join(unfilled)}. Replace the YOUR_... "
                "parts with your own links or paths, or set USE_EMULATOR = True.")
        where = "Colab" if config.in_colab() else "this machine"
        return NotebookFiles(my_files, emulator=None,
                             note=f"your own files and Drive ({where}); USE_EMULATOR = True "
                                  "switches to the bundled emulator")
    servers = start_emulator(workdir)
    servers.apply()
    files = {}
    for key, value in (my_files or servers.files).items():
        if key in servers.files:
            files[key] = servers.files[key]
        elif PLACEHOLDER not in str(value):
            files[key] = value  # e.g. a Drive folder to save into: the same path on the emulator
        else:
            raise ColabModelsError(
                f"the demo servers have no {key}: install the demo extra "
                '(pip install "colabmodels[all,demo]") and restart them with '
                "colabmodels.demo.stop_emulator()")
    if config.in_colab():
        # Colab's own sign-in would open the real Drive: sign in to the emulator instead,
        # so %drive_mount and every later call find this session.
        from .session import mount

        mount(service_account=servers.env["GOOGLE_APPLICATION_CREDENTIALS"])
    why = "" if not unfilled or not config.in_colab() else " (MY_FILES is not filled in)"
    return NotebookFiles(files, emulator=servers,
                         note=f"the bundled emulator with demo content{why}; nothing leaves "
                              "this machine")


# -- running notebooks ------------------------------------------------------------------------

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
    spec = {"argv": [python or sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "colabmodels demo", "language": "python", "env": dict(env or {})}
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


# -- command line -----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in ("run", "serve", "start", "stop", "prepare") else "run"
    parser = argparse.ArgumentParser(prog=f"colabmodels demo {command}".replace(" run", ""),
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--workdir", default=None,
                        help="demo content, cache and output (default: .demo for runs, "
                             "~/.colabmodels-demo otherwise)")
    parser.add_argument("--content", type=Path, default=None,
                        help="where the generated demo content is kept (default: WORKDIR/content)")
    if command == "run":
        parser.add_argument("notebooks", nargs="*", help='which notebooks ("04", a stem or a path; default: all)')
        parser.add_argument("--open", action="store_true", help="open the notebooks in JupyterLab")
        parser.add_argument("--python", help="run the kernels with this interpreter")
    elif command == "serve":
        parser.add_argument("--ready-file", required=True, type=Path)
    elif command == "start":
        parser.add_argument("--print-env", action="store_true",
                            help="print `export NAME=VALUE` lines for a shell to eval")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve() if args.workdir else None

    if command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
        return serve(workdir or default_workdir(), args.ready_file, content_dir=args.content)
    if command == "prepare":
        made = make_content(args.content or (workdir or default_workdir()) / "content")
        print("demo content:", ", ".join(str(p) for p in made.values()))
        return 0
    if command == "stop":
        return 0 if stop_emulator(workdir) else 1
    if command == "start":
        servers = start_emulator(workdir, content=args.content)
        if args.print_env:
            for name, value in sorted(servers.env.items()):
                print(f"export {name}={shlex.quote(value)}")
        else:
            print(f"demo servers (pid {servers.pid}): "
                  + ", ".join(f"{k} {v}" for k, v in servers.services.items()))
        return 0

    try:
        chosen = notebooks(args.notebooks)
    except RefError as e:
        print(f"colabmodels demo: {e}", file=sys.stderr)
        return 2
    work = workdir or Path(".demo").resolve()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the servers started here stop too
    print(f"colabmodels demo: demo content and servers in {work}")
    with demo_servers(work if not running() else None, content=args.content) as servers:
        servers.apply()
        print("servers: " + ", ".join(f"{k} {v}" for k, v in servers.services.items()))
        if args.open:
            return _open_in_lab(chosen)
        results = run_notebooks(chosen, work, python=args.python)
    for result in results:
        _summary(result)
    failed = [r.notebook.name for r in results if r.error is not None]
    total = sum(r.seconds for r in results)
    print(f"\n{len(results) - len(failed)} of {len(results)} notebooks ran top to bottom in {total:.1f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _open_in_lab(chosen: list[Path]) -> int:
    first = chosen[0].name if len(chosen) == 1 else ""
    print("opening the notebooks in JupyterLab, the demo servers running; Ctrl-C stops both")
    cmd = [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.root_dir={NOTEBOOKS_DIR}", f"--LabApp.default_url=/lab/tree/{first}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI machines run as root
        cmd.append("--allow-root")
    lab = subprocess.Popen(cmd)
    try:
        return lab.wait()
    except KeyboardInterrupt:
        return 0
    finally:  # on Ctrl-C the lab got the signal too; on SIGTERM it did not
        if lab.poll() is None:
            lab.terminate()
            try:
                lab.wait(timeout=30)
            except subprocess.TimeoutExpired:
                lab.kill()


if __name__ == "__main__":
    raise SystemExit(main())
