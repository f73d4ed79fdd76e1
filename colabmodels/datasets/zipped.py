"""A ``.zip`` of images as a dataset folder: Keras' rules on the archive as if extracted.

``open_zip_dataset`` reads the archive's central directory (at most three ranged
requests, remembered in the cache; ``colabmodels.archives.ZipArchive``) and turns the
member names into the same listing tree a folder gives (``colabmodels.tree.Tree``), so
``index_drive_folder`` applies exactly Keras' selection to it:
the class folders, hidden folders, extensions, order, labels and split are those
``keras.utils.image_dataset_from_directory`` gives on the extracted archive.

- A zip holding one top folder (what zipping a folder makes), with nothing beside it but
  hidden entries, is descended into, as if the user had pointed Keras at that folder.
- ``__MACOSX/`` is left out; so are members whose names would escape the folder, links and
  devices (each named in a warning; see ``colabmodels.archives.limits``).
- Encrypted members and unsupported compression among the selected files raise when the
  dataset is made, naming the archive and the member.

``ZipFeeder`` serves the dataset readers as ``Feeder``
does for folders: members are read by range, neighbours coalesced into large requests, in the
order they are needed, so a second epoch and a new kernel read local disk. For
``image_dataset_from_drive`` (``ZipFeeder.to_dataset``) each block read is kept as one
cache file and the members' decoded bytes go to TensorFlow, which decodes the images in its
parallel map (no file per member); the readers that want files (``DriveImageSequence``, the
torch dataset) get each member in a file of its own (CRC-32 checked either way).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..archives import MACOSX, MemberFetcher, ZipArchive, ZipMember, check_readable, member_relpath
from ..archives.limits import check_member, warn_refused
from ..tree import ListingStats, Tree, TreeNode
from .feeder import BrokenImageError, FeederBase, FetchStopped, image_problem, keep_readable
from .listing import ALLOWLIST_FORMATS, DatasetFile, DriveIndex, index_drive_folder

if TYPE_CHECKING:
    from ..storage.base import RemoteStat, StorageBackend

__all__ = ["ZipDataset", "ZipFeeder", "is_zip", "open_zip_dataset"]

_T = TypeVar("_T")
logger = logging.getLogger(__name__)


def is_zip(stat: RemoteStat) -> bool:
    """Whether a dataset source that is a file is a zip (by its name; reading the directory
    then confirms it by content)."""
    return not stat.is_dir and stat.name.lower().endswith(".zip")


@dataclass
class ZipDataset:
    """A zip archive seen as an image folder.

    Attributes:
        archive: the archive.
        tree: its members as a listing tree, rooted at the dataset folder (the single top
            folder when there is one).
        root: a stat standing for that folder (``ref.path`` is ``<archive path>/<top folder>``).
        top: the top folder descended into ("" when none).
        left_out: member names left out because they are unsafe (escaping paths, links,
            devices).
        macosx_left_out: how many ``__MACOSX/`` entries were left out.
    """

    archive: ZipArchive
    tree: Tree
    root: RemoteStat
    top: str = ""
    left_out: list[str] = field(default_factory=list)
    macosx_left_out: int = 0

    @property
    def base(self) -> str:
        """The dataset folder's display path (``MyDrive/data/flowers.zip/flowers``)."""
        return (self.root.ref.path or self.root.name).rstrip("/")

    def index(self, labels: Any = "inferred", *, formats: tuple[str, ...] = ALLOWLIST_FORMATS,
              class_names: list[str] | None = None, shuffle: bool = False,
              seed: int | None = None) -> DriveIndex:
        """Keras' selection from the archive's members, checked for encryption.

        Raises:
            ValueError: bad ``labels``/``class_names`` (Keras' checks).
            UnknownFormatError: a selected member is encrypted or compressed with a method
                other than stored/deflate (naming the archive and the member).
            UnsafeArchiveError: a selected member claims an absurd expansion.
        """
        index = index_drive_folder(self.base, labels, formats=formats, class_names=class_names,
                                   shuffle=shuffle, seed=seed,
                                   folder=(self.archive.backend, self.root), tree=self.tree)
        self.check(index.stats.files)
        return index

    def check(self, files: Sequence[DatasetFile]) -> None:
        """Raise for the first selected member that cannot be read (encrypted, bombs)."""
        where = self.archive.where
        for f in files:
            member = member_of(f)
            check_readable(member, where=where)
            check_member(member.name, member.size, member.compressed_size, where=where)

    def feeder(self, files: Sequence[DatasetFile], *, on_error: str = "raise",
               skipped: list[str] | None = None, lookahead: int = 512,
               workers: int | None = None, check_images: bool = True) -> ZipFeeder:
        feeder = ZipFeeder(self.archive, files, on_error=on_error, skipped=skipped,
                           lookahead=lookahead, workers=workers, check_images=check_images)
        feeder.find_cached()
        return feeder

    def checked_up_front(self, files: list[DatasetFile], labels: Any, skipped: list[str],
                         workers: int | None) -> tuple[list[DatasetFile], Any]:
        """``on_error="skip"``: read and check every member now; keep the good ones."""
        feeder = self.feeder(files, on_error="skip", skipped=skipped, workers=workers)
        return keep_readable(feeder, labels)


def member_of(f: DatasetFile) -> ZipMember:
    member = f.info.get("zip_member")
    assert isinstance(member, ZipMember), f"{f.path} is not a zip member"
    return member


def open_zip_dataset(backend: StorageBackend, stat: RemoteStat) -> ZipDataset:
    """The zip ``stat`` describes, as an image folder (its directory read by range).

    Raises:
        UnknownFormatError: not a zip archive.
        IntegrityError: a truncated or corrupt directory.
    """
    archive = ZipArchive.open(backend, stat)
    where = archive.where
    root_stat = replace(stat, is_dir=True, size=None, mime=None)
    root = TreeNode(parts=(), local="", stat=root_stat, children=[])
    dirs: dict[tuple[str, ...], TreeNode] = {(): root}
    files: dict[tuple[str, ...], TreeNode] = {}
    left_out: list[str] = []
    macosx = 0

    def folder(parts: tuple[str, ...]) -> TreeNode | None:
        node = dirs.get(parts)
        if node is not None:
            return node
        if parts in files:
            return None  # a file of that name: the folder cannot exist beside it
        parent = folder(parts[:-1])
        if parent is None:
            return None
        node = TreeNode(parts=parts, local="/".join(parts),
                        stat=replace(root_stat, name=parts[-1]), children=[])
        assert parent.children is not None
        parent.children.append(node)
        dirs[parts] = node
        return node

    for m in archive.members:
        rel, why = member_relpath(m.name)
        if rel is not None and (m.is_symlink or m.is_special):
            rel, why = None, "a symbolic link" if m.is_symlink else "a device or FIFO entry"
        if rel is None:
            if why is not None:
                warn_refused(where, m.name, why)
                left_out.append(m.name)
            elif m.name.replace("\\", "/").lstrip("/").startswith(MACOSX + "/"):
                macosx += 1
            continue
        parts = tuple(rel.split("/"))
        if m.is_dir:
            folder(parts)
            continue
        parent = folder(parts[:-1])
        if parent is None or parts in dirs:
            warn_refused(where, m.name, "a file where the archive also has a folder of that name")
            left_out.append(m.name)
            continue
        node = TreeNode(parts=parts, local=rel,
                        stat=replace(stat, name=parts[-1], size=m.size, checksum=None,
                                     identity=f"zip-member:{archive.identity}:{m.header_offset}",
                                     mime=None),
                        info={"zip_member": m, "zip_archive": archive})
        old = files.get(parts)
        assert parent.children is not None
        if old is not None:  # the same name twice: the later one wins, as unzip -o does
            parent.children.remove(old)
        files[parts] = node
        parent.children.append(node)
    for node in dirs.values():
        assert node.children is not None
        node.children.sort(key=lambda c: c.name)

    top = ""
    visible = [c for c in root.children or () if not c.name.startswith(".")]
    if len(visible) == 1 and visible[0].is_dir:
        top = visible[0].name
        root = visible[0]
    base = (stat.ref.path or stat.name).rstrip("/")
    root_stat = replace(root_stat, ref=replace(stat.ref, path=f"{base}/{top}" if top else base),
                        name=top or stat.name)
    root = replace(root, stat=root_stat)
    if macosx:
        logger.info("%s: left out %d __MACOSX/ entries (macOS resource forks)", where, macosx)
    tree = Tree(root, ListingStats(requests=archive.directory.requests))
    return ZipDataset(archive, tree, root_stat, top, left_out, macosx)


class ZipFeeder(FeederBase):
    """Cache paths of zip members, read by coalesced ranges ahead of use.

    A ``FeederBase`` like the folders' ``Feeder`` (``local``,
    ``paths``, ``prefetch``, ``start_all``, ``fetch_all``, ``find_cached``, ``stop``, ``close``,
    ``on_all_local``); pickles without connections (DataLoader workers re-open what they need).
    """

    fix_hint = "Replace it in the archive"
    _fetcher: MemberFetcher | None

    def __init__(self, archive: ZipArchive, files: Sequence[DatasetFile], *,
                 on_error: str = "raise", skipped: list[str] | None = None,
                 lookahead: int = 512, workers: int | None = None,
                 check_images: bool = True) -> None:
        super().__init__(files, on_error=on_error, check_images=check_images, skipped=skipped,
                         lookahead=lookahead)
        self.archive = archive
        self.members = [member_of(f) for f in self.files]
        self.workers = workers
        self._wanted = 0
        self._fetcher = None
        self.blobs = False
        self._delivered: set[int] = set()

    def _pool(self) -> MemberFetcher:
        self._refuse_when_exiting()
        if self._fetcher is None or self._pid != os.getpid() or self._stopped.is_set():
            from ..archives.members import WORKERS

            self._stopped.clear()

            self._fetcher = MemberFetcher(self.archive, self.members,
                                          workers=min(self.workers or WORKERS, WORKERS),
                                          blobs=self.blobs)
            self._pid = os.getpid()
            self._wanted = 0
        return self._fetcher

    def find_cached(self) -> int:
        """Take every member already in the cache (one ``stat`` each); returns how many."""
        found = 0
        for i, m in enumerate(self.members):
            path = self.archive.cached_path(m)
            if path is not None:
                self._paths[i] = str(path)
                found += 1
        self._resolved = found
        return found

    def prefetch(self, indices: Sequence[int] | range) -> None:
        """Read these members now, ahead of what is read ahead (a batch being made)."""
        self._pool().want((self.members[i] for i in indices if self._paths[i] is None), now=True)

    def start_all(self) -> None:
        with self._lock:
            self._asked = len(self.files)
        self._read_ahead()

    def _read_ahead(self) -> None:
        with self._lock:
            limit = min(len(self.files), self._asked + self.lookahead)
            start, self._wanted = self._wanted, max(self._wanted, limit)
        if limit > start:
            self._pool().want(self.members[i] for i in range(start, limit)
                              if self._paths[i] is None)

    def local(self, index: int) -> str | None:
        """The cache path of file ``index`` (None when skipped with ``on_error="skip"``).

        Raises:
            BrokenImageError: not a readable image (naming the archive path and member).
            IntegrityError, UnknownFormatError, UnsafeArchiveError, TransferError: reading
                it failed (the message names the archive and the member).
        """
        path = self._paths[index]
        if path is not None and os.path.exists(path):
            return path
        if index in self._bad:
            return None
        with self._lock:
            self._asked = max(self._asked, index + 1)
        self._read_ahead()

        def read() -> str:
            got = str(self._pool().path(self.members[index]))
            problem = image_problem(got) if self.check_images else None
            if problem:
                raise BrokenImageError(f"{self.files[index].path}: {problem}")
            return got

        got = self._read(index, read)
        if got is not None:
            self._record(index, got)
        return got

    def _read(self, index: int, read: Callable[[], _T]) -> _T | None:
        """``read()`` for member ``index`` under the feeder's rules: Ctrl-C stops the reads, a
        stopped feeder says how to resume, any other failure is ``_failed`` (raised, or
        skipped: None)."""
        try:
            return read()
        except KeyboardInterrupt:
            self.stop()
            raise
        except FetchStopped:
            raise
        except Exception as exc:
            if self._stopped.is_set():
                raise FetchStopped(f"{self.files[index].path}: not read, the feeder was stopped "
                                   "(an interrupt); ask again to resume") from exc
            self._failed(index, exc)
            return None

    def member_bytes(self, index: int) -> bytes | None:
        """Member ``index``'s decoded bytes (None when skipped with ``on_error="skip"``): from
        its own cache file when one is there, else from its block's cache file (the block read
        by range first when needed; see ``to_dataset``).

        Raises:
            BrokenImageError, IntegrityError, UnknownFormatError, UnsafeArchiveError,
            TransferError: as ``local``.
        """
        if index in self._bad:
            return None
        member, path = self.members[index], self._paths[index]
        with self._lock:
            self._asked = max(self._asked, index + 1)

        def read() -> bytes:
            data = None
            if path is not None:
                try:
                    with open(path, "rb") as fh:
                        data = fh.read()
                except OSError:
                    data = None
            if data is None:
                self._read_ahead()
                data = self.archive.member_bytes(member, self._pool().blob(member))
            if self.check_images:
                from .member_bytes import bytes_problem

                problem = bytes_problem(data)
                if problem:
                    raise BrokenImageError(f"{self.files[index].path}: {problem}")
            return data

        data = self._read(index, read)
        if data is not None:
            with self._lock:
                self._delivered.add(index)
        return data

    def pending(self) -> bool:
        """Whether some member is still to be read (for the interrupt watch)."""
        if not self.blobs:
            return super().pending()
        return len(self._delivered) + len(self._bad) < len(self.files)

    def to_dataset(self, labels: Any, **options: Any) -> Any:
        """The tf.data element stream of these members: their bytes, read by coalesced ranges
        ahead of use into one cache file per block (no file per member), decoded by TensorFlow
        (``.member_bytes.bytes_to_dataset``)."""
        from .interrupts import watch_interrupts
        from .member_bytes import batch_reader, bytes_to_dataset

        if not self.blobs:
            self.stop()  # a fetcher made for member files: the next one reads blocks
            self.blobs = True
        checked = self.on_error == "skip" and all(p is not None for p in self._paths)
        if not all(p is not None for p in self._paths):
            self._read_ahead()  # the first blocks are read while TensorFlow sets up
        ds = bytes_to_dataset(len(self.files), labels, batch_reader(self.member_bytes),
                              checked=checked, **options)
        if self.pending():  # Ctrl-C stops the reads while TensorFlow's iterator waits
            watch_interrupts(self)
        ds._colabmodels_feeder = self
        ds._colabmodels_paths = None
        return ds

    def stop(self) -> None:
        """Stop reading: blocks not started are dropped, and whoever waits is told so. Asking
        for a member afterwards starts again (what was read stays in the cache)."""
        self._stopped.set()
        with self._stopping:  # a second stop (Ctrl-C's other thread) waits for this close
            with self._lock:
                fetcher, self._fetcher = self._fetcher, None
                self._wanted = 0
            if fetcher is not None and self._pid == os.getpid():
                fetcher.close()
