"""The package itself: import cost, public names, the error tree, config."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import colabmodels
from colabmodels import config, errors

pytestmark = pytest.mark.colab  # also run where only the core dependencies are installed

HEAVY = ("tensorflow", "keras", "torch", "gensim", "pydrive2", "googleapiclient", "numpy",
         "gcsfs", "s3fs", "PIL")


def test_import_pulls_in_no_heavy_library():
    code = (
        "import sys, json, colabmodels, colabmodels.errors, colabmodels.config, colabmodels.refs;"
        "print(json.dumps(sorted(m for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == []


def test_all_is_sorted_and_every_name_resolves():
    assert colabmodels.__all__ == sorted(colabmodels.__all__)
    for name in colabmodels.__all__:
        if name in colabmodels._LAZY:
            module = colabmodels._LAZY[name].split(":")[0]
            try:
                __import__(f"colabmodels.{module}")
            except ModuleNotFoundError:
                pytest.fail(f"colabmodels.{name} points at missing module colabmodels.{module}")
        try:
            value = getattr(colabmodels, name)
        except errors.MissingDependencyError as e:  # an optional extra is not installed here
            assert "pip install" in str(e)
            continue
        assert value is not None


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        colabmodels.does_not_exist  # noqa: B018


@pytest.mark.parametrize(
    "cls, builtin",
    [
        (errors.RefError, ValueError),
        (errors.AuthError, PermissionError),
        (errors.NotFoundError, FileNotFoundError),
        (errors.TransferError, OSError),
        (errors.UnknownFormatError, ValueError),
        (errors.OfflineError, ConnectionError),
        (errors.MissingDependencyError, ImportError),
    ],
)
def test_errors_subclass_the_nearest_builtin(cls, builtin):
    assert issubclass(cls, builtin)
    assert issubclass(cls, errors.ColabModelsError)


def test_error_tree_docstring_names_every_error():
    for name in errors.__all__:
        assert name in errors.__doc__, name
        assert issubclass(getattr(errors, name), errors.ColabModelsError)
    assert errors.__all__ == sorted(errors.__all__)


def test_config_is_read_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("COLABMODELS_CACHE_DIR", str(tmp_path / "c"))
    assert config.cache_dir() == tmp_path / "c"
    monkeypatch.setenv("COLABMODELS_OFFLINE", "1")
    assert config.offline() is True
    assert config.offline(False) is False
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", "http://127.0.0.1:9")
    assert config.drive_endpoint() == "http://127.0.0.1:9/"
    monkeypatch.setenv("COLABMODELS_CACHE_MAX_BYTES", "nope")
    with pytest.raises(ValueError, match="COLABMODELS_CACHE_MAX_BYTES"):
        config.cache_max_bytes()


def test_cm_cache_stays_the_cache_object_after_internal_imports(tmp_path):
    """``cm.fetch(x); cm.cache.verify()`` in a fresh process (issue 11): the submodule that
    holds the cache must never shadow the object."""
    model = tmp_path / "model.bin"
    model.write_bytes(b"x")
    code = (
        "import colabmodels as cm, colabmodels.api, colabmodels.registry, colabmodels.cachestore\n"
        f"cm.fetch({str(model)!r}, progress=False)\n"
        "assert type(cm.cache).__name__ == 'Cache', type(cm.cache)\n"
        "print(cm.cache.verify(), len(cm.cache.entries()))\n"
        "import colabmodels\n"
        "assert colabmodels.cache is cm.cache\n"
    )
    env = {**__import__("os").environ, "COLABMODELS_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] 0"
