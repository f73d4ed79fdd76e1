"""The ``colabmodels`` command: the Python API from a shell.

::

    colabmodels fetch REF [--offline] [--no-progress]     print the local path of REF (cached)
    colabmodels versions DEST                             the versions saved under DEST
    colabmodels cache ls|verify|prune|clear [--max-bytes N]
    colabmodels fakedrive [ARGS...]                       the Drive emulator (python -m colabmodels.testing.fakedrive)
    colabmodels demo [--open]                             the quickstart against the emulator

Like the magics, this face holds no logic: each command is one call into :mod:`colabmodels.api`
or :data:`colabmodels.cache`. Library errors print as one line
(``colabmodels: error: NotFoundError: ...``) and exit with status 2 (``cache verify`` exits 1
when it finds bad entries); ``--debug`` prints the traceback too, ``-v`` logs at INFO.

This module also holds :class:`Table` and the row builders the magics share, so the terminal
and the notebook show the same columns.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import CacheEntry
    from .registry import SavedModelInfo

__all__ = ["Table", "cache_table", "main", "parse_size", "versions_table"]

PROG = "colabmodels"


# -- presentation shared with the magics -----------------------------------------------------

class Table(list):  # type: ignore[type-arg]
    """A list of objects (versions, cache entries) that displays as a table.

    It is a plain list of the underlying objects (``vs = %models X; vs[-1].ref``); its text
    ``repr`` is aligned columns for terminals and ``_repr_html_`` an HTML table for notebooks.
    """

    def __init__(self, items: Iterable[Any], columns: Sequence[str],
                 row: Callable[[Any], Sequence[str]], *, empty: str = "(nothing)",
                 footer: str = "") -> None:
        super().__init__(items)
        self.columns = list(columns)
        self._row = row
        self.empty = empty
        self.footer = footer

    @property
    def rows(self) -> list[list[str]]:
        """The cells as strings, one list per item."""
        return [[str(c) for c in self._row(item)] for item in self]

    def __repr__(self) -> str:
        if not self:
            return self.empty
        rows = [self.columns, *self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines)

    __str__ = __repr__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        if not self:
            return f"<p><em>{html.escape(self.empty)}</em></p>"
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in r)
            + "</tr>" for r in self.rows
        )
        foot = f"<caption style='caption-side:bottom'>{html.escape(self.footer)}</caption>" \
            if self.footer else ""
        return f"<table>{foot}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metadata_text(metadata: dict[str, Any]) -> str:
    import json

    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in metadata.items())


def versions_table(infos: list[SavedModelInfo], dest: str) -> Table:
    """``%models`` / ``colabmodels versions``: version, created, framework, format, metadata."""
    return Table(infos, ["version", "created", "framework", "format", "metadata"],
                 lambda i: [f"v{i.version}", i.created, i.framework, i.format,
                            _metadata_text(i.metadata)],
                 empty=f"no saved versions under {dest}")


def age(seconds: float) -> str:
    """``3 min ago``."""
    s = max(0.0, seconds)
    if s < 45:
        return "just now"
    if s < 3600:
        return f"{max(1, round(s / 60))} min ago"
    if s < 86400:
        return f"{round(s / 3600)} h ago"
    days = round(s / 86400)
    if days < 60:
        return f"{days} day ago" if days == 1 else f"{days} days ago"
    return f"{round(days / 30)} months ago"


def cache_table(entries: list[CacheEntry], root: Any) -> Table:
    """``%cache ls`` / ``colabmodels cache ls``: name, size, last used, source."""
    from .transfer import describe_bytes

    now = time.time()
    total = sum(e.size for e in entries)
    return Table(entries, ["name", "size", "used", "source"],
                 lambda e: [e.name + ("/" if e.kind == "tree" else ""), describe_bytes(e.size),
                            age(now - (e.last_used or e.created)), e.source],
                 empty=f"the cache is empty ({root})",
                 footer=f"{len(entries)} entries, {describe_bytes(total)} in {root}")


def describe_entry(entry: CacheEntry) -> str:
    from .transfer import describe_bytes

    problem = entry.extra.get("problem")
    return f"{entry.name} ({describe_bytes(entry.size)}, {entry.source})" + \
        (f": {problem}" if problem else "")


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"500000"``, ``"500MB"`` (decimal) or ``"2GiB"``/``"2G"`` (binary) -> bytes."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a size (examples: 1000000, 500MB, 2GiB)")
    number, unit, binary = float(m.group(1)), m.group(2).lower(), m.group(3)
    power = "kmgt".find(unit) + 1 if unit else 0
    base = 1024 if binary or (unit and not text.strip().lower().endswith("b")) else 1000
    return int(number * base ** power)


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# -- commands ---------------------------------------------------------------------------------

def _fetch(args: argparse.Namespace) -> int:
    from . import api

    path = api.fetch(args.ref, offline=True if args.offline else None, progress=not args.no_progress)
    print(path)
    return 0


def _versions(args: argparse.Namespace) -> int:
    from . import api

    print(versions_table(api.versions(args.dest), args.dest))
    return 0


def _cache(args: argparse.Namespace) -> int:
    from .cache import cache
    from .transfer import describe_bytes

    action = args.action
    if action == "ls":
        print(cache_table(cache.entries(), cache.root))
        return 0
    if action == "verify":
        count = len(cache.entries())
        bad = cache.verify()
        if not bad:
            print(f"all {count} entries verified")
            return 0
        print(f"{len(bad)} of {count} entries were bad and have been removed "
              "(they are fetched again on next use):")
        for entry in bad:
            print(f"  {describe_entry(entry)}")
        return 1
    if action == "prune":
        removed = cache.prune(args.max_bytes)
        freed = describe_bytes(sum(e.size for e in removed))
        print(f"removed {len(removed)} entries ({freed}); "
              f"{describe_bytes(cache.total_bytes())} left in {cache.root}")
        return 0
    # clear
    entries = cache.entries()
    cache.clear()
    print(f"removed {len(entries)} entries ({describe_bytes(sum(e.size for e in entries))}) "
          f"from {cache.root}")
    return 0


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

    p = sub.add_parser("demo", help="the quickstart notebook against the emulator (--open: in "
                                    "JupyterLab)", add_help=False)
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
        print(f"{PROG}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
