"""WebDataset shards of an image folder, written back to Drive once and streamed from then on.

:func:`pack` turns a folder of class subfolders into tar shards in the WebDataset layout
(``train-000000.tar``, ``validation-000000.tar``; inside, ``<key>.jpg`` + ``<key>.cls`` per
sample, the class index as text), plus a JSON index (:data:`INDEX_NAME`) with the class names,
counts, the split and every sample's original path, label, shard and byte offset. The shards
are plain POSIX tars that ``webdataset`` and Ray Data's ``read_webdataset`` read unchanged.

:func:`image_dataset_from_drive` on a packed folder reads the shards: each shard is downloaded
with parallel ranged requests (the transfer engine) into the cache and unpacked there once,
and the samples come out in exactly the order, split and labels the original folder would give
for the same arguments (the index keeps Keras' file order).
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import IntegrityError, NotFoundError, RefError
from .feeder import BrokenImageError, check_on_error, image_problem
from .listing import ALLOWLIST_FORMATS, DatasetFile, given_labels, shuffled
from .pixels import bomb_problem

if TYPE_CHECKING:
    from ..cachestore import CacheEntry
    from ..refs import Ref
    from ..storage.base import RemoteStat, StorageBackend
    from ..tree import Tree

logger = logging.getLogger(__name__)

INDEX_NAME = "colabmodels-dataset.json"
FORMAT = "colabmodels.webdataset/1"
SHARD_BYTES = 128 * 1024 * 1024
"""Default shard size: big enough that a cold read is a few large downloads."""
SHARD_WORKERS = 4
"""Shards downloaded at the same time (each with several ranged connections)."""


def _subset_prefix(subset: str) -> str:
    return {"training": "train", "validation": "validation", "all": "data"}[subset]


def pack(src: str | os.PathLike[str] | Ref, dest: str | os.PathLike[str] | Ref | None = None, *,
         validation_split: float | None = None, seed: int | None = None,
         class_names: list[str] | None = None, formats: tuple[str, ...] = ALLOWLIST_FORMATS,
         shard_bytes: int = SHARD_BYTES, follow_links: bool = False, on_error: str = "raise",
         progress: bool = True) -> Ref:
    """Write the image folder ``src`` as WebDataset tar shards plus a JSON index to ``dest``.

    The samples are Keras' selection of ``src`` (as :func:`image_dataset_from_drive` sees it).
    With ``validation_split`` and ``seed``, the split Keras would make goes into
    ``train-*.tar`` and ``validation-*.tar``; without, everything goes into ``data-*.tar``.
    Either way, :func:`image_dataset_from_drive` on ``dest`` can make any split.

    Args:
        src: the image folder (Drive path, link or id; also gs://, s3://, local).
        dest: where the shards go (a Drive folder path; default: ``<src>_shards`` beside it).
        validation_split, seed: the split to write as separate shards.
        class_names: classes to include, in this order (default: all, sorted).
        formats: image extensions to include.
        shard_bytes: roughly how large one shard gets.
        follow_links: follow Drive shortcuts to folders.
        on_error: ``"raise"`` (a broken image stops the pack, naming it) or ``"skip"``.
        progress: show progress bars (reading the images, uploading the shards).

    Returns:
        The Ref of the shard folder (pass it to :func:`image_dataset_from_drive`).

    Raises:
        RefError: no destination can be derived (``src`` has no path); pass ``dest``.
        BrokenImageError: a file is not a readable image (``on_error="raise"``).
    """
    import numpy as np

    from ..bulk import BulkFetcher
    from ..progress import progress_bar
    from ..storage import backend_for
    from .listing import as_ref, index_drive_folder, resolve_folder

    check_on_error(on_error)
    if validation_split is not None:
        from keras.src.utils import dataset_utils

        dataset_utils.check_validation_split_arg(validation_split, "both", True, seed)
    backend, root = resolve_folder(src)
    index = index_drive_folder(src, "inferred", formats=formats, class_names=class_names,
                               follow_links=follow_links, folder=(backend, root))
    files = index.stats.files
    if not files:
        raise NotFoundError(f"no images in {root.ref.path or root.name} (allowed: {formats})")
    if dest is None:
        if not root.ref.path:
            raise RefError(f"{src} has no Drive path to put the shards beside; pass dest=")
        dest = root.ref.path.rstrip("/") + "_shards"
    dest_ref = as_ref(dest)
    out_backend = backend_for(dest_ref, write=True)

    total = sum(f.stat.size or 0 for f in files)
    with progress_bar(total, f"reading {root.name}", enabled=progress) as report, \
            BulkFetcher(backend, progress=report) as fetcher:
        local = fetcher.fetch_all(f.stat for f in files)
    good: list[tuple[DatasetFile, Path]] = []
    skipped = []
    for f, path in zip(files, local, strict=True):
        problem = image_problem(str(path))
        if problem:
            if on_error == "raise":
                raise BrokenImageError(f"{f.path}: {problem}. Replace or remove it, or pass "
                                       'on_error="skip".')
            logger.warning("pack: skipped %s: %s", f.path, problem)
            skipped.append(f.path)
            continue
        good.append((f, path))

    samples = [{"key": f"{i:08d}", "path": f.rel, "label": int(f.label or 0),
                "ext": _ext(f.rel)} for i, (f, _) in enumerate(good)]
    subsets: dict[str, list[int]] = {"all": list(range(len(good)))}
    split_info: dict[str, Any] | None = None
    if validation_split:
        order = list(range(len(good)))
        np.random.RandomState(seed).shuffle(order)
        n_val = int(validation_split * len(order))
        subsets = {"training": order[:-n_val] if n_val else order,
                   "validation": order[-n_val:] if n_val else []}
        split_info = {"validation_split": validation_split, "seed": seed,
                      "training": len(subsets["training"]), "validation": n_val}

    from ..cachestore import cache

    workdir = cache.private_dir("partial") / f"pack-{os.getpid()}-{time.time_ns()}"
    workdir.mkdir(mode=0o700)
    try:
        shards: list[dict[str, Any]] = []
        for subset, members in subsets.items():
            shards += _write_shards(workdir, subset, members, samples, good, shard_bytes)
        for shard_no, shard in enumerate(shards):
            for i in shard["members"]:
                samples[i]["shard"] = shard_no
        up_total = sum(s["bytes"] for s in shards)
        with progress_bar(up_total, f"uploading shards to {dest_ref.path}", enabled=progress) as report:
            for shard in shards:
                out_backend.upload(workdir / shard["name"], dest_ref.child(shard["name"]),
                                   metadata={"mime": "application/x-tar"}, progress=report)
        index_doc = {
            "format": FORMAT, "source": root.ref.path or root.name, "created": time.time(),
            "class_names": index.class_names,
            "counts": {name: sum(1 for s in samples if s["label"] == k)
                       for k, name in enumerate(index.class_names or [])},
            "split": split_info, "skipped": skipped,
            "shards": [{k: v for k, v in s.items() if k != "members"} for s in shards],
            "samples": samples,
        }
        (workdir / INDEX_NAME).write_text(json.dumps(index_doc))
        out_backend.upload(workdir / INDEX_NAME, dest_ref.child(INDEX_NAME),
                           metadata={"mime": "application/json"})
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    logger.info("packed %d images of %s into %d shards at %s", len(good), root.name,
                len(shards), dest_ref.path)
    return dest_ref


def _ext(rel: str) -> str:
    return rel.rsplit(".", 1)[-1].lower() if "." in rel.rsplit("/", 1)[-1] else "jpg"


def _write_shards(workdir: Path, subset: str, members: list[int], samples: list[dict[str, Any]],
                  good: list[tuple[DatasetFile, Path]], shard_bytes: int) -> list[dict[str, Any]]:
    """Write ``members`` (sample indices) into numbered tars of about ``shard_bytes``."""
    shards: list[dict[str, Any]] = []
    prefix = _subset_prefix(subset)
    current: tarfile.TarFile | None = None
    size = 0

    def close() -> None:
        nonlocal current
        if current is not None:
            current.close()
            shard = shards[-1]
            shard["bytes"] = (workdir / shard["name"]).stat().st_size
            current = None

    for i in members:
        sample = samples[i]
        path = good[i][1]
        need = path.stat().st_size + 2048
        if current is None or (size + need > shard_bytes and size > 0):
            close()
            name = f"{prefix}-{len(shards):06d}.tar"
            shards.append({"name": name, "subset": subset, "samples": 0, "members": []})
            current = tarfile.open(workdir / name, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
            size = 0
        shard = shards[-1]
        image_name = f"{sample['key']}.{sample['ext']}"
        info = tarfile.TarInfo(image_name)
        info.size = path.stat().st_size
        info.mtime = 0
        info.mode = 0o444
        with open(path, "rb") as fh:
            current.addfile(info, fh)
        sample["member"] = image_name
        sample["offset"] = info.offset_data
        sample["size"] = info.size
        cls = str(sample["label"]).encode()
        cinfo = tarfile.TarInfo(f"{sample['key']}.cls")
        cinfo.size = len(cls)
        cinfo.mtime = 0
        cinfo.mode = 0o444
        current.addfile(cinfo, io.BytesIO(cls))
        shard["samples"] += 1
        shard["members"].append(i)
        size += need
    close()
    return shards


# -- reading -------------------------------------------------------------------------------------

@dataclass
class PackedDataset:
    """A shard folder written by :func:`pack`: its index and the shards' Drive stats."""

    backend: StorageBackend
    root: RemoteStat
    index: dict[str, Any]
    shard_stats: list[RemoteStat]

    def select(self, labels: Any, class_names: list[str] | None, shuffle: bool,
               seed: int | None) -> tuple[list[DatasetFile], Any, list[str] | None]:
        """The samples Keras would select from the original folder with these arguments."""
        import numpy as np

        names: list[str] = list(self.index["class_names"] or [])
        source = self.index["source"].rstrip("/")
        samples = self.index["samples"]

        def record(s: dict[str, Any], label: int | None) -> DatasetFile:
            shard = self.shard_stats[s["shard"]]
            return DatasetFile(path=f"{source}/{s['path']}", rel=s["path"], label=label,
                               stat=shard, info={"member": s["member"], "shard": s["shard"]},
                               node=None)  # type: ignore[arg-type]

        if labels == "inferred":
            if class_names is not None:
                if not set(class_names).issubset(set(names)):
                    raise ValueError(
                        "The `class_names` passed did not match the names of the subdirectories "
                        f"of the target directory. Expected: {names} (or a subset of it), but "
                        f"received: class_names={class_names}")
                chosen = list(class_names)
            else:
                chosen = names
            files = [record(s, k) for k, name in enumerate(chosen)
                     for s in samples if names[s["label"]] == name]
            out_labels: Any = np.array([f.label for f in files], dtype="int32")
            out_names: list[str] | None = chosen
        else:
            if class_names is not None:
                raise ValueError("When argument `labels` is specified, argument `class_names` "
                                 "cannot be specified.")
            ordered = sorted(samples, key=lambda s: s["path"])  # Keras' order without classes
            files = [record(s, None) for s in ordered]
            out_labels, out_names = given_labels(files, labels, source)
        if shuffle:
            files, out_labels = shuffled(files, out_labels, seed)
        return files, out_labels, out_names

    def feeder(self, files: list[DatasetFile], *, on_error: str, skipped: list[str]) -> ShardFeeder:
        return ShardFeeder(self, files, on_error=on_error, skipped=skipped)


def open_packed(backend: StorageBackend, root: RemoteStat, tree: Tree | None = None) -> PackedDataset | None:
    """The packed dataset in folder ``root``, or None when it holds no :data:`INDEX_NAME`."""
    from ..bulk import BulkFetcher

    children = (tree.root.children or []) if tree is not None else None
    if children is None:
        from ..tree import walk_tree

        children = walk_tree(backend, root).root.children or []
    by_name = {c.name: c for c in children if not c.is_dir}
    found = by_name.get(INDEX_NAME)
    if found is None:
        return None
    with BulkFetcher(backend, workers=2) as fetcher:
        index_path = fetcher.fetch(found.stat)
    try:
        index = json.loads(Path(index_path).read_text())
    except ValueError as e:
        raise IntegrityError(f"{found.rel} in {root.name} is not a dataset index: {e}") from e
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        found_format = index.get("format") if isinstance(index, dict) else None
        raise IntegrityError(f"{INDEX_NAME} in {root.name} has format {found_format!r}; "
                             f"this version reads {FORMAT!r}")
    _check_index(index, root.ref.path or root.name)
    stats = []
    for shard in index["shards"]:
        node = by_name.get(shard["name"])
        if node is None:
            raise NotFoundError(f"shard {shard['name']} of {root.ref.path or root.name} is "
                                "missing; pack the dataset again")
        stats.append(node.stat)
    return PackedDataset(backend, root, index, stats)


def _check_index(index: dict[str, Any], where: str) -> None:
    """Refuse an index whose samples could make a reader leave the shard's cache entry.

    The index is data from Drive (anyone who can write the shard folder can change it): every
    sample's ``member`` must be a name that unpacking a shard can produce (a relative path
    whose components are already safe, so no absolute path and no ``..``), and its ``shard``
    and ``label`` must be numbers within the index.

    Raises:
        IntegrityError: naming the index and the offending sample.
    """
    from ..cachestore import safe_relpath

    def refuse(why: str) -> IntegrityError:
        return IntegrityError(f"{INDEX_NAME} in {where} {why}; it was altered or damaged. Pack "
                              "the dataset again (cm.pack) or ask its owner to.")

    shards, samples = index.get("shards"), index.get("samples")
    if not isinstance(shards, list) or not isinstance(samples, list) \
            or not all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in shards):
        raise refuse("has no list of shards and samples")
    names = index.get("class_names") or []
    if not isinstance(index.get("source"), str) or not isinstance(names, list) \
            or not all(isinstance(n, str) for n in names):
        raise refuse("has no source folder or class names")
    for n, sample in enumerate(samples):
        member = sample.get("member") if isinstance(sample, dict) else None
        try:
            safe = isinstance(member, str) and safe_relpath(member).as_posix() == member
        except IntegrityError:
            safe = False
        if not safe:
            raise refuse(f"names {member!r} as the file of sample {n}, which is not a file its "
                         "shard can hold (absolute paths and '..' are refused)")
        assert isinstance(sample, dict)
        shard, label, path = sample.get("shard"), sample.get("label"), sample.get("path")
        if not isinstance(shard, int) or isinstance(shard, bool) or not 0 <= shard < len(shards):
            raise refuse(f"names shard {shard!r} for sample {n}, which it does not list")
        if not isinstance(label, int) or isinstance(label, bool) \
                or not (0 <= label < len(names) or not names):
            raise refuse(f"gives sample {n} the label {label!r}, which is not a class it lists")
        if not isinstance(path, str):
            raise refuse(f"gives sample {n} no path")


def _member_path(entry: CacheEntry, member: str) -> str:
    """The unpacked file ``member`` of a shard's entry; refused if it would leave the entry."""
    base = os.path.normpath(entry.path)
    path = os.path.normpath(os.path.join(base, member))
    if os.path.isabs(member) or os.path.commonpath([base, path]) != base:
        raise IntegrityError(f"{member!r} is outside its shard's cache entry; pack the dataset "
                             "again (cm.pack)")
    return path


class ShardFeeder:
    """Local paths of packed samples: shards downloaded (ranged, in parallel) and unpacked once.

    The same interface as :class:`~colabmodels.datasets.feeder.Feeder`: ``local(i)``.
    """

    def __init__(self, packed: PackedDataset, files: list[DatasetFile], *, on_error: str,
                 skipped: list[str]) -> None:
        self.packed = packed
        self.files = files
        self.on_error = on_error
        self.skipped = skipped
        self._entries: dict[int, Future[CacheEntry]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=SHARD_WORKERS, thread_name_prefix="colabmodels-shard")
        self._bad: set[int] = set()
        order: list[int] = []
        for f in files:  # start every shard in the order the samples will want them
            shard = int(f.info["shard"])
            if shard not in order:
                order.append(shard)
        self.on_all_local: Any = None
        self._done = 0
        for shard in order:
            fut = self._pool.submit(self._shard_entry, shard)
            self._entries[shard] = fut
            fut.add_done_callback(self._shard_done)

    def _shard_done(self, fut: Future[CacheEntry]) -> None:
        with self._lock:
            self._done += 1
            complete = self._done == len(self._entries)
        if complete and self.on_all_local is not None and all(
                f.exception() is None for f in self._entries.values()):
            self.on_all_local(self.paths())

    def paths(self) -> list[str]:
        """The unpacked path of every sample whose shard is ready ("" for the others)."""
        out = []
        for f in self.files:
            fut = self._entries[int(f.info["shard"])]
            ready = fut.done() and fut.exception() is None
            path = _member_path(fut.result(), f.info["member"]) if ready else ""
            # a bomb (an altered shard) is left to local(), which names it
            out.append(path if path and bomb_problem(path) is None else "")
        return out

    def _shard_entry(self, shard: int) -> CacheEntry:
        from ..cachestore import cache, identity_of, key_for, safe_relpath
        from ..transfer import download_to

        stat = self.packed.shard_stats[shard]
        identity = "unpacked:" + identity_of(stat)
        key = key_for(identity)
        partial = cache.partial_path(key)
        known: dict[str, str] = {}

        def fill(target: Path) -> None:
            import hashlib

            download_to(self.packed.backend, stat, partial)
            target.mkdir(parents=True)
            with tarfile.open(partial, "r:") as tar:
                for member in tar:
                    if not member.isfile() or member.name.endswith(".cls"):
                        continue  # labels come from the index
                    rel = safe_relpath(member.name)
                    dest = target / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    assert src is not None
                    digest = hashlib.md5(usedforsecurity=False)
                    with open(dest, "wb") as out:
                        while block := src.read(1024 * 1024):
                            out.write(block)
                            digest.update(block)
                    known[rel.as_posix()] = digest.hexdigest()
            partial.unlink(missing_ok=True)

        entry, _ = cache.get_or_store(key, identity=identity, source=str(stat.ref), name=stat.name,
                                      kind="tree", fill=fill, known_md5=known)
        return entry

    def local(self, index: int) -> str | None:
        f = self.files[index]
        if index in self._bad:
            return None
        entry = self._entries[int(f.info["shard"])].result()
        path = _member_path(entry, f.info["member"])
        # Images were checked when packed, but a shard can be altered: no decoder sees a bomb.
        problem = None if os.path.exists(path) else f"missing from its shard {f.stat.name}"
        problem = problem or bomb_problem(path)
        if problem:
            message = f"{f.path}: {problem}"
            if self.on_error == "skip":
                self._bad.add(index)
                self.skipped.append(f.path)
                logger.warning("skipped %s", message)
                return None
            raise BrokenImageError(message)
        return path

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
