"""Give files the names their loaders insist on, without copying them.

Keras picks its loader from the file name (``.keras``, ``.h5``, ``.weights.h5``), gensim finds
sidecar arrays by the pickle's own name, and TensorFlow finds checkpoint shards by prefix. A
file fetched under another name (a cache blob, ``model.bin``) is exposed under the expected
name through a symlink (or a hard link, or as a last resort a copy) in a private temporary
folder that is removed afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["files_under", "linked_files", "with_suffix"]

logger = logging.getLogger("colabmodels")


def _link(source: Path, target: Path) -> None:
    try:
        os.symlink(source.resolve(), target)
        return
    except OSError:
        pass
    try:
        os.link(source, target)
        return
    except OSError:
        pass
    logger.debug("copying %s to %s (links unavailable)", source, target)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


@contextmanager
def linked_files(names: Mapping[str, Path]) -> Iterator[Path]:
    """A temporary folder where each ``name`` links to its source path.

    Args:
        names: file name (may contain ``/`` for subfolders) -> existing file or folder.

    Yields:
        The temporary folder; it and the links are removed on exit (the sources stay).
    """
    tmp = Path(tempfile.mkdtemp(prefix="colabmodels-"))
    try:
        for name, source in names.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _link(Path(source), target)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def with_suffix(
    path: Path, suffix: str, *, stem: str = "model", avoid: str | None = None
) -> Iterator[Path]:
    """``path`` itself if its name already ends with ``suffix``, else a link that does.

    Args:
        path: an existing file.
        suffix: the ending the loader needs, e.g. ``".keras"`` or ``".weights.h5"``.
        stem: the name part before the suffix for the link.
        avoid: an ending that would mislead the loader even though it ends with ``suffix``
            (``".weights.h5"`` for a legacy ``.h5`` weights file).

    Yields:
        A path ending with ``suffix`` whose content is ``path``'s.
    """
    misleading = avoid is not None and path.name.endswith(avoid)
    if path.name.endswith(suffix) and path.name != suffix and not misleading:
        yield path
        return
    with linked_files({stem + suffix: path}) as tmp:
        yield tmp / (stem + suffix)


def files_under(base: Path, root: Path) -> list[Path]:
    """Every file under ``root`` (or ``root`` itself if it is a file), relative to ``base``,
    sorted."""
    if root.is_file():
        return [root.relative_to(base)]
    return sorted(p.relative_to(base) for p in root.rglob("*") if p.is_file())
