"""The dataset panel's view of a ``.zip``: an adapter beside ``.summary`` for folders.

A zip has no Drive thumbnails and no Drive image metadata, so:

- ``summarize_source`` gives the panel a ``DatasetSummary``
  for a folder (``summarize``, unchanged) or for a zip
  (``summarize_zip``: class names and counts from the central directory, read in at most
  three ranged requests; Keras' selection on the archive as if extracted);
- ``zip_thumbnails`` decodes the few images the panel shows from their members, each read
  with one ranged request (a few KiB per image for photos), never the whole archive;
- the summary's warnings say so, and that ``__MACOSX/`` (macOS resource forks) was left out.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..archives import read_member_bytes
from ..errors import NotFoundError
from .listing import ALLOWLIST_FORMATS, DatasetFile, as_ref, resolve_folder
from .summary import DatasetSummary, DatasetWarning, Thumbnail, summarize
from .zipped import member_of, open_zip_dataset

if TYPE_CHECKING:
    from ..refs import Ref

__all__ = ["is_zip_summary", "summarize_source", "summarize_zip", "zip_thumbnails"]

logger = logging.getLogger(__name__)

PREVIEW_NOTE = ("A zip has no Drive thumbnails: each preview image is read from the archive "
                "by range and decoded here (a few KiB per image shown); nothing else is "
                "downloaded until the dataset is made.")


def summarize_source(ref: str | os.PathLike[str] | Ref, *, class_names: list[str] | None = None,
                     follow_links: bool = False, refresh: bool = False,
                     on_update: Callable[[DatasetSummary], None] | None = None) -> DatasetSummary:
    """``summarize`` for a folder, ``summarize_zip`` for a
    zip (a path ending in ``.zip``, or a link whose file turns out to be one)."""
    parsed = as_ref(ref)
    if not (parsed.path or "").lower().endswith(".zip"):
        try:
            return summarize(parsed, class_names=class_names, follow_links=follow_links,
                             refresh=refresh, on_update=on_update)
        except NotFoundError as e:
            if "is a file, not a folder" not in str(e):
                raise
    return summarize_zip(parsed, class_names=class_names, on_update=on_update)


def summarize_zip(ref: str | os.PathLike[str] | Ref, *, class_names: list[str] | None = None,
                  formats: tuple[str, ...] = ALLOWLIST_FORMATS,
                  on_update: Callable[[DatasetSummary], None] | None = None) -> DatasetSummary:
    """Class names and counts of a zip of images, from its central directory only.

    Raises:
        NotFoundError: it does not exist, or is a file that is not a zip.
        UnknownFormatError, IntegrityError: not a readable zip, or an encrypted member.
        ValueError: ``class_names`` names a folder that is not there.
    """
    parsed = as_ref(ref)
    backend, stat = resolve_folder(parsed, archives=True)
    zipped = open_zip_dataset(backend, stat)
    index = zipped.index("inferred", formats=formats, class_names=class_names)
    names = list(index.class_names or [])
    summary = DatasetSummary(ref=parsed.raw or zipped.base, path=zipped.base, class_names=names,
                             counts={n: index.stats.class_counts.get(n, 0) for n in names},
                             files=index.stats.files, complete=True, stats=index.stats,
                             backend=backend)
    summary.warnings.append(DatasetWarning("zip_preview", PREVIEW_NOTE))
    if zipped.macosx_left_out:
        summary.warnings.append(DatasetWarning(
            "macosx", f"__MACOSX/ ({zipped.macosx_left_out} macOS resource-fork entries) was "
            "left out, as it would be on a Mac."))
    if zipped.left_out:
        shown = ", ".join(repr(n) for n in zipped.left_out[:3])
        more = " …" if len(zipped.left_out) > 3 else ""
        summary.warnings.append(DatasetWarning(
            "unsafe_members", f"{len(zipped.left_out)} members left out because their names "
            f"would escape the folder or they are links or devices: {shown}{more}",
            tuple(zipped.left_out)))
    if index.stats.hidden_folders:
        summary.warnings.append(DatasetWarning(
            "hidden_folders", "hidden folders at the top are not classes (as in Keras): "
            + ", ".join(p.rsplit("/", 1)[-1] for p in index.stats.hidden_folders),
            tuple(index.stats.hidden_folders)))
    if on_update is not None:
        on_update(summary)
    return summary


def is_zip_summary(summary: DatasetSummary) -> bool:
    """Whether the summary's files are members of a zip (previews come from ``zip_thumbnails``)."""
    return any("zip_member" in f.info for f in summary.files[:1])


def _thumbnail(file: DatasetFile, size: int | None) -> Thumbnail:
    try:
        data = read_member_bytes(file.info["zip_archive"], member_of(file))
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((size or 220, size or 220))
            out = io.BytesIO()
            img.convert("RGBA" if img.mode in ("RGBA", "LA", "P") else "RGB").save(out, "PNG")
        return Thumbnail(file, out.getvalue(), "png")
    except Exception as e:  # a preview is optional; the panel shows the rest
        logger.info("preview of %s: %s", file.path, e)
        return Thumbnail(file, None, problem=f"{type(e).__name__}: {e}")


def zip_thumbnails(files: Iterable[DatasetFile], *, size: int | None = 128,
                   workers: int = 8) -> Iterator[Thumbnail]:
    """Previews of zip members, each read with one ranged request and decoded, as they arrive."""
    from concurrent.futures import as_completed

    items = list(files)
    if not items:
        return
    with ThreadPoolExecutor(max_workers=max(1, workers),
                            thread_name_prefix="colabmodels-zip-preview") as pool:
        futures = [pool.submit(_thumbnail, f, size) for f in items]
        for fut in as_completed(futures):
            yield fut.result()
