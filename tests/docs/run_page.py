"""Run the examples of one documentation page, in order, in one IPython shell (so magics work),
and stop at the first that fails: ``python tests/docs/run_page.py docs/guides/models.md``.

A fenced ```` ```python ```` block is an example that runs; one preceded by an HTML comment
``<!-- not run: REASON -->`` is shown only (it needs Colab, your own files, or is a file for your
own project). Every other fence language (bash, text...) is not Python and not run.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!--\s*not run:[^>]*-->\s*$")


def examples(text: str) -> list[tuple[int, str, bool]]:
    """``(line, code, runs)`` for every python block of a Markdown page."""
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        runs = not (before and NOT_RUN.search(before[-1]))
        found.append((text.count("\n", 0, match.start()) + 1, match.group(1), runs))
    return found


def main(page: str) -> int:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    for line, code, runs in examples(Path(page).read_text(encoding="utf-8")):
        if not runs:
            continue
        print(f"--- {page}:{line}", flush=True)
        result = shell.run_cell(code, store_history=False)
        if not result.success:
            print(f"FAILED: the example at {page}:{line}", file=sys.stderr, flush=True)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
