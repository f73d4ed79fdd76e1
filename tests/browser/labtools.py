"""Helpers for browser tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [
            {"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None,
             "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
    }
    path.write_text(json.dumps(nb))


# Where each UI draws a notebook: its cells, a cell's editor, an output, an idle kernel.
UI = {
    "lab": {"cell": ".jp-Notebook .jp-Cell", "editor": ".jp-InputArea-editor",
            "output": ".jp-OutputArea-output", "idle": ".jp-StatusBar-Item:has-text('Idle')"},
    "classic": {"cell": "#notebook .cell", "editor": ".input_area",
                "output": ".output_area", "idle": "#kernel_indicator_icon.kernel_idle_icon"},
}


def open_and_run_first_cell(page, url: str, appears: str, *, failed_shot: Path | None = None,
                            timeout_ms: int = 90_000, ui: str = "lab"):
    """Open a notebook, wait for an idle kernel, run its first cell until ``appears`` shows.

    A keypress sent while the page still settles can be lost, so the cell is run up to three
    times; a screenshot of a failed attempt goes to ``failed_shot``. Returns the element found
    (None when it never appeared: the caller's next wait then fails with its own message).
    """
    sel = UI[ui]
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(sel["cell"], timeout=timeout_ms)
    # the kernel is up when the status bar says so (a cold first start can take a while)
    page.wait_for_selector(sel["idle"], state="attached", timeout=120_000)
    for _attempt in range(3):
        page.locator(sel["cell"]).nth(0).locator(sel["editor"]).click()
        page.keyboard.press("Shift+Enter")
        try:
            return page.wait_for_selector(appears, timeout=timeout_ms)
        except Exception:
            if failed_shot is not None:
                page.screenshot(path=str(failed_shot))
    return None


def run_cell(page, index: int, *, expect: str, failed_shot: Path, timeout_ms: int = 90_000,
             ui: str = "lab") -> str:
    """Run cell ``index`` until an output containing ``expect`` shows; return that output's text.

    Up to three tries (a keypress sent while the page still settles can be lost); a screenshot of
    a failed try goes to ``failed_shot``.
    """
    sel = UI[ui]
    cells = page.locator(sel["cell"])
    for _attempt in range(3):
        cells.nth(index).locator(sel["editor"]).click()
        page.keyboard.press("Shift+Enter")
        try:
            found = page.wait_for_selector(f"{sel['output']}:has-text('{expect}')",
                                           timeout=timeout_ms)
            return found.inner_text()
        except Exception:
            page.screenshot(path=str(failed_shot))
    raise AssertionError(f"no {expect!r} after three runs; see {failed_shot}")


# -- the Drive browser's list (the same widgets in every UI) ----------------------------------

def option_index(page, text: str) -> int:
    """The index of the first list row whose text contains ``text`` (-1 if none)."""
    return page.evaluate(
        """(text) => {
            const opts = [...document.querySelectorAll('.cm-drive-list select option')];
            return opts.findIndex(o => o.textContent.includes(text));
        }""", text)


def click_row(page, text: str) -> None:
    """Select the first row whose text contains ``text`` (waiting until it is listed)."""
    page.wait_for_function(
        """(text) => [...document.querySelectorAll('.cm-drive-list select option')]
                     .some(o => o.textContent.includes(text))""", arg=text, timeout=60_000)
    page.select_option(".cm-drive-list select", index=option_index(page, text))


def double_click_row(page, text: str) -> None:
    """A person's double-click on a row: the first click selects it, the second opens it."""
    click_row(page, text)  # selected (and the selection reached the kernel) ...
    page.locator(".cm-drive-list select option").nth(option_index(page, text)).dblclick()


def crumbs(page, last: str) -> list[str]:
    """The breadcrumb buttons' texts, once the last one is ``last``."""
    page.wait_for_function(
        """(last) => { const b = [...document.querySelectorAll('.cm-crumbs button')];
                       return b.length && b[b.length - 1].textContent.trim() === last; }""",
        arg=last, timeout=60_000)
    return [c.strip() for c in page.locator(".cm-crumbs button").all_inner_texts()]
