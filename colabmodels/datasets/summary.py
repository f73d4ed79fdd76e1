"""What an image folder holds, from Drive's metadata alone: the dataset panel's one call.

``summarize`` lists the folder the way ``image_dataset_from_drive``
does (the same remembered listing, the same Keras file selection) and returns a
``DatasetSummary``: class names and counts, sizes, Drive's image dimensions, and
``DatasetWarning`` s for what a user should know before training:

- ``hidden_folders``: top-level folders whose names start with ``.`` (Keras skips them);
- ``hidden_inside``: hidden folders or files inside a class (``lily/.ipynb_checkpoints/``):
  Keras includes them, ``include_hidden=False`` leaves them out;
- ``one_class``: no class folders but images right in the folder (a class folder was given
  instead of its parent);
- ``empty_classes``: class folders with no image in them;
- ``broken_images``: files Drive could not read as images (it gave no image metadata, or the
  file is empty), and samples whose thumbnail Drive could not make;
- ``duplicates``: files with the same content (equal md5 checksums);
- ``imbalance``: the largest class has many times the images of the smallest;
- ``aspect_ratios``: images of different shapes (they are stretched to ``image_size`` unless
  ``crop_to_aspect_ratio`` or ``pad_to_aspect_ratio`` is passed);
- ``not_images``, ``google_docs``, ``unreadable``: files left out, and why.

Nothing is downloaded: the listing reads metadata and ``fetch_thumbnail`` reads Drive's
thumbnails (small images Drive makes itself), never a file's content (no ``alt=media``).
"""

from __future__ import annotations

import difflib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..drive.thumbnails import fetch_thumbnail as drive_thumbnail
from ..errors import NotFoundError
from ..storage.drive import DriveBackend
from .listing import ALLOWLIST_FORMATS, DatasetFile, IndexStats, as_ref, resolve_folder

if TYPE_CHECKING:
    from ..drive.session import DriveSession
    from ..refs import Ref
    from ..storage.base import RemoteStat, StorageBackend
    from ..tree import Tree

__all__ = ["COMMON_SQUARE_SIZES", "IMBALANCE_RATIO", "DatasetSummary", "DatasetWarning",
           "MissingFolderError", "Thumbnail", "add_thumbnail_problems", "class_rows", "describe",
           "fetch_thumbnail", "fetch_thumbnails", "hidden_parts", "is_hidden_inside",
           "suggest_image_size", "summarize", "top_level_images"]

logger = logging.getLogger(__name__)

IMBALANCE_RATIO = 4.0
"""A dataset is called very unbalanced when its largest class has this many times the images
of its smallest non-empty class."""
THUMBNAIL_WORKERS = 8
"""Thumbnails requested at the same time."""
COMMON_SQUARE_SIZES = (32, 64, 96, 128, 160, 192, 224, 256, 320, 384, 512)
"""The square ``image_size`` values people pick (and pretrained models expect)."""
_ASPECT_SPREAD = 1.15
"""Images whose width/height ratios differ by more than this factor count as mixed shapes."""


@dataclass(frozen=True)
class DatasetWarning:
    """One thing worth knowing before training.

    Attributes:
        kind: ``hidden_folders``, ``empty_classes``, ``broken_images``, ``duplicates``,
            ``imbalance``, ``not_images``, ``google_docs`` or ``unreadable``.
        message: one line that says what was found and what follows from it.
        paths: the Drive paths concerned (for duplicates: the groups, joined by `` = ``).
    """

    kind: str
    message: str
    paths: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.message


class MissingFolderError(NotFoundError):
    """The dataset folder does not exist (the message names the nearest existing names)."""


@dataclass
class Thumbnail:
    """A sample's preview: the image bytes (None when Drive made none) and their format."""

    file: DatasetFile
    data: bytes | None
    format: str = "png"
    problem: str | None = None


@dataclass
class DatasetSummary:
    """An image folder as the panel shows it (see the module docstring).

    Attributes:
        ref: the folder as the user gave it (pass it to ``image_dataset_from_drive``).
        path: the folder's Drive path (or name).
        class_names: the classes, in label order; counts: images per class.
        files: every selected file (Keras' order: class by class, path order within).
        complete: False while the listing runs: first the class names alone, then rough
            counts as pages arrive (each class folder's own images so far).
        warnings: what to know before training.
        image_sizes: ``(width, height) -> number of files`` from Drive's image metadata.
        stats: the listing's own findings (hidden folders, non-images, requests made).
    """

    ref: str
    path: str
    class_names: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    files: list[DatasetFile] = field(default_factory=list)
    complete: bool = False
    warnings: list[DatasetWarning] = field(default_factory=list)
    image_sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    stats: IndexStats | None = None
    broken: list[str] = field(default_factory=list)
    loose_images: int = 0
    hidden_inside: list[str] = field(default_factory=list)
    backend: StorageBackend | None = field(default=None, repr=False, compare=False)

    @property
    def total(self) -> int:
        """Images selected."""
        return sum(self.counts.values())

    @property
    def total_bytes(self) -> int:
        return sum(f.stat.size or 0 for f in self.files)

    def files_of(self, class_name: str) -> list[DatasetFile]:
        """The files of one class (in Keras' order)."""
        if class_name not in self.class_names:
            raise KeyError(f"no class {class_name!r}; the classes are {self.class_names}")
        label = self.class_names.index(class_name)
        return [f for f in self.files if f.label == label]

    def samples(self, per_class: int = 6) -> dict[str, list[DatasetFile]]:
        """The first ``per_class`` files of each class (those with a thumbnail link first)."""
        out: dict[str, list[DatasetFile]] = {}
        for name in self.class_names:
            files = self.files_of(name)
            files = sorted(files, key=lambda f: f.thumbnail_link is None)  # stable: order kept
            out[name] = files[:per_class]
        return out

    @property
    def common_image_size(self) -> tuple[int, int] | None:
        """The most frequent ``(height, width)`` (Keras' ``image_size`` order), if Drive says."""
        if not self.image_sizes:
            return None
        (w, h), _ = self.image_sizes.most_common(1)[0]
        return h, w

    @property
    def suggested_image_size(self) -> tuple[int, int] | None:
        """The ``image_size`` to suggest (see ``suggest_image_size``), if Drive gave sizes."""
        return suggest_image_size(self.image_sizes)

    @property
    def mixed_aspect_ratios(self) -> bool:
        """Whether the images have noticeably different shapes (width/height ratios)."""
        ratios = [w / h for (w, h) in self.image_sizes if w > 0 and h > 0]
        return bool(ratios) and max(ratios) / min(ratios) > _ASPECT_SPREAD

    def size_text(self) -> str:
        """``"64x64 px (all 60)"`` or ``"from 32x40 to 512x384 px"`` ("" when Drive gave none)."""
        if not self.image_sizes:
            return ""
        if len(self.image_sizes) == 1:
            (w, h), n = next(iter(self.image_sizes.items()))
            return f"{w}x{h} px (all {n})"
        sizes = sorted(self.image_sizes, key=lambda s: s[0] * s[1])
        (w0, h0), (w1, h1) = sizes[0], sizes[-1]
        return f"from {w0}x{h0} to {w1}x{h1} px ({len(sizes)} sizes)"

    @property
    def session(self) -> DriveSession | None:
        """The Drive session that listed the folder (None for other sources)."""
        return self.backend.session if isinstance(self.backend, DriveBackend) else None

    def warning(self, kind: str) -> DatasetWarning | None:
        """The warning of this kind, if any."""
        return next((w for w in self.warnings if w.kind == kind), None)


def suggest_image_size(sizes: Counter[tuple[int, int]]) -> tuple[int, int] | None:
    """The ``(height, width)`` to suggest for ``image_size`` from ``(width, height) -> count``.

    When one size covers nine files in ten, that size. Otherwise the common square size
    (``COMMON_SQUARE_SIZES``) nearest to the median image (the square root of width x
    height, weighted by count): what a user would pick, not the most frequent of many sizes.
    """
    import math

    total = sum(sizes.values())
    if not total:
        return None
    (w, h), n = sizes.most_common(1)[0]
    if n >= 0.9 * total:
        return h, w
    sides = sorted((math.sqrt(w * h), c) for (w, h), c in sizes.items() if w > 0 and h > 0)
    seen, median = 0, sides[-1][0]
    for side, c in sides:
        seen += c
        if seen * 2 >= total:
            median = side
            break
    best = min(COMMON_SQUARE_SIZES, key=lambda s: abs(math.log(s / max(median, 1.0))))
    return best, best


def is_hidden_inside(rel: str, *, below_class: bool = True) -> bool:
    """Whether a file lies in a hidden folder, or is a hidden file, inside its class folder
    (``lily/.ipynb_checkpoints/old/a.jpg``, ``lily/._a.jpg``). ``below_class=False``: any
    hidden part of ``rel`` counts (no class folder at the front)."""
    parts = rel.split("/")
    return any(p.startswith(".") for p in (parts[1:] if below_class else parts))


def hidden_parts(rel: str) -> str:
    """The part of a class file's ``rel`` up to its first hidden name (``lily/.ipynb_checkpoints``)."""
    parts = rel.split("/")
    for i, p in enumerate(parts[1:], start=1):
        if p.startswith("."):
            return "/".join(parts[: i + 1])
    return rel


def top_level_images(tree: Tree, formats: tuple[str, ...] = ALLOWLIST_FORMATS) -> int:
    """Image files directly in the listed folder (not in a class folder)."""
    lowered = tuple(f.lower() for f in formats)
    return sum(1 for c in tree.root.children or ()
               if not c.is_dir and c.name.lower().endswith(lowered))


def _parent_ref(ref: Ref, path: str) -> Ref:
    from dataclasses import replace

    return replace(ref, path=path, id=None, raw=path, folder=True, version=None)


def missing_folder(ref: Ref, backend: StorageBackend) -> MissingFolderError | None:
    """For a path that names nothing: the error that says so, with the nearest existing names
    (``flowers`` for ``flowerz``) in its deepest existing folder; None when ``ref`` is not a
    path or the path exists after all."""
    if ref.path is None or ref.id is not None or ref.source == "http":
        return None
    path = ref.path.rstrip("/")
    parts = path.split("/")
    for cut in range(len(parts) - 1, 0, -1):
        parent = "/".join(parts[:cut])
        try:
            stat = backend.stat(_parent_ref(ref, parent))
        except NotFoundError:
            continue
        except Exception as e:  # the hint is optional: the plain error still says enough
            logger.info("looking for the nearest names of %s: %s", path, e)
            return None
        if not stat.is_dir:
            return None
        wanted = parts[cut]
        try:
            from itertools import islice

            names = [c.name for c in islice(backend.list(stat.ref), 5000)]
        except Exception as e:
            logger.info("listing %s for the nearest names: %s", parent, e)
            names = []
        near = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
        if not near:
            lowered = {n.lower(): n for n in names}
            near = [lowered[n] for n in difflib.get_close_matches(wanted.lower(), list(lowered),
                                                                  n=3, cutoff=0.5)]
        shown = (ref.raw or path).rstrip("/")
        hint = (f" Nearest names in {parent}: " + ", ".join(near) + "." if near else
                f" {parent} holds: " + ", ".join(sorted(names)[:8])
                + (" …" if len(names) > 8 else "") + "." if names else f" {parent} is empty.")
        return MissingFolderError(f"{shown} does not exist: there is no {wanted!r} in {parent}."
                                  + hint)
    return None


# -- summarising ---------------------------------------------------------------------------------

def summarize(ref: str | os.PathLike[str] | Ref, *, class_names: list[str] | None = None,
              follow_links: bool = False, refresh: bool = False,
              formats: tuple[str, ...] = ALLOWLIST_FORMATS,
              imbalance_ratio: float = IMBALANCE_RATIO,
              on_update: Callable[[DatasetSummary], None] | None = None) -> DatasetSummary:
    """Class counts, sizes and warnings of an image folder, from metadata only.

    Args:
        ref: the dataset folder (Drive path, folder link or id; also gs://, s3://, local).
        class_names: only these classes, in this order (as for ``image_dataset_from_drive``).
        follow_links: descend into folders reached through Drive shortcuts.
        refresh: list again instead of checking the remembered listing.
        formats: the image extensions that count.
        imbalance_ratio: largest/smallest class size from which ``imbalance`` is reported.
        on_update: called with a first, partial summary (the class names after one request
            for the top level, ``complete=False``), then with the finished one.

    Returns:
        the ``DatasetSummary`` (``complete=True``).

    Raises:
        NotFoundError, AuthError: the folder cannot be read (or is a file).
        ValueError: ``class_names`` names a folder that is not there.
        UnknownFormatError: a Google Docs file carries an image extension.
    """
    from ..tree import walk_tree

    parsed = as_ref(ref)
    try:
        backend, root = resolve_folder(parsed)
    except NotFoundError as e:
        if isinstance(e, MissingFolderError) or "is a file, not a folder" in str(e):
            raise
        from ..storage import backend_for

        better = missing_folder(parsed, backend_for(parsed))
        if better is None:
            raise
        raise better from e
    shown = (root.ref.path or root.name).rstrip("/")
    summary = DatasetSummary(ref=parsed.raw or shown, path=shown, backend=backend)
    pages = None
    if on_update is not None:
        first, ids = _top_level(backend, root, class_names)
        summary.class_names = first
        on_update(summary)
        pages = _CountsAsPagesArrive(summary, ids, formats, on_update)
    tree = walk_tree(backend, root, follow_links=follow_links, refresh=refresh, on_page=pages)
    if pages is not None:
        pages.finished = True
    stats, files, names = _select(parsed, backend, root, tree, class_names, follow_links,
                                  formats)
    done = DatasetSummary(ref=summary.ref, path=shown, class_names=names,
                          counts={n: stats.class_counts.get(n, 0) for n in names}, files=files,
                          complete=True, stats=stats, backend=backend,
                          loose_images=top_level_images(tree, formats))
    for f in files:
        size = f.image_size
        if size is not None:
            done.image_sizes[size] += 1
    done.warnings = _warnings(done, stats, imbalance_ratio)
    if on_update is not None:
        on_update(done)
    return done


def _top_level(backend: StorageBackend, root: RemoteStat,
               class_names: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """The class folder names after one listing request (names only, for a first look: a
    flat folder of many files is not paged through here), and ``{folder id: class name}``."""
    from itertools import islice

    first_page = [c for c in islice(backend.list(root.ref, page_size=1000), 1000)
                  if c.is_dir and not c.name.startswith(".")]
    names = sorted({c.name for c in first_page})
    if class_names is not None:
        names = [n for n in class_names if n in names]
    ids = {c.ref.id: c.name for c in first_page if c.ref.id and c.name in names}
    return names, ids


class _CountsAsPagesArrive:
    """Rough class counts while the walk runs: the images (by extension) in each page of a
    class folder's own listing, sent as partial summaries (``complete=False``) at most every
    ``EVERY_S`` seconds. Files in subfolders of a class count once the walk is done (the
    complete summary, with Keras' exact selection, replaces these)."""

    EVERY_S = 0.25

    def __init__(self, summary: DatasetSummary, ids: dict[str, str], formats: tuple[str, ...],
                 on_update: Callable[[DatasetSummary], None]) -> None:
        import threading
        import time

        self.summary, self.ids, self.formats, self.on_update = summary, ids, formats, on_update
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.clock = time.monotonic
        self.last = 0.0
        self.finished = False

    def __call__(self, folder_id: str, items: list[dict[str, Any]]) -> None:
        name = self.ids.get(folder_id)
        if name is None:
            return
        n = sum(1 for item in items
                if item.get("mimeType") != "application/vnd.google-apps.folder"
                and not str(item.get("title", "")).startswith(".")
                and os.path.splitext(str(item.get("title", "")))[1].lower() in self.formats)
        with self.lock:
            self.counts[name] += n
            now = self.clock()
            if self.finished or now - self.last < self.EVERY_S:
                return
            self.last = now
            partial = DatasetSummary(ref=self.summary.ref, path=self.summary.path,
                                     class_names=list(self.summary.class_names),
                                     counts={c: self.counts.get(c, 0)
                                             for c in self.summary.class_names},
                                     backend=self.summary.backend)
        self.on_update(partial)


def _select(ref: Ref, backend: StorageBackend, root: RemoteStat, tree: Tree,
            class_names: list[str] | None, follow_links: bool,
            formats: tuple[str, ...]) -> tuple[IndexStats, list[DatasetFile], list[str]]:
    """Keras' selection (``index_drive_folder``) on an already made listing."""
    try:
        import numpy  # noqa: F401  (index_drive_folder builds its labels with numpy)
    except ImportError:
        return _select_without_numpy(tree, root, class_names, formats)
    from .listing import index_drive_folder

    index = index_drive_folder(ref, "inferred", formats=formats, class_names=class_names,
                               follow_links=follow_links, folder=(backend, root), tree=tree)
    return index.stats, index.stats.files, list(index.class_names or [])


def _select_without_numpy(tree: Tree, root: RemoteStat, class_names: list[str] | None,
                          formats: tuple[str, ...]) -> tuple[IndexStats, list[DatasetFile], list[str]]:
    """The same selection where numpy is missing (a bare environment): the labels are plain
    ints. The previews need no arrays; making the dataset needs the frameworks anyway."""
    from .listing import _join, _valid_files

    stats = IndexStats(listing=tree.stats, root=root)
    base = (root.ref.path or root.name).rstrip("/")
    top = tree.root.children or []
    found: list[str] = []
    for child in top:
        if child.is_dir and child.problem is None:
            if child.name.startswith("."):
                stats.hidden_folders.append(_join(base, child.name))
            elif child.name not in found:
                found.append(child.name)
    names = sorted(found)
    if class_names is not None:
        if not set(class_names).issubset(names):
            raise ValueError(
                "The `class_names` passed did not match the names of the subdirectories of the "
                f"target directory. Expected: {names} (or a subset of it), but received: "
                f"class_names={class_names}")
        names = list(class_names)
    lowered = tuple(f.lower() for f in formats)
    files: list[DatasetFile] = []
    for label, name in enumerate(names):
        count = 0
        for folder in (c for c in top if c.is_dir and c.name == name and c.problem is None):
            for node in _valid_files(folder, name, lowered, stats, base):
                rel = _join(name, *node.parts[len(folder.parts):])
                files.append(DatasetFile(path=_join(base, rel), rel=rel, label=label,
                                         stat=node.stat, info=node.info, node=node))
                count += 1
        stats.class_counts[name] = count
    stats.files = files
    return stats, files, names


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def _warnings(summary: DatasetSummary, stats: IndexStats, ratio: float) -> list[DatasetWarning]:
    out: list[DatasetWarning] = []
    if stats.hidden_folders:
        names = ", ".join(p.rsplit("/", 1)[-1] for p in stats.hidden_folders)
        out.append(DatasetWarning(
            "hidden_folders", f"{_plural(len(stats.hidden_folders), 'hidden folder')} skipped "
            f"({names}): names starting with '.' are not classes, as in Keras.",
            tuple(stats.hidden_folders)))
    empty = [n for n in summary.class_names if summary.counts.get(n, 0) == 0]
    if empty:
        out.append(DatasetWarning(
            "empty_classes", f"{_plural(len(empty), 'empty class')}: {', '.join(empty)} "
            "(no images; the class still gets a label). Add images or remove the folder.",
            tuple(f"{summary.path}/{n}" for n in empty)))
    hidden = [f for f in summary.files if is_hidden_inside(f.rel)]
    summary.hidden_inside = sorted({hidden_parts(f.rel) for f in hidden})
    if hidden:
        shown = ", ".join(summary.hidden_inside[:3]) + (" …" if len(summary.hidden_inside) > 3
                                                         else "")
        out.append(DatasetWarning(
            "hidden_inside", f"{_plural(len(hidden), 'image')} in hidden folders or files inside "
            f"classes ({shown}): Keras includes them, so they are counted and trained on. Leave "
            "them out with include_hidden=False (the panel's “leave out hidden” box).",
            tuple(f"{summary.path}/{p}" for p in summary.hidden_inside)))
    if not summary.class_names and summary.loose_images:
        parent = summary.path.rsplit("/", 1)[0] if "/" in summary.path else ""
        did_you = f"; did you mean the parent folder {parent}?" if parent else ""
        out.append(DatasetWarning(
            "one_class", f"This looks like one class: {_plural(summary.loose_images, 'image')} "
            f"lie directly in {summary.path}, with no class folders{did_you} (An image dataset "
            "is a folder with one subfolder per class; labels=None reads unlabeled images.)",
            (summary.path,)))
    elif summary.loose_images:
        out.append(DatasetWarning(
            "loose_images", f"{_plural(summary.loose_images, 'image')} directly in "
            f"{summary.path}, outside the class folders, are left out (as in Keras).",
            (summary.path,)))
    broken = _broken_by_metadata(summary.files)
    summary.broken = [path for path, _ in broken]
    if broken:
        shown = ", ".join(p.rsplit("/", 1)[-1] + f" ({why})" for p, why in broken[:5])
        more = f" and {len(broken) - 5} more" if len(broken) > 5 else ""
        out.append(DatasetWarning(
            "broken_images", f"{_plural(len(broken), 'file')} Drive could not read as an image: "
            f"{shown}{more}. Replace or remove them, or pass on_error=\"skip\".",
            tuple(summary.broken)))
    groups: dict[str, list[DatasetFile]] = {}
    for f in summary.files:
        if f.md5:
            groups.setdefault(f.md5, []).append(f)
    dupes = [group for group in groups.values() if len(group) > 1]
    if dupes:
        extra = sum(len(g) - 1 for g in dupes)
        crossing = [g for g in dupes if len({f.label for f in g}) > 1]
        within = [g for g in dupes if len({f.label for f in g}) == 1]
        parts = []
        if crossing:
            pair = " = ".join(f.rel for f in crossing[0][:3])
            parts.append(f"{_plural(len(crossing), 'group')} across classes (one image, two "
                         f"labels), e.g. {pair}")
        if within:
            pair = " = ".join(f.rel for f in within[0][:3])
            parts.append(f"{_plural(len(within), 'group')} within a class, e.g. {pair}")
        out.append(DatasetWarning(
            "duplicates", f"{_plural(extra, 'exact duplicate')} by md5: " + "; ".join(parts)
            + ".", tuple(" = ".join(f.path for f in g) for g in crossing + within)))
    sizes = {n: c for n, c in summary.counts.items() if c > 0}
    if len(sizes) >= 2:
        big = max(sizes, key=lambda n: sizes[n])
        small = min(sizes, key=lambda n: sizes[n])
        if sizes[big] >= ratio * sizes[small]:
            out.append(DatasetWarning(
                "imbalance", f"very unbalanced classes: {big} has {sizes[big]} images, {small} "
                f"{sizes[small]} ({sizes[big] / sizes[small]:.1f}x). Consider class weights "
                "(model.fit(class_weight=...)) or more images of the small classes.",
                (f"{summary.path}/{big}", f"{summary.path}/{small}")))
    if summary.mixed_aspect_ratios:
        ratios = [w / h for (w, h) in summary.image_sizes if w > 0 and h > 0]
        suggested = summary.suggested_image_size
        size = f"{suggested[0]}x{suggested[1]}" if suggested else "image_size"
        out.append(DatasetWarning(
            "aspect_ratios", f"mixed aspect ratios (width/height from {min(ratios):.2f} to "
            f"{max(ratios):.2f}, {len(summary.image_sizes)} sizes): resizing to {size} stretches "
            "them; pass crop_to_aspect_ratio=True (crop the middle) or pad_to_aspect_ratio=True "
            "(pad the sides) to keep their shape.", ()))
    if stats.not_images:
        out.append(DatasetWarning(
            "not_images", f"{_plural(len(stats.not_images), 'file')} left out (not "
            f"{'/'.join(e.lstrip('.') for e in ALLOWLIST_FORMATS)}): "
            + ", ".join(p.rsplit("/", 1)[-1] for p in stats.not_images[:5])
            + (" …" if len(stats.not_images) > 5 else ""), tuple(stats.not_images)))
    if stats.google_docs:
        out.append(DatasetWarning(
            "google_docs", f"{_plural(len(stats.google_docs), 'Google Docs file')} left out "
            "(Docs, Sheets... have no image bytes).", tuple(stats.google_docs)))
    if stats.unreadable:
        out.append(DatasetWarning(
            "unreadable", f"{_plural(len(stats.unreadable), 'shortcut')} cannot be read: "
            + "; ".join(f"{p.rsplit('/', 1)[-1]}: {why}" for p, why in stats.unreadable[:3]),
            tuple(p for p, _ in stats.unreadable)))
    return out


def _broken_by_metadata(files: list[DatasetFile]) -> list[tuple[str, str]]:
    """Files that cannot be images by what the listing says: empty ones, and, where the source
    gives image metadata at all (Drive), image files without it (Drive could not parse them)."""
    with_meta = any("imageMediaMetadata" in f.info for f in files)
    out = []
    for f in files:
        if f.stat.size == 0:
            out.append((f.path, "empty file"))
        elif with_meta and "imageMediaMetadata" not in f.info:
            out.append((f.path, "no image data"))
    return out


# -- thumbnails ----------------------------------------------------------------------------------

def fetch_thumbnail(file: DatasetFile, *, size: int | None = 128,
                    session: DriveSession | None = None) -> Thumbnail:
    """Drive's thumbnail of ``file`` (one small request; never the file's content).

    Args:
        file: a file of a ``DatasetSummary``.
        size: the box in pixels Drive scales the thumbnail into (None: Drive's default, 220).
        session: the Drive session that listed it (``DatasetSummary.session``; default:
            the current one).

    Returns:
        a ``Thumbnail``; ``data`` is None (and ``problem`` says why) when Drive has no
        thumbnail for it or could not make one. Errors are reported, not raised: a preview
        is optional.
    """
    link = file.thumbnail_link
    if not link:
        return Thumbnail(file, None, problem="no thumbnail")
    try:
        if session is None:
            from ..drive.session import implicit_session

            session = implicit_session()
    except Exception as e:  # a preview is optional; the panel shows the rest
        logger.info("thumbnail of %s: %s", file.path, e)
        return Thumbnail(file, None, problem=f"{type(e).__name__}: {e}")
    got = drive_thumbnail(session, link, size=size)  # the one thumbnail fetch, with its host rule
    if got.data is None:
        logger.info("thumbnail of %s: %s", file.path, got.problem)
    return Thumbnail(file, got.data, got.format, problem=got.problem)


def fetch_thumbnails(files: Iterable[DatasetFile], *, size: int | None = 128,
                     session: DriveSession | None = None,
                     workers: int = THUMBNAIL_WORKERS) -> Iterator[Thumbnail]:
    """Thumbnails of many files, ``workers`` requests at a time, yielded as they arrive."""
    from concurrent.futures import as_completed

    items = list(files)
    if not items:
        return
    if session is None:
        from ..drive.session import implicit_session

        session = implicit_session()  # sign in once, not in every thread
    with ThreadPoolExecutor(max_workers=max(1, workers),
                            thread_name_prefix="colabmodels-thumbs") as pool:
        futures = [pool.submit(fetch_thumbnail, f, size=size, session=session) for f in items]
        for fut in as_completed(futures):
            yield fut.result()


def add_thumbnail_problems(summary: DatasetSummary, thumbs: Iterable[Thumbnail]) -> bool:
    """Count samples whose thumbnail Drive could not make (while it made others) as broken.

    Returns True when the warnings changed.
    """
    thumbs = list(thumbs)
    if not any(t.data for t in thumbs):
        return False  # no thumbnails at all: the source has none, nothing to conclude
    bad = [t.file.path for t in thumbs
           if t.data is None and t.file.thumbnail_link and t.file.path not in summary.broken]
    if not bad:
        return False
    summary.broken.extend(bad)
    old = summary.warning("broken_images")
    names = ", ".join(p.rsplit("/", 1)[-1] for p in summary.broken[:5])
    more = f" and {len(summary.broken) - 5} more" if len(summary.broken) > 5 else ""
    new = DatasetWarning(
        "broken_images", f"{_plural(len(summary.broken), 'file')} Drive could not read as an "
        f"image: {names}{more} (found from metadata and thumbnails; only shown samples have "
        "thumbnails). Replace or remove them, or pass on_error=\"skip\".", tuple(summary.broken))
    if old is None:
        later = ("duplicates", "imbalance", "aspect_ratios", "not_images", "google_docs",
                 "unreadable")
        at = next((i for i, w in enumerate(summary.warnings) if w.kind in later),
                  len(summary.warnings))
        summary.warnings.insert(at, new)
    else:
        summary.warnings[summary.warnings.index(old)] = new
    return True


def describe(summary: DatasetSummary) -> str:
    """One line: ``"MyDrive/datasets/shapes: 60 images in 3 classes, 64x64 px (all 60), 41 KiB"``."""
    from ..presentation import format_size

    if not summary.complete:
        return f"{summary.path}: listing … ({_plural(len(summary.class_names), 'class')} so far)"
    size = summary.size_text()
    return (f"{summary.path}: {_plural(summary.total, 'image')} in "
            f"{_plural(len(summary.class_names), 'class')}" + (f", {size}" if size else "")
            + f", {format_size(summary.total_bytes)}")


def class_rows(summary: DatasetSummary) -> list[tuple[str, int, float]]:
    """``(class, count, fraction of the largest)`` for a bar chart."""
    largest = max(summary.counts.values(), default=0) or 1
    return [(n, summary.counts.get(n, 0), summary.counts.get(n, 0) / largest)
            for n in summary.class_names]

