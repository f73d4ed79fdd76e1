"""Which files of a Drive folder make an image dataset, and their labels: Keras' rules on Drive.

``index_drive_folder`` lists the folder once (in parallel, remembered; see
``colabmodels.tree.walk_tree``) and applies exactly the selection that
``keras.utils.image_dataset_from_directory`` applies to a local folder:

- ``labels="inferred"``: the classes are the folder's direct subfolders whose names do not
  start with ``.``, sorted by name (or ``class_names``, in the order given, which must be a
  subset); every class folder is walked recursively (hidden subfolders *inside* a class are
  walked, as Keras does);
- ``labels=None`` or a list: the whole tree is walked from the top (hidden folders included,
  as Keras does);
- a file is kept when its name ends with an allowed extension, compared case-insensitively;
- folders are visited in the order of their path strings and files in name order within each;
- ``shuffle=True`` shuffles once with ``numpy.random.RandomState(seed)``.

Drive shortcuts play the part of symbolic links: a shortcut to a folder at the top counts as a
class folder; below that, shortcuts to folders are followed only with ``follow_links=True``;
shortcuts to files are always included under the shortcut's own name (``os.walk`` lists
symlinked files either way).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import NotFoundError, UnknownFormatError

if TYPE_CHECKING:
    from ..refs import Ref
    from ..storage.base import RemoteStat, StorageBackend
    from ..tree import ListingStats, Tree, TreeNode

logger = logging.getLogger(__name__)

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
"""The image extensions Keras' ``image_dataset_from_directory`` reads (its own list)."""


@dataclass
class DatasetFile:
    """One selected file.

    Attributes:
        path: its Drive path (``MyDrive/flowers/roses/a.jpg``), as shown in ``file_paths``.
        rel: its path relative to the dataset folder (remote names).
        label: its integer label (None without labels).
        stat: Drive's metadata (id, md5, size, mime...).
        info: extra Drive fields: ``thumbnailLink``, ``imageMediaMetadata`` (width, height).
            Drive's thumbnail links expire after some hours; list again for fresh ones.
        node: the listing node (local name, shortcut, ...).
    """

    path: str
    rel: str
    label: int | None
    stat: RemoteStat
    info: dict[str, Any]
    node: TreeNode

    @property
    def md5(self) -> str | None:
        c = self.stat.checksum
        return c[4:] if c and c.startswith("md5:") else None

    @property
    def thumbnail_link(self) -> str | None:
        return self.info.get("thumbnailLink")

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(width, height)`` from Drive's ``imageMediaMetadata``, when Drive has it."""
        meta = self.info.get("imageMediaMetadata") or {}
        if "width" in meta and "height" in meta:
            return int(meta["width"]), int(meta["height"])
        return None


@dataclass
class IndexStats:
    """What the listing found beside the selected files.

    Attributes:
        files: the selected files, aligned with ``paths`` (same order).
        class_counts: files per class name (with inferred labels).
        hidden_folders: top-level folders skipped because their names start with ``.``.
        not_images: files left out because of their extension (Drive paths).
        google_docs: Google Docs/Sheets... files met in the tree (never images).
        unreadable: ``(Drive path, reason)`` of shortcuts whose targets cannot be read.
        listing: requests made and whether the listing was remembered.
        root: the dataset folder's stat.
    """

    files: list[DatasetFile] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)
    hidden_folders: list[str] = field(default_factory=list)
    not_images: list[str] = field(default_factory=list)
    google_docs: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    listing: ListingStats | None = None
    root: RemoteStat | None = None


class DriveIndex(NamedTuple):
    """``(paths, labels, class_names, stats)``: what Keras' ``index_directory`` returns, plus stats."""

    paths: list[str]
    labels: Any  # numpy int32 array, the caller's list, or None
    class_names: list[str] | None
    stats: IndexStats


def take(files: list[DatasetFile], labels: Any, keep: list[int]) -> tuple[list[DatasetFile], Any]:
    """The files at the indices ``keep``, with their labels (a numpy array, a list or None)."""
    if len(keep) == len(files):
        return files, labels
    out = [files[i] for i in keep]
    if labels is None:
        return out, None
    if isinstance(labels, list):
        return out, [labels[i] for i in keep]
    return out, labels[keep]


def as_ref(ref: str | os.PathLike[str] | Ref) -> Ref:
    """``ref`` parsed (a ``Ref`` is returned as it is)."""
    from ..refs import Ref, parse_ref

    return ref if isinstance(ref, Ref) else parse_ref(os.fspath(ref))


def resolve_folder(ref: str | os.PathLike[str] | Ref, *,
                   archives: bool = False) -> tuple[StorageBackend, RemoteStat]:
    """The backend and the stat of a dataset folder.

    Args:
        archives: also accept a ``.zip`` file (the caller reads it as a folder; see
            ``colabmodels.datasets.zipped``).

    Raises:
        NotFoundError: it does not exist, cannot be seen, or is a file, not a folder.
    """
    from dataclasses import replace

    from ..cachestore import cache
    from ..storage import backend_for
    from ..tree import prepare_walk

    parsed = as_ref(ref)
    backend = backend_for(parsed)
    alias = f"dataset-folder:{parsed.source}:{parsed.path}" if parsed.path and not parsed.id else None
    if parsed.source == "drive" and parsed.id and not parsed.path:
        alias = f"dataset-folder:drive:id:{parsed.id}"
    known = cache.recall(alias) if alias else None
    if known and known.get("id"):  # one metadata request instead of a path walk
        parsed = replace(parsed, id=known["id"])
    remembered = _remembered_folder(parsed, known)
    if remembered is not None:  # the walk's change feed vouches for it (no request here)
        return backend, remembered
    if known is None:  # never resolved here, so never walked: the walk's first request now
        prepare_walk(backend)
    stat = backend.stat(parsed)
    seen = _folder_facts(stat)
    if alias and stat.ref.id and (not known or known.get("id") != stat.ref.id
                                  or known.get("folder") != seen):
        cache.remember_info(alias, {"id": stat.ref.id, "folder": seen})
    if not stat.is_dir and archives and stat.name.lower().endswith(".zip"):
        return backend, stat
    if not stat.is_dir:
        raise NotFoundError(f"{parsed.raw or parsed.path or parsed.id} is a file, not a folder of "
                            "images. Pass the folder that holds one subfolder per class.")
    return backend, stat


_FOLDER_FACTS = ("name", "mime", "modified", "created", "description", "version")


def _folder_facts(stat: RemoteStat) -> dict[str, Any] | None:
    """What to remember of a Drive folder's stat for the next process (None for others)."""
    if stat.ref.source != "drive" or not stat.is_dir or not stat.ref.id:
        return None
    return {**{k: getattr(stat, k) for k in _FOLDER_FACTS}, "identity": stat.identity,
            "properties": dict(stat.properties)}


def _remembered_folder(parsed: Ref, known: dict[str, Any] | None) -> RemoteStat | None:
    """The remembered stat of a Drive folder (``RememberedStat``), or
    None when there is none or it does not look right."""
    from dataclasses import replace

    from ..tree import RememberedStat

    facts = known.get("folder") if known else None
    if parsed.source != "drive" or not parsed.id or not isinstance(facts, dict):
        return None
    try:
        values = {k: facts.get(k) for k in _FOLDER_FACTS}
        if not isinstance(values["name"], str) or not all(
                v is None or isinstance(v, str) for v in values.values()):
            return None
        props = facts.get("properties") or {}
        if not isinstance(props, dict):
            return None
        identity = facts.get("identity")
        return RememberedStat(ref=replace(parsed, folder=True), name=str(values["name"]),
                              size=None, is_dir=True, version=values["version"],
                              mime=values["mime"], modified=values["modified"],
                              created=values["created"], description=values["description"],
                              identity=identity if isinstance(identity, str) else None,
                              properties={str(k): str(v) for k, v in props.items()})
    except (TypeError, ValueError):
        return None


def _display_root(root: RemoteStat) -> str:
    return (root.ref.path or root.name).rstrip("/")


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p not in ("", None))


def index_drive_folder(ref: str | os.PathLike[str] | Ref, labels: Any = "inferred", *,
                       formats: tuple[str, ...] = ALLOWLIST_FORMATS,
                       class_names: list[str] | None = None, shuffle: bool = False,
                       seed: int | None = None, follow_links: bool = False,
                       refresh: bool = False,
                       folder: tuple[StorageBackend, RemoteStat] | None = None,
                       tree: Tree | None = None) -> DriveIndex:
    """The files of a Drive image folder and their labels, selected as Keras selects them.

    Args:
        ref: the dataset folder (Drive path, folder link or id; also gs://, s3://, local).
        labels: ``"inferred"`` (from the class subfolders), ``None``, or a list of integer
            labels in the order of the sorted file paths.
        formats: allowed extensions (lowercase, with the dot).
        class_names: the classes to use, in this order (``labels="inferred"`` only).
        shuffle: shuffle once with ``seed`` (as Keras does before splitting).
        seed: the shuffle seed.
        follow_links: descend into folders reached through Drive shortcuts.
        refresh: list everything again instead of checking the remembered listing.
        folder: an already resolved ``(backend, stat)``.
        tree: an already made listing of it (``colabmodels.tree.walk_tree``).

    Returns:
        DriveIndex ``(paths, labels, class_names, stats)``; ``stats.files[i]`` describes
        ``paths[i]`` (Drive stat incl. md5, thumbnailLink, imageMediaMetadata).

    Raises:
        ValueError: bad ``labels``/``class_names`` (Keras' own checks and messages).
        UnknownFormatError: a Google Docs file carries an image extension.
        NotFoundError, AuthError: the folder cannot be read.
    """
    import numpy as np

    from ..tree import walk_tree

    backend, root = folder or resolve_folder(ref)
    if tree is None:
        tree = walk_tree(backend, root, follow_links=follow_links, refresh=refresh)
    stats = IndexStats(listing=tree.stats, root=root)
    top = tree.root.children or []
    base = _display_root(root)

    if labels == "inferred":
        names: list[str] = []
        for child in top:
            if child.is_dir and child.problem is None:
                if child.name.startswith("."):
                    stats.hidden_folders.append(_join(base, child.name))
                elif child.name not in names:
                    names.append(child.name)
        subdirs = sorted(names)
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError(
                    "The `class_names` passed did not match the names of the subdirectories "
                    f"of the target directory. Expected: {subdirs} (or a subset of it), but "
                    f"received: class_names={class_names}")
            subdirs = list(class_names)
        roots = [[c for c in top if c.is_dir and c.name == name and c.problem is None]
                 for name in subdirs]
    else:
        if labels is not None and not isinstance(labels, (list, tuple)):
            raise ValueError(
                "`labels` argument should be a list/tuple of integer labels, of the same size "
                "as the number of image files in the target directory. If you wish to infer "
                'the labels from the subdirectory names in the target directory, pass '
                '`labels="inferred"`. If you wish to get a dataset that only contains images '
                f"(no labels), pass `labels=None`. Received: labels={labels}")
        if class_names is not None:
            if labels is None:
                raise ValueError("When `labels=None` (no labels), argument `class_names` "
                                 "cannot be specified.")
            raise ValueError("When argument `labels` is specified, argument `class_names` "
                             "cannot be specified (the `class_names` will be the sorted list "
                             "of labels).")
        subdirs = [""]
        roots = [[tree.root]]

    formats = tuple(f.lower() for f in formats)
    files: list[DatasetFile] = []
    label_list: list[int] = []
    for index, (name, folders) in enumerate(zip(subdirs, roots, strict=True)):
        count = 0
        for folder_node in folders:
            for node in _valid_files(folder_node, name, formats, stats, base):
                rel = _join(name, *node.parts[len(folder_node.parts):])
                files.append(DatasetFile(path=_join(base, rel), rel=rel, label=index,
                                         stat=node.stat, info=node.info, node=node))
                label_list.append(index)
                count += 1
        if labels == "inferred":
            stats.class_counts[name] = count

    if labels == "inferred":
        label_out: Any = np.array(label_list, dtype="int32")
        out_names: list[str] | None = subdirs
    else:
        label_out, out_names = given_labels(files, labels, base)

    if shuffle:
        files, label_out = shuffled(files, label_out, seed)
    stats.files = files
    return DriveIndex([f.path for f in files], label_out, out_names, stats)


def _valid_files(folder: TreeNode, class_name: str, formats: tuple[str, ...], stats: IndexStats,
                 base: str) -> list[TreeNode]:
    """Keras' ``iter_valid_files``: folders by path string, files by name, allowed extensions."""
    walked: list[tuple[str, TreeNode]] = []

    def collect(node: TreeNode) -> None:
        walked.append(("/".join((class_name, *node.parts[len(folder.parts):])).rstrip("/"), node))
        for child in node.children or ():
            if child.children is not None:
                collect(child)

    collect(folder)
    out: list[TreeNode] = []
    for _, node in sorted(walked, key=lambda item: item[0]):
        files = [c for c in node.children or () if not c.is_dir]
        for child in sorted(files, key=lambda c: c.name):
            doc = child.is_google_doc
            if not doc and child.problem is None and child.name.lower().endswith(formats):
                out.append(child)  # the usual case: no Drive path to spell out
                continue
            where = _join(base, class_name, *child.parts[len(folder.parts):])
            if doc:
                stats.google_docs.append(where)
            if not child.name.lower().endswith(formats):
                stats.not_images.append(where)
                continue
            if child.problem is not None:
                stats.unreadable.append((where, child.problem))
                continue
            if doc:
                raise UnknownFormatError(
                    f"{where} is a Google {_doc_kind(child.stat.mime)} named like an image; Drive "
                    "keeps no image bytes for it. Remove or rename it, or upload the image itself.")
            out.append(child)
    return out


def _doc_kind(mime: str | None) -> str:
    kind = (mime or "").rsplit(".", 1)[-1]
    return {"document": "Doc", "spreadsheet": "Sheet", "presentation": "Slides file",
            "drawing": "Drawing"}.get(kind, f"{kind} file")


def given_labels(files: list[DatasetFile], labels: Any,
                 source: str) -> tuple[list[int] | None, list[str] | None]:
    """Keras' rules for ``labels=None`` or an explicit list (files in path order): the labels
    and the class names they imply; each file's ``label`` is set to match."""
    if labels is None:
        for f in files:
            f.label = None
        return None, None
    if len(labels) != len(files):
        raise ValueError(
            "Expected the lengths of `labels` to match the number of files in the target "
            f"directory. len(labels) is {len(labels)} while we found {len(files)} files in "
            f"directory {source}.")
    out = list(labels)
    for f, lab in zip(files, out, strict=True):
        f.label = int(lab)
    return out, [str(lab) for lab in sorted(set(out))]


def shuffled(files: list[DatasetFile], labels: Any, seed: int | None) -> tuple[list[DatasetFile], Any]:
    """Files (and their labels) in the order Keras shuffles them for ``seed`` (a random seed
    when None, as Keras picks one)."""
    import numpy as np

    if seed is None:
        seed = int(np.random.randint(1_000_000))
    order = list(range(len(files)))
    np.random.RandomState(seed).shuffle(order)
    files = [files[i] for i in order]
    if labels is not None:
        labels = labels[order] if isinstance(labels, np.ndarray) else [labels[i] for i in order]
    return files, labels
