"""What an archive may do: member names that stay inside the target, and expansion limits.

**Names.** A member is written at its name relative to the extraction root, kept as the archive
has it (a leading dot stays: ``.ipynb_checkpoints`` is a hidden folder, as on disk). Backslashes
count as separators (archives made on Windows). A name is *refused* (left out, with a warning
that names it) when it is absolute (``/etc/x``), starts with a drive letter (``C:x``) or is a UNC
path (``//host/x``), or has a ``..`` component. Symbolic links, hard links and device, FIFO or
socket entries are never written (left out with a warning). Characters no common file system
takes (control characters, ``:*?"<>|``) become ``_`` (``colabmodels.cachestore.sanitize_name``).
``__MACOSX/`` (macOS resource forks) is left out without a warning.

**Expansion (bombs).** The rule, checked on the declared sizes before anything is written:

- an archive may expand to ``FREE_EXPANSION`` (256 MiB) at any ratio;
- past that, the declared total may be at most ``MAX_RATIO`` (100) times the archive's own
  size, and one member past ``FREE_EXPANSION`` at most 100 times its compressed size;
- never more than ``MAX_TOTAL`` (64 GiB) nor ``MAX_MEMBERS`` (1,000,000) members;
- and the declared total must fit on the cache's disk.

Writes stop at each member's declared size (a member whose data expands further is an error),
so the declared sizes bound what can reach the disk. This is stricter than
``colabmodels.formats.safety.check_zip`` (1000:1 past 64 MiB per member), which lets a
157:1 archive expanding to 640 MiB through; this rule refuses it. Tar streams (no directory to
read first) are held to the same numbers as they arrive.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from ..cachestore import sanitize_name
from ..errors import UnsafeArchiveError
from ..presentation import format_size

__all__ = [
    "FREE_EXPANSION",
    "MACOSX",
    "MAX_MEMBERS",
    "MAX_RATIO",
    "MAX_TOTAL",
    "check_expansion",
    "expansion_budget",
    "member_relpath",
]

logger = logging.getLogger(__name__)

FREE_EXPANSION = 256 * 1024 * 1024
MAX_RATIO = 100
MAX_TOTAL = 64 * 1024 ** 3
MAX_MEMBERS = 1_000_000
MACOSX = "__MACOSX"

_DRIVE = re.compile(r"^[A-Za-z]:")


def member_relpath(name: str) -> tuple[str | None, str | None]:
    """``(relative path, None)`` for a name that may be written, or ``(None, why not)``.

    ``(None, None)`` means "left out quietly" (``__MACOSX/`` and entries with no name).
    """
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        return None, "an absolute path"
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, "a '..' path that would escape the folder"
    if not parts or parts[0] == MACOSX:
        return None, None
    return "/".join(sanitize_name(p) for p in parts), None


def expansion_budget(archive_size: int) -> int:
    """How many bytes an archive of ``archive_size`` bytes may expand to in total."""
    return min(MAX_TOTAL, max(FREE_EXPANSION, MAX_RATIO * archive_size))


def check_member(name: str, size: int, compressed: int, *, where: str) -> None:
    """Refuse one member that claims an absurd expansion.

    Raises:
        UnsafeArchiveError: it declares more than ``FREE_EXPANSION`` at more than
            ``MAX_RATIO``:1.
    """
    if size > FREE_EXPANSION and size > MAX_RATIO * max(compressed, 1):
        raise UnsafeArchiveError(
            f"{where}: member {name!r} declares {format_size(size)} from {format_size(compressed)} "
            f"compressed (more than {MAX_RATIO}:1 past {format_size(FREE_EXPANSION)}); refusing "
            "it as a likely zip bomb")


def check_expansion(members: Iterable[tuple[str, int, int]], archive_size: int, *,
                    where: str) -> int:
    """Apply the expansion rule to ``(name, declared size, compressed size)`` of every member.

    Returns:
        The declared total.

    Raises:
        UnsafeArchiveError: the rule is broken (the message says which part).
    """
    total = 0
    for count, (name, size, compressed) in enumerate(members, 1):
        if count > MAX_MEMBERS:
            raise UnsafeArchiveError(f"{where}: more than {MAX_MEMBERS:,} members; refusing it")
        check_member(name, size, compressed, where=where)
        total += size
    budget = expansion_budget(archive_size)
    if total > budget:
        raise UnsafeArchiveError(
            f"{where}: its members declare {format_size(total)} from a "
            f"{format_size(archive_size)} archive, more than allowed ({format_size(budget)}: "
            f"any ratio up to {format_size(FREE_EXPANSION)}, then at most {MAX_RATIO}:1, never "
            f"past {format_size(MAX_TOTAL)}); refusing it as a likely zip bomb")
    return total


def warn_refused(where: str, name: str, why: str) -> None:
    logger.warning("%s: left out member %r: %s", where, name, why)
