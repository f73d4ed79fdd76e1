"""Test tiers: a test's folder gives its marker (tests/unit -> unit, tests/emulator -> emulator...).

`make test` runs every tier; pick one with `-m unit`, `-m "not browser"`, etc. Tests that must
also pass on what Colab ships (IPython 7.34, ipywidgets 7.7.1) carry the `colab` marker and run
a second time in `.venv-colab`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_TIERS = ("unit", "emulator", "frameworks", "browser", "notebooks")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
