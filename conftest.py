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


# -- Drive emulator fixtures (shared by the emulator, frameworks and notebook tiers) ---------

@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A private cache and config dir, no Drive session, no ambient credentials."""
    import colabmodels.drive.session

    monkeypatch.setenv("COLABMODELS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLABMODELS_CONFIG_DIR", str(tmp_path / "config"))
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "COLABMODELS_OFFLINE",
                "COLABMODELS_CACHE_MAX_BYTES", "COLABMODELS_DRIVE_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    colabmodels.drive.session.reset()
    yield tmp_path
    colabmodels.drive.session.reset()


@pytest.fixture
def fake_drive():
    """A fresh Drive emulator on 127.0.0.1 (no shaping, no faults), the one for every tier.

    Every JSON body it sends is kept and, at teardown, checked against Drive's v2 discovery
    schemas (:func:`tests.drive_checks.validate_logged_responses`), so each test that uses it
    also checks the emulator's wire format. ``fake_drive.key_path`` is the last key written.
    """
    from colabmodels.testing import FakeDrive
    from tests.drive_checks import validate_logged_responses

    with FakeDrive(keep_json=True) as fd:
        yield fd
        validate_logged_responses(fd)


@pytest.fixture
def drive_env(isolated, fake_drive, monkeypatch):
    """colabmodels pointed at the emulator with a service-account key, like a user would."""
    key = isolated / "key.json"
    fake_drive.write_service_account(key)
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fake_drive.url)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    return fake_drive  # fake_drive.key_path is the key


# -- a real IPython shell, as jupysql tests theirs ------------------------------------------

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402


class TestingShell(InteractiveShell):
    """A shell whose run_cell raises the cell's error, so a failing magic fails the test."""

    __test__ = False

    def run_cell(self, *args, **kwargs):
        result = super().run_cell(*args, **kwargs)
        result.raise_error()
        return result


@pytest.fixture
def new_shell(isolated, monkeypatch):
    """Make the one TestingShell of a test, from a traitlets Config, with `%load_ext colabmodels`."""
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(isolated / "ipython"))

    def make(config: Config | None = None) -> TestingShell:
        config = config or Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = TestingShell.instance(config=config)
        shell.run_cell("%load_ext colabmodels")
        return shell

    yield make
    TestingShell.clear_instance()


@pytest.fixture
def ip(new_shell):
    """A fresh shell with `%load_ext colabmodels` done (works on IPython 7.34 and 9)."""
    return new_shell()
