"""The one place that reads environment variables.

Read values through the functions here at call time (never cache them in module globals),
so tests and users can change the environment after import.

==================================  ============================================================
``COLABMODELS_DRIVE_ENDPOINT``      a Drive-compatible endpoint (default: Google's). Points the
                                    API, uploads, token and web downloads at it (the emulator).
``GOOGLE_APPLICATION_CREDENTIALS``  a service-account key file
``COLABMODELS_CACHE_DIR``           cache root (default ``~/.cache/colabmodels``)
``COLABMODELS_CACHE_MAX_BYTES``     size cap of the cache; least recently used entries go first
``COLABMODELS_OFFLINE``             ``1`` serves cache hits only, with no network at all
``COLABMODELS_CONFIG_DIR``          where a saved user login lives (default ``~/.config/colabmodels``)
``COLABMODELS_CONNECTIONS``         parallel connections per large download (default 8)
``COLABMODELS_CHUNK_BYTES``         size of one ranged part / upload chunk (default 8 MiB)
``COLABMODELS_MAX_RETRIES``         attempts per request before giving up (default 8)
==================================  ============================================================
"""

from __future__ import annotations

import os
from pathlib import Path

GOOGLE_DRIVE_ENDPOINT = "https://www.googleapis.com/"
DRIVE_SCOPES = ("https://www.googleapis.com/auth/drive",)

_TRUE = {"1", "true", "yes", "on"}


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(float(raw))
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def drive_endpoint() -> str:
    """The Drive endpoint root, always ending in ``/``."""
    url = _env("COLABMODELS_DRIVE_ENDPOINT") or GOOGLE_DRIVE_ENDPOINT
    return url if url.endswith("/") else url + "/"


def uses_google_endpoint() -> bool:
    return drive_endpoint() == GOOGLE_DRIVE_ENDPOINT


def service_account_file() -> str | None:
    return _env("GOOGLE_APPLICATION_CREDENTIALS")


def cache_dir() -> Path:
    raw = _env("COLABMODELS_CACHE_DIR")
    if raw:
        return Path(raw).expanduser()
    base = _env("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "colabmodels"


def cache_max_bytes() -> int | None:
    raw = _env("COLABMODELS_CACHE_MAX_BYTES")
    return None if raw is None else _int("COLABMODELS_CACHE_MAX_BYTES", 0)


def offline(override: bool | None = None) -> bool:
    if override is not None:
        return bool(override)
    return (_env("COLABMODELS_OFFLINE") or "").lower() in _TRUE


def config_dir() -> Path:
    raw = _env("COLABMODELS_CONFIG_DIR")
    if raw:
        return Path(raw).expanduser()
    base = _env("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "colabmodels"


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
