"""Name files in messages the way the user named them.

A model loaded from Drive, GCS or a URL is read from a cache copy with a name that means
nothing to the user (``.../cache/entries/3f2a.../data/file``). Errors say what the user typed
(``MyDrive/m/d2v.model``, a share link) first, with the local copy after it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DisplayNames"]


class DisplayNames:
    """Turns local paths under ``root`` into names built from ``source``.

    ``DisplayNames(root, None)`` names every path as itself. With a ``source``, ``root`` is
    shown as ``"SOURCE (local copy ROOT)"`` and a path inside it as
    ``"SOURCE/REL (local copy PATH)"``; paths outside ``root`` are shown as they are.
    """

    def __init__(self, root: Path, source: str | None = None) -> None:
        self.root = Path(root)
        # a local path passed as itself needs no second name
        self.source = source if source and source != str(self.root) else None

    def source_of(self, path: str | Path) -> str | None:
        """What the user would call ``path`` (``SOURCE`` or ``SOURCE/REL``), or None."""
        if self.source is None:
            return None
        p = Path(path)
        if p == self.root:
            return self.source
        try:
            rel = p.relative_to(self.root)
        except ValueError:
            return None
        return f"{self.source.rstrip('/')}/{rel.as_posix()}"

    def __call__(self, path: str | Path) -> str:
        shown = self.source_of(path)
        return str(path) if shown is None else f"{shown} (local copy {path})"
