"""Which running framework versions the trust gate can rely on.

Some formats load without ``trust=True`` only because the framework refuses to run code from
them: torch state dicts rely on ``torch.load(weights_only=True)``, Keras models on
``safe_mode=True``. Older releases had holes in exactly those guards, and Colab preinstalls its
own torch and Keras (``pip install colabmodels`` does not replace them), so the floors in
``pyproject.toml`` are not enough: ``check_running_version`` asks the *running* framework
for its version and, when it predates the fix, refuses to load without ``trust=True``.

========================  ======================  ==========================================
formats                   needs                   because
========================  ======================  ==========================================
``torch-state-dict``      torch >= 2.6            CVE-2025-32434: before 2.6,
                                                  ``torch.load(weights_only=True)`` handed
                                                  TorchScript archives to ``torch.jit.load``
``keras``, ``keras-h5``   keras >= 3.13.2         ``safe_mode=True`` bypasses: CVE-2025-1550
                          (or 3.12.1 <= v < 3.13  (3.9), CVE-2025-8747 and CVE-2025-9906
                          on the 3.12 branch,     (3.11.0), CVE-2025-9905 (.h5) and
                          which has the fixes     CVE-2025-49655 (3.11.3), CVE-2026-1462
                          backported)             (TFSMLayer; 3.13.2, backported to 3.12.1)
========================  ======================  ==========================================

The running version is ``module.__version__`` of the imported framework, read at call time by
``running_version``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UntrustedFormatError
from .dependencies import require
from .info import FormatInfo

__all__ = [
    "SAFETY_FLOORS",
    "SafetyFloor",
    "check_running_version",
    "is_at_least",
    "parse_version",
    "running_version",
]

_VERSION = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?P<rest>.*)$")
_PRERELEASE = re.compile(r"^[.\-_]?(?:a|alpha|b|beta|c|rc|pre|preview|dev)\d*", re.IGNORECASE)


@dataclass(frozen=True)
class SafetyFloor:
    """The first release of ``module`` whose guard the gate relies on for ``formats``.

    Attributes:
        module: the framework's import name.
        formats: format names whose loading without ``trust`` relies on the guard.
        minimum: the first fixed release.
        also_fixed: ``(low, high)`` ranges of older branches that got the fix backported
            (``low <= version < high``).
        guard: what the gate relies on, for messages.
        advisories: ``(advisory id, first fixed release)`` for each hole the minimum closes;
            messages name those the running version still has.
    """

    module: str
    formats: frozenset[str]
    minimum: tuple[int, ...]
    also_fixed: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    guard: str
    advisories: tuple[tuple[str, tuple[int, ...]], ...]

    def is_fixed(self, version: str) -> bool:
        """Whether ``version`` has the fix (unparsable versions do not)."""
        if is_at_least(version, self.minimum):
            return True
        return any(
            is_at_least(version, low) and not is_at_least(version, high)
            for low, high in self.also_fixed
        )


SAFETY_FLOORS: tuple[SafetyFloor, ...] = (
    SafetyFloor(
        module="torch",
        formats=frozenset({"torch-state-dict"}),
        minimum=(2, 6),
        also_fixed=(),
        guard="torch.load(weights_only=True) refusing TorchScript archives",
        advisories=(("CVE-2025-32434", (2, 6)),),
    ),
    SafetyFloor(
        module="keras",
        formats=frozenset({"keras", "keras-h5"}),
        minimum=(3, 13, 2),
        also_fixed=(((3, 12, 1), (3, 13)),),
        guard="Keras safe_mode=True refusing code stored in the model config",
        advisories=(
            ("CVE-2025-1550", (3, 9)),
            ("CVE-2025-8747", (3, 11, 0)),
            ("CVE-2025-9906", (3, 11, 0)),
            ("CVE-2025-9905", (3, 11, 3)),
            ("CVE-2025-49655", (3, 11, 3)),
            ("CVE-2026-1462", (3, 13, 2)),
        ),
    ),
)
"""The guards the trust gate relies on, by framework."""


def parse_version(version: str) -> tuple[tuple[int, ...], bool] | None:
    """``((major, minor, patch), is_final_release)`` from a version string, or None.

    Local labels (``+cu121``) are ignored; a pre-release or dev build (``2.6.0a0``,
    ``2.6.0rc1``, ``3.13.2.dev2026``) is not final, so it ranks below its release.
    """
    m = _VERSION.match(str(version))
    if m is None:
        return None
    numbers = tuple(int(g) if g is not None else 0 for g in m.groups()[:3])
    rest = m.group("rest").split("+", 1)[0]
    return numbers, not _PRERELEASE.match(rest)


def is_at_least(version: str, minimum: tuple[int, ...]) -> bool:
    """Whether ``version`` is ``minimum`` or later (pre-releases of ``minimum`` are not)."""
    parsed = parse_version(version)
    if parsed is None:
        return False
    numbers, final = parsed
    wanted = tuple(minimum) + (0,) * (3 - len(minimum))
    return numbers > wanted or (numbers == wanted and final)


def running_version(module: str) -> str:
    """``__version__`` of the framework as imported now (imports it if needed).

    Raises:
        MissingDependencyError: the framework is not installed.
    """
    return str(getattr(require(module), "__version__", "unknown"))


def check_running_version(info: FormatInfo, *, trust: bool, name: str) -> None:
    """Refuse formats whose safety relies on a guard the running framework lacks.

    Args:
        info: what is about to be loaded.
        trust: the caller's ``trust``; with True nothing is checked.
        name: how to name the file in the message.

    Raises:
        UntrustedFormatError: the running framework predates the fix and ``trust`` is False;
            the message names the running version, the fixed one and the advisories.
        MissingDependencyError: the framework is not installed.
    """
    if trust:
        return
    for floor in SAFETY_FLOORS:
        if info.name not in floor.formats:
            continue
        version = running_version(floor.module)
        if floor.is_fixed(version):
            continue
        fixed = ".".join(str(n) for n in floor.minimum)
        backports = "".join(
            f", or {'.'.join(map(str, low))} on the {'.'.join(map(str, low[:2]))}.x branch"
            for low, _high in floor.also_fixed
        )
        holes = ", ".join(a for a, fix in floor.advisories if not is_at_least(version, fix))
        raise UntrustedFormatError(
            f"Loading {name} ({info.name}) safely relies on {floor.guard}, which "
            f"{floor.module} {version} lacks ({holes or 'a known bypass'}; fixed in {floor.module} "
            f'{fixed}{backports}). Upgrade with pip install -U "{floor.module}>={fixed}" '
            "and restart the runtime, or pass trust=True (--trust) only if you trust where "
            "the file came from.",
            would_run=[f"whatever the file makes {floor.module} {version} run"],
        )
