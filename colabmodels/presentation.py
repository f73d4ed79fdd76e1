"""How results look and how typed values are read: shared by the magics, the CLI and the widgets.

Every face shows the same things the same way, so the text lives here once:

- sizes and times: ``format_size`` (``1.5 KiB``), ``parse_size`` (``5GiB`` -> bytes),
  ``format_time`` (``2026-11-21 10:00`` or ``3 min ago``), ``format_age``;
- tables: ``Table`` (a list that prints as aligned columns and shows as HTML in a
  notebook), built by ``versions_table`` and ``cache_table``;
- messages: ``saved_line`` (after a save), ``verify_report``, ``cache_report``
  (after ``cache verify|prune|clear``), ``error_line`` (an error in the face's own words);
- typed values: ``parse_meta`` (``acc=0.93`` -> ``{"acc": 0.93}``).

This module is a leaf: it imports nothing from colabmodels at run time (the objects it shows are
read by attribute), so every layer may use it, including library messages that name a size.
Parsing functions raise ``ValueError`` with a message that says what is accepted; each
face turns that into its own usage error.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .api import CacheReport
    from .cachestore import CacheEntry
    from .registry import SavedModelInfo

__all__ = [
    "Face",
    "Table",
    "cache_report",
    "cache_table",
    "entry_line",
    "error_line",
    "format_age",
    "format_size",
    "format_time",
    "metadata_text",
    "parse_meta",
    "parse_size",
    "saved_line",
    "verify_report",
    "versions_table",
]

Face = Literal["python", "magic", "cli", "widget"]


# -- sizes and times --------------------------------------------------------------------------

def format_size(n: float | None) -> str:
    """Bytes in binary units: ``1536`` -> ``"1.5 KiB"``, ``10`` -> ``"10 B"``, None -> ``""``."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?:([kmgtp])(i)?)?(b)?", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """A size as people type it -> bytes: the one size parser (the CLI, the magics and
    ``COLABMODELS_CACHE_MAX_BYTES`` through ``colabmodels.config.parse_size``).

    ``"500000"``; decimal with ``B`` only: ``"500MB"``, ``"1.5KB"``; binary with ``iB`` or a
    bare unit letter: ``"2GiB"``, ``"2G"``, ``"2k"``, ``".5G"``; units up to ``P``/``PiB``.

    Raises:
        ValueError: not a size, a negative or an unusable one (the message gives examples).
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a size (examples: 1000000, 500MB, 5GiB)")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"{text} is not a size: sizes cannot be negative")
        return text
    m = _SIZE.fullmatch(str(text).strip())
    if m is None:
        raise ValueError(f"{text!r} is not a size (examples: 1000000, 500MB, 5GiB)")
    number, unit, binary, byte = m.group(1), (m.group(2) or "").lower(), m.group(3), m.group(4)
    power = "kmgtp".find(unit) + 1 if unit else 0
    base = 1024 if binary or (unit and not byte) else 1000
    try:
        value = float(number) * base**power
    except (OverflowError, ValueError):
        raise ValueError(f"{text!r} is not a usable size") from None
    if value != value or value == float("inf"):
        raise ValueError(f"{text!r} is not a usable size")
    return int(value)


def format_age(seconds: float) -> str:
    """A duration in the past, roughly: ``"just now"``, ``"3 min ago"``, ``"2 h ago"``, ``"5 days ago"``."""
    s = max(0.0, seconds)
    if s < 45:
        return "just now"
    if s < 3600:
        return f"{max(1, round(s / 60))} min ago"
    if s < 86400:
        return f"{round(s / 3600)} h ago"
    days = round(s / 86400)
    if days < 60:
        return "1 day ago" if days == 1 else f"{days} days ago"
    return f"{round(days / 30)} months ago"


def _as_datetime(value: float | str | _dt.datetime) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        moment = value
    elif isinstance(value, (int, float)):
        moment = _dt.datetime.fromtimestamp(value, _dt.timezone.utc)
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = _dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a naive time is the machine's local time
    return moment


def format_time(value: float | str | _dt.datetime | None, *, relative: bool = False,
                now: float | None = None) -> str:
    """A moment for people: ``"2026-11-21 10:00"`` in the machine's time zone (UTC on Colab).

    Args:
        value: seconds since the epoch, an ISO-8601 string (Drive's ``modifiedDate``, a
            manifest's ``created``) or a datetime. None or an unreadable string gives ``""``
            (an unreadable string is returned as it is).
        relative: ``"3 min ago"`` instead (see ``format_age``).
        now: the current time for ``relative`` (default ``time.time()``).
    """
    if value is None or value == "":
        return ""
    try:
        moment = _as_datetime(value)
    except (ValueError, TypeError, OverflowError, OSError):
        return str(value)
    if relative:
        return format_age((time.time() if now is None else now) - moment.timestamp())
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


# -- tables -----------------------------------------------------------------------------------

class Table(list):  # type: ignore[type-arg]
    """A list of objects (versions, cache entries, files) that displays as a table.

    It is a plain list of the underlying objects (``vs = %models X; vs[-1].ref``); its text
    ``repr`` is aligned columns for terminals and ``_repr_html_`` an HTML table for notebooks
    (cells are escaped).
    """

    def __init__(self, items: Iterable[Any], columns: Sequence[str],
                 row: Callable[[Any], Sequence[Any]], *, empty: str = "(nothing)",
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

    def to_text(self) -> str:
        """Aligned columns under a header and a rule, then the footer (or the empty message)."""
        if not self:
            return self.empty
        rows = [self.columns, *self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines)

    def to_html(self) -> str:
        """An HTML ``<table>`` (footer as caption), or the empty message as ``<p>``."""
        if not self:
            return f"<p><em>{html.escape(self.empty)}</em></p>"
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in r)
            + "</tr>" for r in self.rows
        )
        foot = (f"<caption style='caption-side:bottom'>{html.escape(self.footer)}</caption>"
                if self.footer else "")
        return f"<table>{foot}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        return self.to_text()

    __str__ = __repr__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.to_text())

    def _repr_html_(self) -> str:
        return self.to_html()


def metadata_text(metadata: dict[str, Any]) -> str:
    """``{"acc": 0.93, "note": "fine tuned"}`` -> ``"acc=0.93 note=fine tuned"``."""
    return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, default=str)}"
                    for k, v in metadata.items())


def versions_table(infos: Iterable[SavedModelInfo], dest: object = None) -> Table:
    """Saved versions (``%models``, ``colabmodels versions``): version, created, framework,
    format, metadata. ``dest`` names the folder in the message shown when there are none."""
    return Table(infos, ["version", "created", "framework", "format", "metadata"],
                 lambda i: [f"v{i.version}" + (" (best)" if "best" in getattr(i, "tags", ()) else ""),
                            i.created, i.framework, i.format, metadata_text(i.metadata)],
                 empty=f"no saved versions under {dest}" if dest is not None else "no saved versions")


def cache_table(entries: Iterable[CacheEntry], root: object = None, *,
                now: float | None = None) -> Table:
    """Cache entries (``%cache ls``, ``colabmodels cache ls``): name, size, last used, source.

    ``root`` (the cache folder) is named in the footer and the empty message.
    """
    items = list(entries)
    when = time.time() if now is None else now
    where = f" in {root}" if root is not None else ""
    return Table(items, ["name", "size", "used", "source"],
                 lambda e: [e.name + ("/" if e.kind == "tree" else ""), format_size(e.size),
                            format_age(when - (e.last_used or e.created)), e.source],
                 empty=f"the cache is empty ({root})" if root is not None else "the cache is empty",
                 footer=f"{len(items)} entries, {format_size(sum(e.size for e in items))}{where}")


# -- messages ---------------------------------------------------------------------------------

def entry_line(entry: CacheEntry) -> str:
    """One cache entry: ``name (size, source)``, plus ``: problem`` when verify found one."""
    problem = (entry.extra or {}).get("problem")
    return f"{entry.name} ({format_size(entry.size)}, {entry.source})" + \
        (f": {problem}" if problem else "")


def verify_report(bad: Sequence[CacheEntry], checked: int | None = None) -> str:
    """What ``cache verify`` found: ``"all 3 entries verified"`` or the bad entries, one a line."""
    if not bad:
        return "all entries verified" if checked is None else f"all {checked} entries verified"
    of = f" of {checked}" if checked is not None else ""
    lines = [f"{len(bad)}{of} entries were bad and have been removed "
             "(they are fetched again on next use):"]
    lines += [f"  {entry_line(e)}" for e in bad]
    return "\n".join(lines)


def cache_report(report: CacheReport) -> str:
    """The message after ``cache ls|verify|prune|clear`` (any face; ls as a text table)."""
    if report.action == "ls":
        return cache_table(report.entries, report.root).to_text()
    if report.action == "verify":
        return verify_report(report.entries, report.checked)
    freed = format_size(sum(e.size for e in report.entries))
    if report.action == "prune":
        return (f"removed {len(report.entries)} entries ({freed}); "
                f"{format_size(report.left_bytes)} left in {report.root}")
    if report.action == "clear":
        return f"removed {len(report.entries)} entries ({freed}) from {report.root}"
    raise ValueError(f"no message for cache action {report.action!r}")


def saved_line(name: str, info: SavedModelInfo) -> str:
    """After a save: ``Saved net as MyDrive/models/lin@v1 (torch · safetensors · 1.2 KiB)``."""
    size = format_size(sum(f.get("size") or 0 for f in info.files))
    return f"Saved {name} as {info.ref} ({info.framework} · {info.format} · {size})"


# What the library's messages tell a Python caller to pass, as each face spells it.
_FLAGS = {"offline": "--offline", "trust": "--trust", "arch": "--arch", "framework": "--framework",
          "version": "--version", "progress": "--no-progress"}
_PASS = re.compile(r"\bpass (\w+)=(True|False|'[^']*'|\"[^\"]*\"|[\w.]+)")


def _face_spelling(name: str, value: str) -> str | None:
    flag = _FLAGS.get(name)
    if flag is None:
        return None
    if name == "progress":
        return "add --no-progress" if value == "False" else "drop --no-progress"
    if value == "True":
        return f"add {flag}"
    if value == "False":
        return f"run without {flag}"
    return f"add {flag} {value.strip(chr(39) + chr(34))}"


def error_line(error: BaseException, face: Face = "python") -> str:
    """An error as one line, ``"NotFoundError: MyDrive/x does not exist"``, in the face's words.

    The library's messages say what to do next in Python's spelling (``pass offline=False``);
    the magics and the CLI show their own (``run without --offline``, ``add --trust``).
    """
    text = str(error)
    if face in ("magic", "cli"):
        def spell(m: re.Match[str]) -> str:
            return _face_spelling(m.group(1), m.group(2)) or m.group(0)

        text = _PASS.sub(spell, text)
        if face == "magic":
            text = text.replace("cm.save_model", "%save_model").replace("cm.load_model", "%load_model")
    return f"{type(error).__name__}: {text}"


# -- typed values -----------------------------------------------------------------------------

def parse_meta(items: Iterable[str] | None) -> dict[str, Any]:
    """``["acc=0.93", "note=fine tuned"]`` -> ``{"acc": 0.93, "note": "fine tuned"}``.

    A value that parses as JSON is taken as JSON (numbers, ``true``/``false``, ``null``,
    lists, objects); anything else is a string (``v=007`` stays ``"007"``).

    Raises:
        ValueError: an item without ``key=``.
    """
    meta: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--meta takes key=value pairs, not {item!r}")
        try:
            meta[key] = json.loads(raw)
        except ValueError:
            meta[key] = raw
    return meta
