"""Issue 26 (hardening, round two), packaging: the keras floor excludes releases without the
CVE-2026-1462 fix. (The rest of the issue's tests: tests/emulator/test_security_round2.py and
tests/frameworks/test_security_round2_images.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _keras_admits(python: str, version: str) -> bool:
    """Whether the ``tf`` extra lets pip install keras ``version`` on Python ``python``."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    env = {"python_version": python, "platform_system": "Linux", "extra": "tf"}
    wanted = [Requirement(r) for r in extras["tf"]]
    keras = [r for r in wanted if r.name == "keras" and (r.marker is None or r.marker.evaluate(env))]
    assert keras, f"no keras requirement applies on Python {python}"
    return all(r.specifier.contains(version, prereleases=True) for r in keras)


@pytest.mark.colab
@pytest.mark.parametrize("python", ["3.9", "3.10", "3.11", "3.12"])
def test_keras_without_the_cve_2026_1462_fix_is_excluded(python):
    for bad in ("3.13.0", "3.13.1", "3.12.0"):
        assert not _keras_admits(python, bad), f"keras {bad} admitted on Python {python}"
    assert _keras_admits(python, "3.13.2")
