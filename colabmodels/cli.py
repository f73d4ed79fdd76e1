"""The ``colabmodels`` command: the Python API from a shell.

::

    colabmodels fetch REF [--offline] [--no-progress]     print the local path of REF (cached)
    colabmodels versions DEST                             the versions saved under DEST
    colabmodels cache ls|verify|prune|clear [--max-bytes N]
    colabmodels fakedrive [ARGS...]                       the Drive emulator (python -m colabmodels.testing.fakedrive)
    colabmodels demo [NOTEBOOK ...] [--open]              run the demo notebooks (all, or the ones
                                                          named) against the emulator

Like the magics, this face holds no logic: each command is one call into ``colabmodels.api``,
shown through ``colabmodels.presentation`` (the same tables and messages as ``%models`` and
``%cache``). Library errors print as one line in the command's own words
(``colabmodels: error: OfflineError: ... run without --offline ...``) and exit with status 2,
as do usage errors; ``cache verify`` exits 1 when it finds bad entries. ``--debug`` prints the
traceback too, ``-v`` logs at INFO.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from . import presentation

__all__ = ["build_parser", "main"]

PROG = "colabmodels"


def _size_arg(text: str) -> int:
    try:
        return presentation.parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# -- commands ---------------------------------------------------------------------------------

def _fetch(args: argparse.Namespace) -> int:
    from . import api

    print(api.fetch(args.ref, offline=True if args.offline else None, progress=not args.no_progress))
    return 0


def _versions(args: argparse.Namespace) -> int:
    from . import api

    print(presentation.versions_table(api.versions(args.dest), args.dest))
    return 0


def _cache(args: argparse.Namespace) -> int:
    from . import api

    if args.action == "ls":
        report = api.cache_ls()
    elif args.action == "verify":
        report = api.cache_verify()
    elif args.action == "prune":
        report = api.cache_prune(args.max_bytes)
    else:
        report = api.cache_clear()
    print(presentation.cache_report(report))
    return 1 if report.action == "verify" and report.entries else 0


def _fakedrive(args: argparse.Namespace) -> int:
    """Hand the remaining arguments to the emulator's own command line."""
    import importlib

    package = "colabmodels.testing.fakedrive"
    entry = getattr(importlib.import_module(package), "main", None)
    if entry is None:
        with contextlib.suppress(ModuleNotFoundError):
            entry = getattr(importlib.import_module(f"{package}.__main__"), "main", None)
    try:
        if entry is not None:
            return _exit_code(entry(list(args.rest)))
        import runpy

        saved = sys.argv
        sys.argv = [f"python -m {package}", *args.rest]
        try:
            runpy.run_module(package, run_name="__main__", alter_sys=True)
        finally:
            sys.argv = saved
    except SystemExit as e:  # its --help, or its own usage errors
        return _exit_code(e.code)
    return 0


def _demo(args: argparse.Namespace) -> int:
    try:
        from .demo import main as demo_main
    except ModuleNotFoundError as e:
        if e.name not in ("colabmodels.demo",):
            raise
        print(f"{PROG}: error: the demo is not part of this installation", file=sys.stderr)
        return 2
    try:
        return _exit_code(demo_main(list(args.rest)))
    except SystemExit as e:
        return _exit_code(e.code)


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


# -- parser and entry point -------------------------------------------------------------------

_FORWARDED = {"fakedrive", "demo"}  # everything after these goes to their own parser


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Load and save models in Google Drive, GCS, S3 or a URL; inspect the cache.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log to stderr (-v: INFO, -vv: DEBUG)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("fetch", help="download REF into the cache and print its local path")
    p.add_argument("ref", metavar="REF", help="share link, file id, Drive path, gs://, s3://, URL")
    p.add_argument("--offline", action="store_true", help="serve from the cache only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_fetch)

    p = sub.add_parser("versions", help="list the versions saved under DEST")
    p.add_argument("dest", metavar="DEST")
    p.set_defaults(run=_versions)

    p = sub.add_parser("cache", help="inspect the download cache")
    p.add_argument("action", choices=["ls", "verify", "prune", "clear"], nargs="?", default="ls",
                   help="ls: list entries; verify: hash every entry (exit 1 if any is bad); "
                        "prune: evict least recently used entries down to --max-bytes; "
                        "clear: remove everything")
    p.add_argument("--max-bytes", type=_size_arg, default=None, metavar="N",
                   help="size limit for prune (e.g. 5GiB; default COLABMODELS_CACHE_MAX_BYTES)")
    p.set_defaults(run=_cache)

    p = sub.add_parser("fakedrive", help="run the Drive emulator (arguments are passed on)",
                       add_help=False)
    p.set_defaults(run=_fakedrive)

    p = sub.add_parser("demo", help="run every demo notebook, or the ones named (\"04\", a "
                                    "path), against the emulator (--open: in JupyterLab)",
                       add_help=False)
    p.set_defaults(run=_demo)
    return parser


def _split_forwarded(argv: list[str]) -> tuple[list[str], list[str]]:
    """Global options and command, and the arguments forwarded untouched to fakedrive/demo."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            if arg in _FORWARDED:
                return argv[: i + 1], argv[i + 1:]
            break
    return argv, []


@contextlib.contextmanager
def _logging_to_stderr(verbosity: int) -> Iterator[None]:
    """Log ``colabmodels`` records to stderr while the command runs (then restore the logger)."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logger = logging.getLogger("colabmodels")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``colabmodels`` command; return its exit status."""
    from .errors import ColabModelsError

    own, rest = _split_forwarded(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        args = parser.parse_args(own)
    except SystemExit as e:  # --help, --version, usage errors
        return _exit_code(e.code)
    args.rest = rest
    try:
        with _logging_to_stderr(args.verbose):
            return int(args.run(args))
    except ColabModelsError as e:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"{PROG}: error: {presentation.error_line(e, 'cli')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
