"""``colabmodels demo`` / ``python -m colabmodels.demo``: run the notebooks, or start, stop and
prepare the demo servers (see the package docstring for the commands)."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import RefError
from .content import make_content
from .runner import NOTEBOOKS_DIR, notebooks, run_notebooks
from .runner import _summary as _summary
from .servers import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LINGER,
    IDLE_VAR,
    LINGER_VAR,
    default_workdir,
    demo_servers,
    how_to_stop,
    running,
    serve,
    start_emulator,
    stop_emulator,
)

__all__ = ["main"]

_DESCRIPTION = "The demo notebooks, runnable anywhere: make demo, CI, Binder, Colab and plain Jupyter."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in ("run", "serve", "start", "stop", "prepare") else "run"
    parser = argparse.ArgumentParser(prog=f"colabmodels demo {command}".replace(" run", ""),
                                     description=_DESCRIPTION)
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
    if command in ("serve", "start"):
        parser.add_argument("--linger", type=float, default=None, metavar="SECONDS",
                            help="stop this long after the last kernel using the servers exits "
                                 f"(default ${LINGER_VAR} or {DEFAULT_LINGER:.0f})")
        parser.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                            help="stop after this long without a request, 0: never "
                                 f"(default ${IDLE_VAR} or {DEFAULT_IDLE_TIMEOUT:.0f})")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve() if args.workdir else None

    if command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
        return serve(workdir or default_workdir(), args.ready_file, content_dir=args.content,
                     linger=args.linger, idle_timeout=args.idle_timeout)
    if command == "prepare":
        made = make_content(args.content or (workdir or default_workdir()) / "content")
        print("demo content:", ", ".join(str(p) for p in made.values()))
        return 0
    if command == "stop":
        return 0 if stop_emulator(workdir) else 1
    if command == "start":
        servers = start_emulator(workdir, content=args.content, user=False, linger=args.linger,
                                 idle_timeout=args.idle_timeout)
        if args.print_env:
            for name, value in sorted(servers.env.items()):
                print(f"export {name}={shlex.quote(value)}")
        else:
            print(f"demo servers (pid {servers.pid}): "
                  + ", ".join(f"{k} {v}" for k, v in servers.services.items()))
        print(f"colabmodels demo: {how_to_stop(servers.workdir)}", file=sys.stderr)
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
