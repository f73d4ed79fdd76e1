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


def open_and_run_first_cell(page, url: str, appears: str, *, failed_shot: Path | None = None,
                            timeout_ms: int = 90_000):
    """Open a notebook, wait for an idle kernel, run its first cell until ``appears`` shows.

    A keypress sent while the page still settles can be lost, so the cell is run up to three
    times; a screenshot of a failed attempt goes to ``failed_shot``. Returns the element found
    (None when it never appeared: the caller's next wait then fails with its own message).
    """
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_ms)
    # the kernel is up when the status bar says so (a cold first start can take a while)
    page.wait_for_selector(".jp-StatusBar-Item:has-text('Idle')", timeout=120_000)
    for _attempt in range(3):
        page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        try:
            return page.wait_for_selector(appears, timeout=timeout_ms)
        except Exception:
            if failed_shot is not None:
                page.screenshot(path=str(failed_shot))
    return None


def run_cell(page, index: int, *, expect: str, failed_shot: Path, timeout_ms: int = 90_000) -> str:
    """Run cell ``index`` until an output containing ``expect`` shows; return that output's text.

    Up to three tries (a keypress sent while the page still settles can be lost); a screenshot of
    a failed try goes to ``failed_shot``.
    """
    cells = page.locator(".jp-Notebook .jp-Cell")
    for _attempt in range(3):
        cells.nth(index).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        try:
            found = page.wait_for_selector(f".jp-OutputArea-output:has-text('{expect}')",
                                           timeout=timeout_ms)
            return found.inner_text()
        except Exception:
            page.screenshot(path=str(failed_shot))
    raise AssertionError(f"no {expect!r} after three runs; see {failed_shot}")
