"""Rewrite Sphinx cross-reference roles in docstrings as Markdown code spans.

The site renders docstrings as Markdown (mkdocstrings), where ``:meth:`Cache.clear``` shows as
raw text. This turns each role into the code span a reader sees::

    :func:`load_model`                               -> ``load_model``
    :meth:`~colabmodels.cachestore.Cache.clear`      -> ``clear``
    :class:`DriveSession <colabmodels.drive.session.DriveSession>` -> ``DriveSession``

Run it on files (it rewrites them in place and prints what changed)::

    python docs/hooks/rewrite_roles.py colabmodels/cachestore.py colabmodels/bulk.py ...

``tests/docs/test_roles.py`` fails while a file of the package still holds a role.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROLE = re.compile(
    r":(?:py:)?(?P<role>meth|func|class|data|mod|attr|exc|obj|const):`(?P<body>[^`]+)`")
"""A Sphinx cross-reference role as written in a docstring (it may wrap over lines)."""

_TITLED = re.compile(r"(?s)^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$")


def _span(match: re.Match[str]) -> str:
    body = match.group("body").strip()
    titled = _TITLED.match(body)
    text = titled.group("title") if titled and titled.group("title") else body
    text = text.lstrip("!")
    if text.startswith("~"):  # Sphinx shows the last part only
        text = text[1:].rsplit(".", 1)[-1]
    return "``" + " ".join(text.split()) + "``"


def rewrite(text: str) -> str:
    """``text`` with every Sphinx role replaced by a Markdown code span."""
    return ROLE.sub(_span, text)


def main(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        before = path.read_text(encoding="utf-8")
        after = rewrite(before)
        if after != before:
            path.write_text(after, encoding="utf-8")
            print(f"{path}: {len(ROLE.findall(before))} roles rewritten")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
