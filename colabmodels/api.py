"""The Python API: every face (magics, widgets, CLI) is one call into this module.

``fetch`` brings a file or folder into the cache; ``load_model`` fetches, sniffs and loads;
``save_model`` serialises and uploads a new version; ``versions`` lists them; ``mount`` signs
in to Drive.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .cache import CacheEntry, cache, key_for, safe_relpath
from .errors import AuthError, NotFoundError, OfflineError
from .progress import progress_bar
from .refs import Ref, parse_ref
from .session import mount

if TYPE_CHECKING:
    from .registry import SavedModelInfo
    from .storage.base import RemoteStat, StorageBackend

logger = logging.getLogger("colabmodels")

__all__ = ["backend_for", "fetch", "load_model", "mount", "save_model", "versions"]


def _as_ref(ref: str | os.PathLike[str] | Ref) -> Ref:
    if isinstance(ref, Ref):
        return ref
    return parse_ref(os.fspath(ref))


def backend_for(ref: Ref, *, write: bool = False) -> StorageBackend:
    """The backend that reads ``ref``; Drive signs in on first use when it can.

    Drive without any credentials still reads files shared "anyone with the link" by id.
    """
    from .storage import get_backend

    if ref.source != "drive":
        return get_backend(ref.source)
    from .session import current_session
    from .storage.drive import DriveBackend

    session = current_session()
    if session is None:
        try:
            session = mount(interactive=False)
        except AuthError:
            if ref.id and not write:
                logger.info("not signed in: reading %s as a public link", ref.id)
                return DriveBackend(None)
            raise
    return session.backend


# -- fetch ------------------------------------------------------------------------------------

def _aliases(ref: Ref) -> list[str]:
    """Names under which the cache remembers what ``ref`` resolved to (for offline use)."""
    names = []
    if ref.source == "drive":
        if ref.id:
            names.append(f"drive-id:{ref.id}")
        if ref.path:
            names.append(f"drive-path:{ref.path}")
    else:
        names.append(f"{ref.source}:{ref.path}")
    return names


def _mounted(ref: Ref) -> Path | None:
    """A Drive path under a live Colab mount is read there directly."""
    from .session import current_session

    session = current_session()
    if ref.source != "drive" or ref.path is None or session is None or not session.mountpoint:
        return None
    local = Path(session.mountpoint) / ref.path
    return local if local.exists() else None


def fetch(ref: str | os.PathLike[str] | Ref, *, offline: bool | None = None,
          progress: bool = True) -> Path:
    """Bring a file or folder into the cache and return its local path.

    Downloaded once: later calls cost one metadata request (none offline).

    Args:
        ref: anything :func:`~colabmodels.refs.parse_ref` accepts (share link, id, Drive path,
            ``gs://``, ``s3://``, URL, local path; ``@vN``/``@latest`` for saved models).
        offline: serve from the cache only (default: ``COLABMODELS_OFFLINE``).
        progress: show a progress bar.

    Raises:
        RefError, NotFoundError, AuthError, QuotaError, TransferError, IntegrityError,
        OfflineError: see :mod:`colabmodels.errors`.
    """
    path, _ = _fetch(_as_ref(ref), offline=config.offline(offline), progress=progress)
    return path


def _fetch(ref: Ref, *, offline: bool, progress: bool) -> tuple[Path, CacheEntry | None]:
    if ref.version:
        from .registry import resolve_version

        info = resolve_version(ref, offline=offline)
        ref = info.folder_ref
    if ref.source == "local":
        assert ref.path is not None
        local = Path(ref.path)
        if not local.exists():
            raise NotFoundError(f"{local} does not exist")
        return local, None
    mounted = _mounted(ref)
    if mounted is not None:
        return mounted, None
    aliases = _aliases(ref)
    remembered = next((r for r in map(cache.recall, aliases) if r), None)
    if offline:
        entry = cache.entry(remembered["key"]) if remembered else None
        if entry is None:
            raise OfflineError(
                f"{ref.raw or ref} is not in the cache and offline mode is on. Run once online "
                "(unset COLABMODELS_OFFLINE or pass offline=False) to download it."
            )
        cache.touch(entry)
        return entry.path, entry
    backend = backend_for(ref)
    if remembered and ref.source == "drive" and not ref.id and remembered.get("id"):
        ref = replace(ref, id=remembered["id"])  # one metadata request instead of a path walk
    stat = backend.stat(ref)
    entry = _fetch_tree(backend, stat, progress) if stat.is_dir else _fetch_file(backend, stat, progress)
    for alias in {*aliases, *_aliases(stat.ref)}:
        cache.remember(alias, entry, id=stat.ref.id)
    cache.touch(entry)
    return entry.path, entry


def _identity(stat: RemoteStat) -> str:
    return stat.identity or f"{stat.ref}:size={stat.size}:modified={stat.modified}"


def _md5(stat: RemoteStat) -> str | None:
    return stat.checksum[4:] if stat.checksum and stat.checksum.startswith("md5:") else None


def _entry_once(key: str, create: Callable[[], CacheEntry]) -> CacheEntry:
    """The cache entry ``key``; if missing, ``create()`` makes it under the key's lock.

    The entry is looked up again once the lock is held: another process may have finished it
    while this one waited. The size cap applies after a new entry.
    """
    entry = cache.entry(key)
    if entry is not None:
        return entry
    with cache.lock(key):
        entry = cache.entry(key)
        if entry is not None:
            return entry
        entry = create()
    _enforce_cap(entry)
    return entry


def _fetch_file(backend: StorageBackend, stat: RemoteStat, progress: bool) -> CacheEntry:
    from .transfer import download_to

    key = key_for(_identity(stat))

    def create() -> CacheEntry:
        partial = cache.partial_path(key)
        have = partial.stat().st_size if partial.exists() else 0
        cache.ensure_space(max(0, (stat.size or 0) - have))

        def fill(target: Path) -> None:
            with progress_bar(stat.size, stat.name, enabled=progress) as report:
                download_to(backend, stat, partial, progress=report)
            os.replace(partial, target)

        md5 = _md5(stat)
        return cache.store(key, identity=_identity(stat), source=str(stat.ref), name=stat.name,
                           kind="file", fill=fill, known_md5={"": md5} if md5 else None)

    return _entry_once(key, create)


def walk(backend: StorageBackend, stat: RemoteStat, prefix: str = "") -> Iterator[tuple[str, RemoteStat]]:
    """Every file below a folder, with its path relative to it."""
    for child in backend.list(stat.ref):
        rel = f"{prefix}{child.name}"
        if child.is_dir:
            yield from walk(backend, child, rel + "/")
        else:
            yield rel, child


def _fetch_tree(backend: StorageBackend, stat: RemoteStat, progress: bool) -> CacheEntry:
    """A folder model (SavedModel, gensim with sidecars, sharded checkpoint) as one entry."""
    from .transfer import download_to

    files = sorted(walk(backend, stat), key=lambda item: item[0])
    if not files:
        raise NotFoundError(f"folder {stat.ref} is empty")
    digest = hashlib.sha256()
    for rel, child in files:
        digest.update(f"{rel}\0{_identity(child)}\n".encode())
    identity = f"tree:{stat.ref.source}:{digest.hexdigest()}"
    key = key_for(identity)
    total = sum(child.size or 0 for _, child in files)

    def create() -> CacheEntry:
        cache.ensure_space(total)
        staging = cache.partial_path(key).with_suffix(".tree")

        def one(item: tuple[str, RemoteStat], report: Callable[[int], None]) -> None:
            rel, child = item
            final = staging / safe_relpath(rel)
            if final.exists() and final.stat().st_size == child.size:
                report(child.size or 0)  # finished before an interruption
                return
            final.parent.mkdir(parents=True, exist_ok=True)
            part = final.with_name(final.name + ".incomplete")
            download_to(backend, child, part, progress=report)
            os.replace(part, final)

        def fill(target: Path) -> None:
            with progress_bar(total, stat.name, enabled=progress) as report, \
                    ThreadPoolExecutor(max_workers=4, thread_name_prefix="colabmodels-tree") as pool:
                list(pool.map(lambda item: one(item, report), files))
            os.replace(staging, target)

        known = {safe_relpath(rel).as_posix(): md5 for rel, c in files if (md5 := _md5(c))}
        return cache.store(key, identity=identity, source=str(stat.ref), name=stat.name,
                           kind="tree", fill=fill, known_md5=known)

    return _entry_once(key, create)


def _enforce_cap(entry: CacheEntry) -> None:
    if config.cache_max_bytes() is not None:
        cache.prune(keep={entry.key})


# -- load -------------------------------------------------------------------------------------

def load_model(ref: str | os.PathLike[str] | Ref, *, framework: str | None = None,
               arch: Any = None, trust: bool = False, map_location: Any = "cpu",
               offline: bool | None = None, progress: bool = True, **loader_kwargs: Any) -> Any:
    """Fetch a model (once; then from the cache), recognise its format and load it.

    Args:
        ref: share link, file id, Drive path, ``gs://``, ``s3://``, URL or local path;
            ``REF@v3`` / ``REF@latest`` for versions saved with :func:`save_model`.
        framework: force a framework (``"keras"``, ``"torch"``, ``"tensorflow"``, ``"gensim"``...).
        arch: a dotted path (``"torchvision.models.vgg16"``, ``"pkg.mod:Net"``) or a callable
            that builds the model a state dict is loaded into.
        trust: allow formats that execute code when loaded (pickled models, TorchScript,
            gensim pickles, SavedModel graphs, Lambda layers). Only for files you trust.
        map_location: torch device for tensors (CPU by default).
        offline: serve from the cache only.
        progress: show a progress bar while downloading.
        **loader_kwargs: passed to the framework's loader.

    Raises:
        UntrustedFormatError: the file would run code and ``trust`` is False.
        UnknownFormatError: the bytes are no model format we know.
        and the errors of :func:`fetch`.
    """
    from .formats import load_path

    parsed = _as_ref(ref)
    path, entry = _fetch(parsed, offline=config.offline(offline), progress=progress)
    with cache.in_use(entry) if entry is not None else contextlib.nullcontext():
        if parsed.version:
            from .registry import model_path_in

            path, manifest = model_path_in(path)
            arch = arch or manifest.get("arch")
        info = _sniff(path, entry)
        logger.info("loading %s as %s (%s)", path.name, info.name, info.framework)
        return load_path(path, info=info, framework=framework, arch=arch, trust=trust,
                         map_location=map_location, **loader_kwargs)


_SNIFFED: dict[tuple[str, str], Any] = {}


def _sniff(path: Path, entry: CacheEntry | None) -> Any:
    """sniff_format, remembered per cache entry: entries never change (content-addressed, and
    every hit re-checks sizes and mtimes), so a model loaded again skips the byte inspection."""
    from .formats import sniff_format

    if entry is None:
        return sniff_format(path)
    key = (entry.key, str(path))
    info = _SNIFFED.get(key)
    if info is None:
        if len(_SNIFFED) > 1024:
            _SNIFFED.clear()
        info = _SNIFFED[key] = sniff_format(path)
    return info


# -- save and versions ------------------------------------------------------------------------

def save_model(obj: Any, dest: str | os.PathLike[str] | Ref, *, version: int | str = "auto",
               metadata: dict[str, Any] | None = None, format: str | None = None,
               progress: bool = True) -> SavedModelInfo:
    """Save a model as a new version folder ``vN/`` under ``dest`` with a ``manifest.json``.

    Args:
        obj: a Keras model, torch module or state dict, gensim model, or tf.Module.
        dest: where versions live (``MyDrive/models/vgg16``, ``gs://b/models/x``, a folder).
        version: ``"auto"`` (next free number) or a number that must not exist yet.
        metadata: your key/values, recorded in the manifest and shown in Drive.
        format: override the format (e.g. ``"torch-pickle"``).
        progress: show upload progress.

    Returns:
        SavedModelInfo of the new version (``info.ref`` loads it back).
    """
    from .registry import save

    return save(obj, _as_ref(dest), version=version, metadata=metadata, format=format,
                progress=progress)


def versions(dest: str | os.PathLike[str] | Ref) -> list[SavedModelInfo]:
    """The complete versions saved under ``dest``, oldest first (unfinished ones are skipped)."""
    from .registry import list_versions

    return list_versions(_as_ref(dest))
