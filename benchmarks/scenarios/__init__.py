"""One module per scenario; each has ``run(params, work) -> dict`` (see :mod:`.base`)."""

from __future__ import annotations

from . import (
    archives,
    browser,
    cache_hit,
    checkpoint,
    datasets,
    download,
    gdrivefs,
    listing,
    nobytetwice,
    resume,
    scale,
    upload,
)

SCENARIOS = {
    "download": download,
    "cache_hit": cache_hit,
    "upload": upload,
    "resume": resume,
    "listing": listing,
    "browser": browser,
    "datasets": datasets,
    "archives": archives,
    "checkpoint": checkpoint,
    "gdrivefs": gdrivefs,
    "scale": scale,
    "nobytetwice": nobytetwice,
}

__all__ = ["SCENARIOS"]
