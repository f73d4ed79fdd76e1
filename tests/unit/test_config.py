"""config.py: one size parser, and bad values as ConfigError (a ValueError), never raw errors."""

from __future__ import annotations

import pytest

from colabmodels import config
from colabmodels.errors import ColabModelsError, ConfigError

pytestmark = pytest.mark.colab


@pytest.mark.parametrize(("text", "expected"), [
    ("5GiB", 5 * 2**30),
    ("5 GiB", 5 * 2**30),
    ("5gib", 5 * 2**30),
    ("5G", 5 * 2**30),
    ("5GB", 5 * 10**9),
    ("500MB", 500 * 10**6),
    ("500mb", 500 * 10**6),
    ("1.5KiB", 1536),
    ("2TiB", 2 * 2**40),
    ("1000000", 1_000_000),
    ("0", 0),
    (" 12 ", 12),
    (7, 7),
])
def test_parse_size(text, expected):
    assert config.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "five", "5XB", "-1", "1e400", "5 GiB extra", -3, True])
def test_parse_size_rejects(text):
    with pytest.raises(ConfigError) as info:
        config.parse_size(text)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ColabModelsError)


def test_cache_max_bytes_accepts_what_the_cli_accepts(monkeypatch):
    monkeypatch.setenv("COLABMODELS_CACHE_MAX_BYTES", "5GiB")
    assert config.cache_max_bytes() == 5 * 2**30
    monkeypatch.setenv("COLABMODELS_CACHE_MAX_BYTES", "200000")
    assert config.cache_max_bytes() == 200_000
    monkeypatch.delenv("COLABMODELS_CACHE_MAX_BYTES")
    assert config.cache_max_bytes() is None


@pytest.mark.parametrize(("name", "value", "read"), [
    ("COLABMODELS_CACHE_MAX_BYTES", "lots", config.cache_max_bytes),
    ("COLABMODELS_CONNECTIONS", "eight", config.connections),
    ("COLABMODELS_CHUNK_BYTES", "nan", config.chunk_bytes),
    ("COLABMODELS_MAX_RETRIES", "inf", config.max_retries),
    ("COLABMODELS_OFFLINE", "maybe", config.offline),
    ("COLABMODELS_DRIVE_ENDPOINT", "127.0.0.1:8080", config.drive_endpoint),
    ("COLABMODELS_DRIVE_ENDPOINT", "ftp://files.example.com/", config.drive_endpoint),
    ("COLABMODELS_DRIVE_ENDPOINT", "http://host:99999/", config.drive_endpoint),
])
def test_bad_values_name_the_variable(monkeypatch, name, value, read):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        read()


@pytest.mark.parametrize(("value", "expected"), [
    ("1", True), ("true", True), ("YES", True), ("on", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
])
def test_offline_values(monkeypatch, value, expected):
    monkeypatch.setenv("COLABMODELS_OFFLINE", value)
    assert config.offline() is expected
    assert config.offline(True) is True


def test_bad_setting_through_a_public_call(monkeypatch, tmp_path):
    import colabmodels as cm

    monkeypatch.setenv("COLABMODELS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("COLABMODELS_OFFLINE", "perhaps")
    with pytest.raises(ConfigError, match="COLABMODELS_OFFLINE"):
        cm.fetch("MyDrive/x.bin", progress=False)
    monkeypatch.delenv("COLABMODELS_OFFLINE")
    monkeypatch.setenv("COLABMODELS_CACHE_MAX_BYTES", "a lot")
    from colabmodels.api import cache_prune

    with pytest.raises(ConfigError, match="COLABMODELS_CACHE_MAX_BYTES"):
        cache_prune()


# -- one size parser, whichever face reads it ----------------------------------------------------

SIZES_BOTH_FACES_READ = [
    ("5PiB", 5 * 2**50), ("5P", 5 * 2**50), ("5PB", 5 * 10**15), (".5G", 2**29),
    ("0.5GiB", 2**29), ("1.5KB", 1500), ("2k", 2048), (" 7 mb ", 7 * 10**6), ("2048.0 TiB", 2**51),
    ("0", 0), (12, 12),
]
NOT_SIZES = ["", "lots", "5 XB", "-3", "1e6", "5ib", "5 GiB extra", "1" + "0" * 400 + "PiB", -1, True]


@pytest.mark.parametrize(("text", "expected"), SIZES_BOTH_FACES_READ)
def test_the_cli_and_the_environment_read_a_size_alike(monkeypatch, tmp_path, text, expected):
    from colabmodels import presentation

    assert presentation.parse_size(text) == expected  # --max-bytes of the CLI and %cache
    assert config.parse_size(text) == expected
    monkeypatch.setenv("COLABMODELS_CACHE_MAX_BYTES", str(text))
    assert config.cache_max_bytes() == expected


@pytest.mark.parametrize("text", NOT_SIZES)
def test_the_cli_and_the_environment_refuse_the_same_sizes(text):
    from colabmodels import presentation

    with pytest.raises(ValueError, match=r"is not a (usable )?size") as cli:
        presentation.parse_size(text)
    with pytest.raises(ConfigError) as env:
        config.parse_size(text)
    assert str(env.value) == str(cli.value)
