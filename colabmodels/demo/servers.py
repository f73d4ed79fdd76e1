"""The demo servers: the Drive emulator, moto's S3 and the GCS emulator in one background process.

``serve`` runs them (``python -m colabmodels.demo serve``) with the demo content staged;
``start_emulator`` starts that process or finds the one already running (its state file,
``state.json`` in the work folder, holds the pid, the environment and the references);
``stop_emulator`` stops it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ColabModelsError
from .content import QUIET_TF_ENV, SHAPES_DATASET, _atomic_target, _tree_files, make_content, stage

__all__ = [
    "GCS_BUCKET",
    "IDLE_VAR",
    "LINGER_VAR",
    "LOOPBACK",
    "S3_BUCKET",
    "STATE_VAR",
    "WORKDIR_VAR",
    "DemoServers",
    "default_workdir",
    "demo_servers",
    "how_to_stop",
    "register_user",
    "running",
    "s3_requests",
    "serve",
    "start_emulator",
    "stop_emulator",
]

logger = logging.getLogger(__name__)

STATE_VAR = "COLABMODELS_DEMO_STATE"
"""Environment variable naming the running demo servers' state file."""
WORKDIR_VAR = "COLABMODELS_DEMO_DIR"
"""Environment variable naming the demo work folder (default ``~/.colabmodels-demo``)."""
LINGER_VAR = "COLABMODELS_DEMO_LINGER"
"""Seconds the servers keep running after the last process that uses them exits (default 300)."""
IDLE_VAR = "COLABMODELS_DEMO_IDLE_TIMEOUT"
"""Seconds without a request after which the servers stop (default 3600; 0: never)."""
DEFAULT_LINGER = 300.0
DEFAULT_IDLE_TIMEOUT = 3600.0
LOOPBACK = "127.0.0.1"
GCS_BUCKET = "demo-models"
S3_BUCKET = "demo-weights"
_STATS_PATH = "/_colabmodels_demo/requests"


class _CountingApp:
    """WSGI middleware: counts requests by method and path, and answers the count query."""

    def __init__(self, app: Any, *, refuse_prefixes: tuple[str, ...] = (),
                 signed_only: bool = False) -> None:
        self.app = app
        self.refuse_prefixes = refuse_prefixes
        self.signed_only = signed_only
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        refused = self.refuse_prefixes and path.startswith(self.refuse_prefixes)
        unsigned = self.signed_only and path != _STATS_PATH and not (
            environ.get("HTTP_AUTHORIZATION") or "X-Amz-Signature=" in environ.get("QUERY_STRING", ""))
        if refused or unsigned:
            # moto's control API could switch its authentication off; an unsigned request
            # would make moto's signature check fail with a 500 instead of a clean 403
            body = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                    b"<Message>the colabmodels demo's S3 server takes signed requests only"
                    b"</Message></Error>")
            start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                             ("Content-Length", str(len(body)))])
            return [body]
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
    """moto's S3 on 127.0.0.1 behind ``_CountingApp``, answering only requests signed with
    this run's own key (``key_id``, ``secret``; moto's IAM checks the signature)."""

    def __enter__(self) -> _S3Server:
        import secrets

        from moto import settings
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.iam.models import iam_backends
        from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        # One IAM user with one fresh key, allowed S3 and nothing else; then every request
        # must carry a valid signature by that key (moto checks none by default).
        iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
        iam.create_user("us-east-1", "colabmodels-demo")
        iam.put_user_policy("colabmodels-demo", "s3", json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key("colabmodels-demo")
        key.secret_access_key = secrets.token_urlsafe(30)  # from the OS's generator, not moto's
        self.key_id, self.secret = key.access_key_id, key.secret_access_key
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = self.app = _CountingApp(DomainDispatcherApplication(create_backend_app),
                                      refuse_prefixes=("/moto-api",), signed_only=True)
        self.server = make_server(LOOPBACK, 0, app, threaded=True, request_handler=MotoRequestHandler)
        self.endpoint = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)

    @property
    def env(self) -> dict[str, str]:
        """The environment that points boto3/s3fs at this server with its key."""
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": self.key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true"}

    def put_tree(self, bucket: str, prefix: str, root: Path) -> None:
        import botocore.session

        client = botocore.session.Session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret)
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
        for name, path in _tree_files(root):
            client.put_object(Bucket=bucket, Key=f"{prefix}{name}", Body=path.read_bytes())
        client.close()


def _read_only_gcs_handler(token: str) -> Any:
    """gcp-storage-emulator's request handler, refusing every request that could change a
    bucket (anything but GET and HEAD) unless it carries ``token`` (the emulator itself checks
    no credentials): the demo content is put there by this process only."""
    from gcp_storage_emulator.server import RequestHandler

    class ReadOnlyHandler(RequestHandler):  # type: ignore[misc]
        def _allowed(self) -> bool:
            if self.headers.get(_GCS_TOKEN_HEADER) == token:
                return True
            body = json.dumps({"error": {"code": 403, "message": "the colabmodels demo's GCS "
                                         "server is read-only"}}).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return False

        def do_POST(self) -> None:
            if self._allowed():
                super().do_POST()

        def do_PUT(self) -> None:
            if self._allowed():
                super().do_PUT()

        def do_PATCH(self) -> None:
            if self._allowed():
                super().do_PATCH()

        def do_DELETE(self) -> None:
            if self._allowed():
                super().do_DELETE()

    return ReadOnlyHandler


_GCS_TOKEN_HEADER = "X-Colabmodels-Demo-Token"


class _GCSServer:
    """gcp-storage-emulator (JSON API, in memory) on 127.0.0.1, read-only to everyone else:
    the demo content is uploaded with a token only this process knows."""

    def __enter__(self) -> _GCSServer:
        import functools
        import secrets

        from gcp_storage_emulator.server import create_server

        self.token = secrets.token_urlsafe(24)
        self.server = create_server(LOOPBACK, _free_port(), in_memory=True)
        self.server.start()
        httpd = self.server._api._httpd
        httpd.RequestHandlerClass = functools.partial(_read_only_gcs_handler(self.token),
                                                      self.server._storage)
        self.endpoint = f"http://{LOOPBACK}:{httpd.server_address[1]}"
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
                "Content-Type": f"multipart/related; boundary={boundary}",
                _GCS_TOKEN_HEADER: self.token})
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
          stop: threading.Event | None = None, linger: float | None = None,
          idle_timeout: float | None = None) -> int:
    """Run the demo servers with the demo content until SIGTERM/SIGINT (or ``stop`` is set), or
    until they are no longer used.

    They are no longer used ``linger`` seconds after the last process that registered as a
    user (see ``start_emulator``; a kernel restart fits in that time) has exited, or after
    ``idle_timeout`` seconds without a request (0: never). Defaults: ``$COLABMODELS_DEMO_LINGER``
    (300) and ``$COLABMODELS_DEMO_IDLE_TIMEOUT`` (3600).

    Writes the state (pid, environment, references) to ``ready_file`` once everything serves,
    and the Drive emulator's request log to ``workdir/drive-requests.json`` when stopping.
    """
    from ..testing import FakeDrive

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    content_dir = content_dir or workdir / "content"
    # A new Drive emulator starts empty and gives new file ids: the demo's cache (and what it
    # remembers of listings and versions) belongs to the previous one, so it starts empty too.
    shutil.rmtree(workdir / "cache", ignore_errors=True)
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
        requests_seen: list[Callable[[], int]] = [lambda: len(fd.requests)]
        if _has("moto") and _has("s3fs"):
            s3 = stack.enter_context(_S3Server())
            s3.put_tree(S3_BUCKET, "small_vgg/", content["vgg"])
            requests_seen.append(lambda: len(s3.app.seen))
            env.update(s3.env)
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
        tmp = _atomic_target(ready_file)  # private: it holds the S3 key
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                       encoding="utf-8") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, ready_file)
        logger.info("demo servers ready: %s; %s", services, how_to_stop(workdir))
        watch = _UseWatch(workdir / "clients",
                          _seconds(linger, LINGER_VAR, DEFAULT_LINGER),
                          _seconds(idle_timeout, IDLE_VAR, DEFAULT_IDLE_TIMEOUT))
        while not stop.wait(0.5):
            reason = watch.done(sum(count() for count in requests_seen))
            if reason:
                logger.info("demo servers stopping: %s", reason)
                break
    with contextlib.suppress(OSError):
        if json.loads(ready_file.read_text(encoding="utf-8")).get("pid") == os.getpid():
            ready_file.unlink()
    return 0


def _seconds(value: float | None, var: str, default: float) -> float:
    if value is not None:
        return float(value)
    raw = os.environ.get(var, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ColabModelsError(f"{var}={raw!r} is not a number of seconds") from None


class _UseWatch:
    """When the servers are no longer used: no registered user alive for ``linger`` seconds
    (once one has registered), or no request for ``idle_timeout`` seconds."""

    def __init__(self, clients: Path, linger: float, idle_timeout: float) -> None:
        self.clients, self.linger, self.idle_timeout = clients, linger, idle_timeout
        self.had_users = False
        self.last_user = self.last_request = time.monotonic()
        self.requests = -1
        self.next_look = 0.0

    def users(self) -> list[int]:
        alive = []
        for entry in self.clients.glob("*") if self.clients.is_dir() else []:
            try:
                pid = int(entry.name)
            except ValueError:
                continue
            if _alive(pid):
                alive.append(pid)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
        return alive

    def done(self, requests: int) -> str | None:
        now = time.monotonic()
        if requests != self.requests:
            self.requests, self.last_request = requests, now
        if now < self.next_look:
            return None
        self.next_look = now + 1.0
        if self.users():
            self.had_users, self.last_user = True, now
        elif self.had_users and now - self.last_user >= self.linger:
            return f"the last process using them exited {now - self.last_user:.0f} s ago"
        if self.idle_timeout > 0 and now - self.last_request >= self.idle_timeout:
            return f"no request for {now - self.last_request:.0f} s"
        return None


def register_user(workdir: Path, pid: int | None = None) -> None:
    """Count process ``pid`` (default: this one) as a user of the servers of ``workdir``: they
    keep running while it lives (and ``linger`` seconds after)."""
    clients = workdir / "clients"
    clients.mkdir(mode=0o700, exist_ok=True)
    (clients / str(pid or os.getpid())).touch()


def how_to_stop(workdir: Path | None = None) -> str:
    """One line for users: how to stop the demo servers, and when they stop by themselves."""
    shown = workdir is not None and Path(workdir).resolve() != default_workdir()
    where = f" --workdir {shlex.quote(str(workdir))}" if shown else ""
    linger = _seconds(None, LINGER_VAR, DEFAULT_LINGER)
    idle = _seconds(None, IDLE_VAR, DEFAULT_IDLE_TIMEOUT)
    alone = f", or after {idle / 60:.0f} min without a request" if idle > 0 else ""
    return (f"stop them with `colabmodels demo stop{where}`; they stop by themselves "
            f"{linger / 60:.0f} min after the last kernel using them exits{alone}")


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
                   timeout: float = 600, user: bool = True, linger: float | None = None,
                   idle_timeout: float | None = None) -> DemoServers:
    """Start the demo servers in a background process, or find the ones already running.

    The process outlives the caller, long enough for a kernel restart: it stops by itself
    ``linger`` seconds after the last process that uses it (this one, with ``user=True``) has
    exited, or after ``idle_timeout`` seconds without a request (see ``serve``). Stop it
    sooner with ``stop_emulator``, ``DemoServers.stop`` or ``colabmodels demo stop``.
    The first start generates the demo content (TensorFlow, Keras and torch are needed for
    that), later ones reuse it.

    Args:
        workdir: demo content, cache, key file, state and log (default ``~/.colabmodels-demo``).
        content: where the generated demo content is kept (default ``workdir/content``).
        timeout: seconds to wait for the servers.
        user: count this process as a user of the servers (False for a launcher that exits
            right away, such as ``colabmodels demo start``).
        linger, idle_timeout: for servers started here (default: the environment's, see
            ``serve``).

    Returns:
        the servers; call ``DemoServers.apply`` to point this process at them.

    Raises:
        ColabModelsError: the server process failed; the message holds the end of its log.
    """
    found = running()
    if found is not None and (workdir is None or Path(workdir).resolve() == found.workdir):
        if user:
            register_user(found.workdir)
        return found
    work = Path(workdir).resolve() if workdir is not None else default_workdir()
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    state_file = work / "state.json"
    found = running(state_file)
    if found is not None:
        if user:
            register_user(work)
        return found
    if user:  # before the servers start watching, so they never see an unused moment
        register_user(work)
    with contextlib.suppress(OSError):
        state_file.unlink()
    log_path = work / "servers.log"
    extra = ["--content", str(Path(content).resolve())] if content is not None else []
    if linger is not None:
        extra += ["--linger", str(linger)]
    if idle_timeout is not None:
        extra += ["--idle-timeout", str(idle_timeout)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "colabmodels.demo", "serve", "--workdir", str(work),
             "--ready-file", str(state_file), *extra],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **QUIET_TF_ENV})
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
