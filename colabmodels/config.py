"""The one place that reads environment variables.

Read values through the functions here at call time (never cache them in module globals),
so tests and users can change the environment after import.

==================================  ============================================================
``COLABMODELS_DRIVE_ENDPOINT``      a Drive-compatible endpoint (default: Google's). Points the
                                    API, uploads, token and web downloads at it (the emulator).
``GOOGLE_APPLICATION_CREDENTIALS``  a service-account key file
``COLABMODELS_CACHE_DIR``           cache root (default ``~/.cache/colabmodels``)
``COLABMODELS_CACHE_MAX_BYTES``     size cap of the cache (``5000000000``, ``500MB``, ``5GiB``);
                                    least recently used entries go first
``COLABMODELS_OFFLINE``             ``1``/``true``/``yes``/``on`` serves cache hits only, with no
                                    network at all (``0``/``false``/``no``/``off``: online)
``COLABMODELS_CONFIG_DIR``          where a saved user login lives (default ``~/.config/colabmodels``)
``COLABMODELS_CONNECTIONS``         parallel connections per large download (default 8)
``COLABMODELS_CHUNK_BYTES``         size of one ranged part / upload chunk (default 8 MiB)
``COLABMODELS_MAX_RETRIES``         attempts per request before giving up (default 8)
==================================  ============================================================

A value that cannot be used raises ``ConfigError`` (a ``ValueError``)
naming the variable and what it accepts.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import presentation
from .errors import ConfigError

__all__ = [
    "DRIVE_SCOPES",
    "GOOGLE_DRIVE_ENDPOINT",
    "cache_dir",
    "cache_max_bytes",
    "chunk_bytes",
    "config_dir",
    "connections",
    "drive_endpoint",
    "in_colab",
    "max_retries",
    "offline",
    "parse_size",
    "service_account_file",
    "uses_google_endpoint",
]

GOOGLE_DRIVE_ENDPOINT = "https://www.googleapis.com/"
DRIVE_SCOPES = ("https://www.googleapis.com/auth/drive",)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def parse_size(text: str | int) -> int:
    """A size in bytes from ``5000000000``, ``500MB``/``500 mb`` (decimal), ``5GiB``/``5G`` (binary).

    ``colabmodels.presentation.parse_size`` (the one size parser, which the CLI and the
    magics use) with its errors as ``ConfigError``.

    Raises:
        ConfigError: (a ``ValueError``) not a size, or a negative one.
    """
    try:
        return presentation.parse_size(text)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(raw)
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; unset it or give a whole number") from None


def drive_endpoint() -> str:
    """The Drive endpoint root, always ending in ``/``.

    Raises:
        ConfigError: ``COLABMODELS_DRIVE_ENDPOINT`` is not an ``http(s)://host/`` URL.
    """
    from urllib.parse import urlsplit

    url = (_env("COLABMODELS_DRIVE_ENDPOINT") or GOOGLE_DRIVE_ENDPOINT).strip()
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname \
            or parts.query or parts.fragment:
        raise ConfigError(f"COLABMODELS_DRIVE_ENDPOINT={url!r} is not an endpoint URL such as "
                          "http://127.0.0.1:8080/; unset it to use Google Drive")
    return url if url.endswith("/") else url + "/"


def uses_google_endpoint() -> bool:
    return drive_endpoint() == GOOGLE_DRIVE_ENDPOINT


def service_account_file() -> str | None:
    return _env("GOOGLE_APPLICATION_CREDENTIALS")


def _user_dir(variable: str, xdg_variable: str, default: str) -> Path:
    """``$variable``, else ``$xdg_variable/colabmodels``, else ``~/<default>/colabmodels``."""
    raw = _env(variable)
    if raw:
        return Path(raw).expanduser()
    base = _env(xdg_variable) or os.path.join(os.path.expanduser("~"), default)
    return Path(base) / "colabmodels"


def cache_dir() -> Path:
    return _user_dir("COLABMODELS_CACHE_DIR", "XDG_CACHE_HOME", ".cache")


def cache_max_bytes() -> int | None:
    """``COLABMODELS_CACHE_MAX_BYTES`` in bytes (``5GiB``, ``500MB``, ``1000000``), or None.

    Raises:
        ConfigError: the value is not a size.
    """
    raw = _env("COLABMODELS_CACHE_MAX_BYTES")
    if raw is None:
        return None
    try:
        return parse_size(raw)
    except ConfigError as e:
        raise ConfigError(f"COLABMODELS_CACHE_MAX_BYTES: {e}; unset it or give e.g. 5GiB") from None


def offline(override: bool | None = None) -> bool:
    """Offline mode: ``override`` when given, else ``COLABMODELS_OFFLINE``.

    Raises:
        ConfigError: ``COLABMODELS_OFFLINE`` is neither true-like nor false-like.
    """
    if override is not None:
        return bool(override)
    raw = (_env("COLABMODELS_OFFLINE") or "").strip().lower()
    if raw in _TRUE:
        return True
    if not raw or raw in _FALSE:
        return False
    raise ConfigError(f"COLABMODELS_OFFLINE={raw!r}: use 1 (offline) or 0 (online)")


def config_dir() -> Path:
    return _user_dir("COLABMODELS_CONFIG_DIR", "XDG_CONFIG_HOME", ".config")


def connections() -> int:
    return max(1, _int("COLABMODELS_CONNECTIONS", 8))


def chunk_bytes() -> int:
    return max(256 * 1024, _int("COLABMODELS_CHUNK_BYTES", 8 * 1024 * 1024))


def max_retries() -> int:
    return max(1, _int("COLABMODELS_MAX_RETRIES", 8))


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    import sys

    return "google.colab" in sys.modules or bool(_env("COLAB_RELEASE_TAG"))
