"""WebDataset shards of an image folder, written back to Drive once and streamed from then on.

``pack`` turns a folder of class subfolders into tar shards in the WebDataset layout
(``train-000000.tar``, ``validation-000000.tar``; inside, ``<key>.jpg`` + ``<key>.cls`` per
sample, the class index as text), plus a JSON index (``INDEX_NAME``) with the class names,
counts, the split and every sample's original path, label, shard and byte offset. The shards
are plain POSIX tars that ``webdataset`` and Ray Data's ``read_webdataset`` read unchanged.

``image_dataset_from_drive`` on a packed folder reads the shards: each shard is downloaded
with parallel ranged requests (the transfer engine) into the cache, where it stays one file
(the tar); each sample's bytes are read at the offset the index gives as soon as they have
arrived and decoded by TensorFlow (``.member_bytes``), so download, tar reading and decoding
overlap. The samples come out in exactly the order, split and labels the original folder would
give for the same arguments (the index keeps Keras' file order).
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import IntegrityError, NotFoundError, RefError
from .feeder import INTERRUPT_QUIET_S, BrokenImageError, FetchStopped, check_on_error, image_problem
from .listing import ALLOWLIST_FORMATS, DatasetFile, given_labels, shuffled

if TYPE_CHECKING:
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

    The samples are Keras' selection of ``src`` (as ``image_dataset_from_drive`` sees it).
    With ``validation_split`` and ``seed``, the split Keras would make goes into
    ``train-*.tar`` and ``validation-*.tar``; without, everything goes into ``data-*.tar``.
    Either way, ``image_dataset_from_drive`` on ``dest`` can make any split.

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
        The Ref of the shard folder (pass it to ``image_dataset_from_drive``).

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
        header = info.tobuf(tarfile.USTAR_FORMAT, current.encoding, current.errors)
        data_offset = current.offset + len(header)  # addfile records it on a copy only
        with open(path, "rb") as fh:
            current.addfile(info, fh)
        sample["member"] = image_name
        sample["offset"] = data_offset
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
    """A shard folder written by ``pack``: its index and the shards' Drive stats."""

    backend: StorageBackend
    root: RemoteStat
    index: dict[str, Any]
    shard_stats: list[RemoteStat]
    early: list[_ShardStream] = field(default_factory=list)
    """Shards started while the index was read (released once a reader took its own)."""

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
        feeder = ShardFeeder(self, files, on_error=on_error, skipped=skipped)
        self.release_early()
        return feeder

    def release_early(self) -> None:
        """Let go of the shards started early: one no reader took stops (resumable later)."""
        early, self.early = self.early, []
        for stream in early:
            _release(stream)


def open_packed(backend: StorageBackend, root: RemoteStat, tree: Tree | None = None) -> PackedDataset | None:
    """The packed dataset in folder ``root``, or None when it holds no ``INDEX_NAME``."""
    from ..bulk import BulkFetcher

    children = (tree.root.children or []) if tree is not None else None
    if children is None:
        from ..tree import walk_tree

        children = walk_tree(backend, root).root.children or []
    by_name = {c.name: c for c in children if not c.is_dir}
    found = by_name.get(INDEX_NAME)
    if found is None:
        return None
    # The first shards a full or training read wants start now, while the index is read: a
    # cold read waits for its first bytes that much less. A reader that wants other shards
    # (a validation subset) releases them, which stops them.
    early = [_stream(backend, by_name[name].stat) for name in sorted(by_name)
             if name.endswith(".tar") and name.startswith(("data-", "train-"))][:SHARD_WORKERS]
    for stream in early:
        stream.start()
    try:
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
    except BaseException:
        for stream in early:
            _release(stream)
        raise
    return PackedDataset(backend, root, index, stats, early)


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


_TAR_BLOCK = 512


def _tar_header_names(header: bytes, member: str, size: int) -> bool:
    """Whether the 512-byte ustar header before a member's data names ``member`` with ``size``."""
    if len(header) != _TAR_BLOCK:
        return False
    name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
    if prefix:
        name = f"{prefix}/{name}"
    try:
        declared = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        return False
    return name == member and declared == size


class _Spans:
    """Byte ranges of a file that have arrived (merged, sorted)."""

    def __init__(self) -> None:
        self._spans: list[list[int]] = []

    def add(self, start: int, end: int) -> None:
        import bisect

        spans = self._spans
        i = bisect.bisect_left(spans, [start, start])
        if i and spans[i - 1][1] >= start:
            i -= 1
            start = spans[i][0]
        j = i
        while j < len(spans) and spans[j][0] <= end:
            end = max(end, spans[j][1])
            j += 1
        spans[i:j] = [[start, end]]

    def covers(self, start: int, end: int) -> bool:
        import bisect

        i = bisect.bisect_right(self._spans, [start, float("inf")]) - 1
        return i >= 0 and self._spans[i][0] <= start and self._spans[i][1] >= end


class _Watched:
    """A backend whose ranged reads report each block once the downloader has written it (the
    downloader asks for the next block only after writing the previous one)."""

    def __init__(self, backend: StorageBackend, arrived: Any) -> None:
        self._backend, self._arrived = backend, arrived

    def check_downloadable(self, stat: RemoteStat) -> None:
        self._backend.check_downloadable(stat)

    def open_range(self, ref: Any, start: int, end: int | None) -> Any:
        def blocks() -> Any:
            pos = start
            stream = self._backend.open_range(ref, start, end)
            try:
                for block in stream:
                    yield block
                    self._arrived(pos, pos + len(block))  # written: the next one is asked for
                    pos += len(block)
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()

        return blocks()


class _ShardStream:
    """One shard: in the cache (a file entry holding the tar), or being downloaded into the
    cache's private partial folder, its members readable as their bytes arrive.

    The download is the transfer engine's (parallel ranged parts, retries, md5 check); the
    shard becomes a cache entry only once complete and verified, so an interrupted read leaves
    no entry (only the resumable partial file, which the next read completes before use).
    """

    def __init__(self, backend: StorageBackend, stat: RemoteStat) -> None:
        from ..cachestore import cache, identity_of, key_for

        self.backend, self.stat = backend, stat
        self.identity = "shard:" + identity_of(stat)
        self.registry_key = f"{cache.root}|{self.identity}"
        self.key = key_for(self.identity)
        self.partial = cache.partial_path(self.key)
        self._cond = threading.Condition()
        self._spans = _Spans()
        self._waiting: list[tuple[int, int]] = []
        self._fd: int | None = None
        self._complete = False
        self._error: BaseException | None = None
        self._started = False
        self._cancel = threading.Event()
        self.users = 0
        entry = cache.entry(self.key)
        if entry is not None:
            self._use(entry.path)

    def _use(self, path: Path) -> None:
        """Serve reads from the complete shard. The partial file's descriptor, when open, is
        kept: it is the entry's file now (renamed into place) or the same verified bytes."""
        from ..transfer import open_private

        with self._cond:
            if self._fd is None:
                self._fd = open_private(path, os.O_RDONLY)
            self._complete = True
            self._cond.notify_all()

    @property
    def complete(self) -> bool:
        return self._complete

    def start(self) -> None:
        with self._cond:
            if self._started or self._complete:
                return
            self._started = True
        threading.Thread(target=self._run, daemon=True, name="colabmodels-shard").start()

    def cancel(self) -> None:
        self._cancel.set()

    def _arrived(self, start: int, end: int) -> None:
        from ..transfer import open_private

        with self._cond:
            if self._fd is None:
                self._fd = open_private(self.partial, os.O_RDONLY)
            self._spans.add(start, end)
            if any(self._spans.covers(a, b) for a, b in self._waiting):
                self._cond.notify_all()  # only when a waiting reader's bytes are all here

    def _run(self) -> None:
        from ..cachestore import cache, md5_of
        from ..transfer import download_to

        stat = self.stat
        try:
            with _STARTED, cache.lock(self.key):
                entry = cache.entry(self.key)
                if entry is None:
                    # a partial file left by an interrupted read is resumed, then read whole
                    resumed = self.partial.exists()
                    cache.ensure_space(stat.size or 0)
                    source: Any = self.backend if resumed else _Watched(self.backend, self._arrived)
                    download_to(source, stat, self.partial, cancel=self._cancel)
                    md5 = md5_of(stat)

                    def fill(target: Path) -> None:
                        os.replace(self.partial, target)

                    entry = cache.store(self.key, identity=self.identity, source=str(stat.ref),
                                        name=stat.name, kind="file", fill=fill,
                                        known_md5={"": md5} if md5 else None)
                    self.partial.unlink(missing_ok=True)
            self._use(entry.path)
        except BaseException as e:  # handed to every reader
            with self._cond:
                self._error = e
                self._cond.notify_all()
        finally:  # readers keep their own reference; a new reader starts from the cache
            with _STREAMS_LOCK:
                if _STREAMS.get(self.registry_key) is self:
                    del _STREAMS[self.registry_key]

    def member_span(self, member: str) -> tuple[int, int] | None:
        """``(data offset, size)`` of ``member``, from the tar's headers (the shard is waited
        for whole and its headers read once); None when the shard holds no such file."""
        with self._cond:
            found = self.__dict__.get("_members")
        if found is None:
            self.read(0, 0, whole=True)
            with self._cond:
                fd = self._fd
            assert fd is not None
            found = {}
            with tarfile.open(fileobj=_FdReader(fd), mode="r:") as tar:
                for m in tar:
                    if m.isfile():
                        found[m.name] = (m.offset_data, m.size)
            with self._cond:
                self.__dict__["_members"] = found
        return found.get(member)

    def read(self, offset: int, size: int, *, whole: bool = False) -> bytes:
        """Bytes ``[offset, offset + size)`` of the shard, waiting until they have arrived.

        Raises:
            the download's error (TransferError, IntegrityError...).
        """
        from ..transfer import pread_at

        end = offset + size
        self.start()
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._cancel.is_set() and not self._complete:
                    from ..errors import TransferError

                    raise TransferError(f"reading {self.stat.name} was stopped")
                if self._complete or (not whole and self._fd is not None
                                      and self._spans.covers(offset, end)):
                    break
                wanted = (offset, end if not whole else (self.stat.size or 0) + 1)
                self._waiting.append(wanted)
                try:
                    self._cond.wait(timeout=0.5)
                finally:
                    self._waiting.remove(wanted)
            fd = self._fd
        assert fd is not None
        return pread_at(fd, size, offset)



class _FdReader(io.RawIOBase):
    """A read-only, seekable file over a descriptor, read with ``pread`` (shared safely)."""

    def __init__(self, fd: int) -> None:
        self._fd, self._pos = fd, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        size = os.fstat(self._fd).st_size
        self._pos = {0: pos, 1: self._pos + pos, 2: size + pos}[whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf: Any) -> int:
        data = os.pread(self._fd, len(buf), self._pos)
        buf[:len(data)] = data
        self._pos += len(data)
        return len(data)


_STARTED = threading.BoundedSemaphore(SHARD_WORKERS)
"""Shards downloading at once in this process."""
_STREAMS: dict[str, _ShardStream] = {}
_STREAMS_LOCK = threading.Lock()


def _stream(backend: StorageBackend, stat: RemoteStat) -> _ShardStream:
    """The process's one stream of this shard while it downloads (shared by every dataset
    reading it); a new one, which finds the cache entry, once it is complete."""
    from ..cachestore import cache, identity_of

    key = f"{cache.root}|shard:{identity_of(stat)}"
    with _STREAMS_LOCK:
        found = _STREAMS.get(key)
        if found is None or found._error is not None or found._cancel.is_set():
            found = _ShardStream(backend, stat)
            if not found.complete:
                _STREAMS[key] = found
        found.users += 1
        return found


def _release(stream: _ShardStream) -> None:
    with _STREAMS_LOCK:
        stream.users -= 1
        if stream.users <= 0 and not stream.complete:
            stream.cancel()  # nobody reads it any more: stop (what arrived stays resumable)
            if _STREAMS.get(stream.registry_key) is stream:
                del _STREAMS[stream.registry_key]


class ShardFeeder:
    """The packed samples' encoded bytes, read from their shards as the shards arrive.

    Every shard the samples need starts downloading at once (``SHARD_WORKERS`` at a time,
    in the order the samples want them, each with the transfer engine's parallel ranged
    parts); a sample's bytes are handed over as soon as its span of the shard has arrived, and
    TensorFlow decodes them (``.member_bytes.bytes_to_dataset``), so downloading, reading
    the tar and decoding overlap. Complete shards are cache entries: a second epoch or a new
    process reads them from local disk.
    """

    def __init__(self, packed: PackedDataset, files: list[DatasetFile], *, on_error: str,
                 skipped: list[str]) -> None:
        self.packed = packed
        self.files = files
        self.on_error = on_error
        self.skipped = skipped
        self._bad: set[int] = set()
        self._lock = threading.Lock()
        samples = packed.index["samples"]
        by_member = {(s["shard"], s["member"]): s for s in samples}
        # Where each sample's bytes sit in its shard; None: the index does not say (older
        # packs recorded no offsets), so the shard's tar headers are read once it is complete.
        self._spans: list[tuple[int, int] | None] = []
        for f in files:
            s = by_member.get((int(f.info["shard"]), f.info["member"])) or {}
            offset, size = s.get("offset"), s.get("size")
            usable = isinstance(offset, int) and isinstance(size, int) and offset >= _TAR_BLOCK \
                and size >= 0 and offset % _TAR_BLOCK == 0
            self._spans.append((offset, size) if usable else None)  # type: ignore[arg-type]
        self._streams: dict[int, _ShardStream] = {}
        for f in files:  # start every shard in the order the samples will want them
            shard = int(f.info["shard"])
            if shard not in self._streams:
                self._streams[shard] = _stream(packed.backend, packed.shard_stats[shard])
        for stream in self._streams.values():
            stream.start()
        self._closed = False
        self._interrupted_at: float | None = None

    def paths(self) -> list[str]:
        """No sample is a file of its own (image_dataset_from_drive asks for bytes instead)."""
        return [""] * len(self.files)

    def member_bytes(self, index: int) -> bytes | None:
        """Sample ``index``'s encoded image (None when left out with ``on_error="skip"``).

        Raises:
            BrokenImageError: not a readable image, or not where the index says (``"raise"``).
            TransferError, IntegrityError: the shard could not be read.
        """
        if index in self._bad:
            return None
        f = self.files[index]
        stream = self._stream_of(int(f.info["shard"]))
        try:
            return self._member_bytes(index, f, stream)
        except FetchStopped:
            raise
        except Exception as e:
            if self._interrupted_at is not None:
                raise FetchStopped(f"{f.path}: not read, stopped by an interrupt; ask again "
                                   "to resume") from e
            raise

    def _stream_of(self, shard: int) -> _ShardStream:
        """The shard's stream; after an interrupt, a new one (the download resumes)."""
        since = self._interrupted_at
        if since is not None:
            now = time.monotonic()
            if threading.current_thread() is not threading.main_thread() \
                    and now - since < INTERRUPT_QUIET_S:
                self._interrupted_at = now  # the interrupted iterator's readers still ask
                raise FetchStopped("stopped by an interrupt; ask again to resume")
            self._interrupted_at = None
        with self._lock:
            stream = self._streams[shard]
            if stream._cancel.is_set() or (stream._error is not None and not stream.complete):
                _release(stream)
                stream = self._streams[shard] = _stream(self.packed.backend,
                                                        self.packed.shard_stats[shard])
                stream.start()
            return stream

    def interrupt(self) -> None:
        """Ctrl-C while TensorFlow's iterator waits (the interrupt watch): the downloads stop,
        readers of the interrupted iterator get ``FetchStopped``; reading again resumes."""
        self._interrupted_at = time.monotonic()
        for stream in list(self._streams.values()):
            if not stream.complete:
                stream.cancel()

    def pending(self) -> bool:
        """Whether some shard is still to be downloaded."""
        return not all(stream.complete for stream in self._streams.values())

    def _member_bytes(self, index: int, f: DatasetFile, stream: _ShardStream) -> bytes | None:
        span = self._spans[index] or stream.member_span(f.info["member"])
        if span is None:
            span, f_missing = (_TAR_BLOCK, 0), True
        else:
            f_missing = False
        offset, size = span
        shard_size = stream.stat.size
        if f_missing or (shard_size is not None and offset + size > shard_size):
            problem: str | None = f"outside its shard {stream.stat.name}"
            data = b""
        else:
            raw = stream.read(offset - _TAR_BLOCK, size + _TAR_BLOCK)
            data = raw[_TAR_BLOCK:]
            problem = None if _tar_header_names(raw[:_TAR_BLOCK], f.info["member"], size) \
                else f"missing from its shard {stream.stat.name}"
        if problem is None:
            from .member_bytes import bytes_problem

            problem = bytes_problem(data)  # checked when packed, but a shard can be altered
        if problem is None:
            return data
        message = f"{f.path}: {problem}"
        if self.on_error == "skip":
            with self._lock:
                if index not in self._bad:
                    self._bad.add(index)
                    self.skipped.append(f.path)
            logger.warning("skipped %s", message)
            return None
        raise BrokenImageError(f"{message}. Pack the dataset again (cm.pack), or pass "
                               'on_error="skip" to leave it out.')

    def local(self, index: int) -> bytes | None:
        return self.member_bytes(index)

    def to_dataset(self, labels: Any, **options: Any) -> Any:
        """The tf.data element stream of these samples (see ``.member_bytes.bytes_to_dataset``)."""
        from .interrupts import watch_interrupts
        from .member_bytes import batch_reader, bytes_to_dataset

        ds = bytes_to_dataset(len(self.files), labels, batch_reader(self.member_bytes),
                              **options)
        if self.pending():  # Ctrl-C stops the downloads while TensorFlow's iterator waits
            watch_interrupts(self)
        ds._colabmodels_feeder = self
        ds._colabmodels_paths = None
        return ds

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in self._streams.values():
            _release(stream)
