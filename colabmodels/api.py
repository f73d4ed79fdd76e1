"""The Python API: every face (magics, widgets, CLI) is one call into this module.

``fetch`` brings a file or folder into the cache; ``load_model`` fetches, sniffs and loads;
``save_model`` serialises and uploads a new version; ``versions`` lists them; ``mount`` signs
in to Drive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .bulk import fetch_tree
from .cachestore import CacheEntry, cache, identity_of, key_for, md5_of
from .drive import copies as drive_copies
from .drive import files as drive_files
from .drive.session import current_session, mount
from .errors import (
    AuthError,
    ColabModelsError,
    NotFoundError,
    OfflineError,
    QuotaError,
    UnknownFormatError,
    UntrustedFormatError,
)
from .httpstatus import DOWNLOAD_QUOTA_MESSAGE
from .progress import progress_bar
from .refs import Ref, parse_ref, strip_signing, strip_signing_in
from .storage import backend_for  # re-exported: choosing a backend belongs to storage
from .storage.drive import DriveBackend, stat_from_meta
from .tree import walk_tree

if TYPE_CHECKING:
    from .drive.session import DriveSession
    from .registry import SavedModelInfo
    from .storage.base import RemoteStat, StorageBackend

logger = logging.getLogger("colabmodels")

__all__ = [
    "CacheReport",
    "backend_for",
    "cache_clear",
    "cache_ls",
    "cache_prune",
    "cache_verify",
    "complete_drive_path",
    "fetch",
    "load_model",
    "mount",
    "save_model",
    "versions",
]


def _as_ref(ref: str | os.PathLike[str] | Ref) -> Ref:
    if isinstance(ref, Ref):
        return ref
    return parse_ref(os.fspath(ref))


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
        names.append(f"{ref.source}:{strip_signing(ref.path or '')}")
    return names


def _mounted(ref: Ref) -> Path | None:
    """A Drive path under a live Colab mount is read there directly."""
    session = current_session()
    if ref.source != "drive" or ref.path is None or session is None or not session.mountpoint:
        return None
    local = Path(session.mountpoint) / ref.path
    return local if local.exists() else None


def fetch(ref: str | os.PathLike[str] | Ref, *, offline: bool | None = None,
          progress: bool = True, extract: bool = False) -> Path:
    """Bring a file or folder into the cache and return its local path.

    Downloaded once: later calls cost one metadata request (none offline).

    Args:
        ref: anything ``parse_ref`` accepts (share link, id, Drive path,
            ``gs://``, ``s3://``, URL, local path; ``@vN``/``@latest`` for saved models).
        offline: serve from the cache only (default: ``COLABMODELS_OFFLINE``).
        progress: show a progress bar.
        extract: ``ref`` is a ``.zip``, ``.tar`` or ``.tar.gz``/``.tgz``: return the cached
            folder it extracts to (member names as the archive has them; unsafe names, links
            and ``__MACOSX/`` left out; see ``colabmodels.archives``). A second call sends
            no media request.

    Raises:
        RefError, NotFoundError, AuthError, QuotaError, TransferError, IntegrityError,
        OfflineError: see ``colabmodels.errors``.
    """
    if extract:
        return _fetch_extracted(_as_ref(ref), offline=config.offline(offline), progress=progress)
    path, _ = _fetch(_as_ref(ref), offline=config.offline(offline), progress=progress)
    return path


def _fetch_extracted(ref: Ref, *, offline: bool, progress: bool) -> Path:
    """``fetch(ref, extract=True)``: the archive extracted into one cache entry."""
    from .archives import extract_entry
    from .errors import RefError

    alias = "extracted:" + _shown(ref)
    if offline:
        entry = _remembered_entry(cache.recall(alias))
        if entry is None:
            raise OfflineError(f"{_shown(ref)} has not been extracted into the cache and offline "
                               "mode is on. Run once online (pass offline=False).")
        cache.touch(entry)
        return entry.path
    backend = backend_for(ref)
    stat = backend.stat(ref)
    if stat.is_dir:
        raise RefError(f"{_shown(ref)} is a folder; extract=True takes a .zip, .tar or .tar.gz")
    with progress_bar(stat.size, stat.name, enabled=progress) as report:
        entry = extract_entry(backend, stat, progress=report)
    cache.remember(alias, entry)
    return entry.path


def _fetch(ref: Ref, *, offline: bool, progress: bool) -> tuple[Path, CacheEntry | None]:
    if ref.version:
        from .registry import resolve_version

        info = resolve_version(ref, offline=offline)
        ref = replace(info.folder_ref, raw=ref.raw or info.ref)
    if ref.source == "local":
        assert ref.path is not None
        local = Path(ref.path)
        if not local.exists() and not local.with_name(local.name + ".index").exists():
            raise NotFoundError(f"{local} does not exist")
        return local, None
    mounted = _mounted(ref)
    if mounted is not None:
        return mounted, None
    aliases = _aliases(ref)
    remembered = next((r for r in map(cache.recall, aliases) if r), None)
    if offline:
        entry = _remembered_entry(remembered)
        if entry is None:
            raise OfflineError(
                f"{_shown(ref)} is not in the cache and offline mode is on. Run once online "
                "(unset COLABMODELS_OFFLINE or pass offline=False) to download it."
            )
        cache.touch(entry)
        return entry.path, entry
    try:
        return _fetch_online(ref, aliases, remembered, progress)
    except OfflineError as e:  # NetworkDownError: the source cannot be reached at all
        from .registry import down_reason, warn_stale

        entry = _remembered_entry(remembered)
        reason = down_reason(e)
        if entry is None:
            raise type(e)(
                f"{_shown(ref)} cannot be fetched ({reason}), and it is not in the cache, so "
                "there is nothing to fall back to (COLABMODELS_OFFLINE=1 would not help either). "
                "Try again once the network is back."
            ) from e
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.created))
        message = (f"{_shown(ref)}: the source cannot be reached ({reason}); using the copy "
                   f"cached on {when}, which may be stale")
        warn_stale(message)
        cache.touch(entry)
        return entry.path, entry


def _shown(ref: Ref) -> str:
    """``ref`` as the user typed it (signing query removed), for messages."""
    return strip_signing_in(ref.raw or str(ref))


def _remembered_entry(remembered: dict[str, Any] | None) -> CacheEntry | None:
    key = remembered.get("key") if isinstance(remembered, dict) else None
    return cache.entry(key) if isinstance(key, str) else None


def _fetch_online(ref: Ref, aliases: list[str], remembered: dict[str, Any] | None,
                  progress: bool) -> tuple[Path, CacheEntry]:
    backend = backend_for(ref)
    if ref.source == "drive" and ref.folder and isinstance(backend, DriveBackend) \
            and backend.session is None:
        raise AuthError(
            f"{_shown(ref)} is a folder link: listing a folder needs sign-in, even when it is "
            "shared \"anyone with the link\" (only single files load without signing in). "
            "Call cm.mount() (or %drive_mount) first, or load one file by its own link."
        )
    remembered_id = remembered.get("id") if isinstance(remembered, dict) else None
    if ref.source == "drive" and not ref.id and isinstance(remembered_id, str) and remembered_id:
        ref = replace(ref, id=remembered_id)  # one metadata request instead of a path walk
    stat = backend.stat(ref)
    entry = _fetch_tree(backend, stat, progress) if stat.is_dir else _fetch_file(backend, stat, progress)
    for alias in {*aliases, *_aliases(stat.ref)}:
        cache.remember(alias, entry, id=stat.ref.id)
    cache.touch(entry)
    return entry.path, entry


def _fetch_file(backend: StorageBackend, stat: RemoteStat, progress: bool) -> CacheEntry:
    from .transfer import download_to

    identity = identity_of(stat)
    key = key_for(identity)

    def fill(target: Path) -> None:
        partial = cache.partial_path(key)
        have = partial.stat().st_size if partial.exists() else 0
        cache.ensure_space(max(0, (stat.size or 0) - have))
        with progress_bar(stat.size, stat.name, enabled=progress) as report:
            try:
                download_to(backend, stat, partial, progress=report)
            except QuotaError as e:
                drive = backend if isinstance(backend, DriveBackend) else None
                if drive is None or drive.session is None or not stat.ref.id \
                        or DOWNLOAD_QUOTA_MESSAGE not in str(e):
                    raise
                _download_a_copy(drive, drive.session, stat, partial, report, e)
        os.replace(partial, target)

    md5 = md5_of(stat)
    entry, made = cache.get_or_store(key, identity=identity, source=strip_signing_in(str(stat.ref)),
                                     name=stat.name, kind="file", fill=fill,
                                     known_md5={"": md5} if md5 else None)
    if made:
        _enforce_cap(entry)
    return entry


def _download_a_copy(backend: DriveBackend, session: DriveSession, stat: RemoteStat,
                     partial: Path, report: Callable[[int], None], quota: QuotaError) -> None:
    """Drive refused to serve ``stat`` (download quota): copy it into the user's Drive (Drive
    copies the bytes itself, with no quota on copies), download the copy, delete it (also
    when the download fails).

    Raises:
        QuotaError: the copy could not be made (the message says both what happened and what
            to do).
    """
    from .transfer import download_to

    assert stat.ref.id is not None
    title = f"{stat.name} (temporary copy by colabmodels)"
    logger.warning("%s: Drive's download quota for this file is exceeded; downloading a "
                   "temporary copy made in your Drive (%r, deleted afterwards)", stat.name, title)
    try:
        made = drive_copies.copy_file(session, stat.ref.id, parent_id=session.root_id, title=title)
    except ColabModelsError as e:
        raise QuotaError(f"{quota} Copying it into your Drive did not work either ({e}): wait "
                         "up to 24 hours, or ask the owner for another copy.") from e
    try:
        copy = replace(stat_from_meta(Ref("drive", id=made["id"]), made), name=stat.name)
        partial.unlink(missing_ok=True)  # the parts on disk were the original's
        download_to(backend, copy, partial, progress=report)
    finally:
        try:
            drive_copies.delete_forever(session, made["id"])
        except ColabModelsError as e:
            logger.warning("could not delete the temporary copy %r (id %s) from your Drive: %s; "
                           "delete it by hand", title, made["id"], e)


def walk(backend: StorageBackend, stat: RemoteStat, prefix: str = "") -> Iterator[tuple[str, RemoteStat]]:
    """Every file below a folder, with its remote path relative to it (remote names, ``/``-joined).

    Folders are listed in parallel and, on Drive, the listing is remembered
    (``colabmodels.tree.walk_tree``).
    """
    for node in walk_tree(backend, stat).file_nodes():
        yield f"{prefix}{node.rel}", node.stat


def _fetch_tree(backend: StorageBackend, stat: RemoteStat, progress: bool) -> CacheEntry:
    """A folder model (SavedModel, gensim with sidecars, sharded checkpoint) as one entry.

    Many files in flight, one cache entry per file, the folder assembled from links to them
    (``colabmodels.bulk.fetch_tree``).
    """
    return fetch_tree(backend, stat, progress=progress)


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
            ``REF@v3`` / ``REF@latest`` for versions saved with ``save_model``.
        framework: force a framework (``"keras"``, ``"torch"``, ``"tensorflow"``, ``"gensim"``...).
        arch: a dotted path (``"torchvision.models.vgg16"``, ``"pkg.mod:Net"``) or a callable
            that builds the model a state dict is loaded into. The ``arch`` a saved version's
            ``manifest.json`` names is never imported on its own: pass it here (the message
            says which), or ``trust=True``, unless the version is your own save (below).
        trust: allow formats that execute code when loaded (pickled models, TorchScript,
            gensim pickles, SavedModel graphs, Lambda layers). Only for files you trust.
            A saved version (``REF@vN``) on Drive whose files Drive reports as owned *and* last
            modified by the signed-in user is your own save and loads as if ``trust=True``
            (its pickles and its manifest's ``arch`` included); anything else, another user's
            files among them, or offline (Drive cannot be asked), still needs ``trust=True``.
        map_location: torch device for tensors (CPU by default).
        offline: serve from the cache only.
        progress: show a progress bar while downloading.
        **loader_kwargs: passed to the framework's loader.

    Raises:
        UntrustedFormatError: the file would run code (or the version's manifest names an
            architecture to import) and ``trust`` is False.
        UnknownFormatError: the bytes are no model format we know.
        and the errors of ``fetch``.
    """
    from .formats import load_path

    parsed = _as_ref(ref)
    shown = _shown(parsed)
    is_offline = config.offline(offline)
    version = None
    target = parsed
    if parsed.version:
        from .registry import resolve_version

        version = resolve_version(parsed, offline=is_offline)
        target = replace(version.folder_ref, raw=parsed.raw or version.ref)
    try:
        path, entry = _fetch(target, offline=is_offline, progress=progress)
    except NotFoundError:
        # a tf.train.Checkpoint prefix (".../ckpt/model-1") names no object; its files do
        prefix = None if version is not None or is_offline else _checkpoint_files(target)
        if prefix is None:
            raise
        name, files = prefix
        fetched = {f: _fetch(ref, offline=False, progress=progress)[0] for f, ref in files.items()}
        from .formats.paths import linked_files

        with linked_files(fetched) as folder:
            logger.info("loading %s as a TensorFlow checkpoint (%d files)", shown, len(files))
            return load_path(folder / name, framework=framework, arch=arch, trust=trust,
                             map_location=map_location, source=shown, **loader_kwargs)
    with cache.in_use(entry) if entry is not None else contextlib.nullcontext():
        named_arch = None
        folder_path = path
        if version is not None:
            from .registry import model_path_in

            path, manifest = model_path_in(path, shown=shown)
            named_arch = manifest.get("arch") if isinstance(manifest.get("arch"), str) else None
        try:
            info = _sniff(path, entry, shown)
        except UnknownFormatError:
            unpacked = _model_in_zip(path)  # a plain zip holding a model (not a .keras file)
            if unpacked is None:
                raise
            path = unpacked
            info = _sniff(path, None, shown)
        own: list[bool] = []

        def own_save() -> bool:
            if not own:
                own.append(version is not None and not is_offline
                           and _is_own_save(version.folder_ref, entry, folder_path))
            return own[0]

        if arch is None and named_arch:
            if not (trust or own_save()):
                raise UntrustedFormatError(
                    f"{shown}: its manifest.json names the architecture {named_arch!r} to build "
                    "the model with. colabmodels never imports what a downloaded file names. If "
                    f"you trust it, pass arch={named_arch!r} (or trust=True); this version is "
                    "not known to be your own save.", would_run=[named_arch])
            arch = named_arch
        effective_trust = trust or (bool(info.executes_code) and own_save())
        if effective_trust and not trust:
            logger.info("%s is your own save (Drive: owned and last modified by you); loading "
                        "it without trust=True", shown)
        logger.info("loading %s as %s (%s)", shown, info.name, info.framework)
        sidecars = _gensim_sidecars(target, path, info, entry, offline=is_offline,
                                    progress=progress)
        if sidecars:  # a gensim main file alone: its sidecars come from the same folder
            from .formats.paths import linked_files

            with linked_files({path.name: path, **sidecars}) as folder:
                return load_path(folder / path.name, framework=framework, arch=arch,
                                 trust=effective_trust, map_location=map_location,
                                 source=shown, **loader_kwargs)
        return load_path(path, info=info, framework=framework, arch=arch, trust=effective_trust,
                         map_location=map_location, source=shown, **loader_kwargs)


def _model_in_zip(path: Path) -> Path | None:
    """A zip that is no model format itself, extracted into the cache: the folder that holds
    its model (single top folders descended into), or None when ``path`` is not a zip.

    What is in it is then sniffed by content and loaded under the usual trust rules."""
    import zipfile

    if not path.is_file() or not zipfile.is_zipfile(path):
        return None
    from .archives import extract_entry
    from .storage import get_backend

    local = get_backend("local")
    root = extract_entry(local, local.stat(Ref("local", path=str(path)))).path
    while True:
        visible = [c for c in root.iterdir() if not c.name.startswith(".")]
        if len(visible) != 1 or not visible[0].is_dir():
            return root
        root = visible[0]


def _folder_of(ref: Ref) -> tuple[Ref, str] | None:
    """The folder that holds ``ref`` and ``ref``'s name there (path-based Drive, GCS, S3)."""
    if ref.source not in ("drive", "gcs", "s3") or not ref.path or "/" not in ref.path:
        return None
    parent, _, name = ref.path.rpartition("/")
    if not parent or not name:
        return None
    return replace(ref, path=parent, id=None, version=None, folder=True, raw=parent), name


def _drive_parent(ref: Ref) -> Ref | None:
    """The folder of an id-only Drive ref (a share link), asked of Drive."""
    if ref.source != "drive" or not ref.id:
        return None
    backend = backend_for(ref)
    session = backend.session if isinstance(backend, DriveBackend) else None
    if session is None:
        return None
    parents = drive_files.parent_ids(session, ref.id, what=f"finding the folder of {_shown(ref)}")
    return Ref("drive", id=parents[0], folder=True) if parents else None


def _beside(ref: Ref, names: list[str]) -> dict[str, Ref]:
    """References to ``names`` in the folder that holds ``ref``."""
    found = _folder_of(ref)
    if found is not None:
        folder = found[0]
        return {n: folder.child(n) for n in names}
    parent = _drive_parent(ref)
    if parent is None:
        return {}
    wanted = set(names)
    children = {c.name: c.ref for c in backend_for(parent).list(parent) if c.name in wanted}
    return {n: children[n] for n in names if n in children}


def _gensim_sidecars(ref: Ref, path: Path, info: Any, entry: CacheEntry | None, *,
                     offline: bool, progress: bool) -> dict[str, Path]:
    """For a gensim ``.save()`` main file fetched alone: its sidecar files, fetched from the
    folder it came from ({} when it needs none, or is not a lone remote file)."""
    if info.framework != "gensim" or entry is None or entry.kind != "file" \
            or not info.details.get("missing_sidecars"):
        return {}
    from .formats.gensim_io import required_sidecars

    names = required_sidecars(path, name=path.name)
    if not names:
        return {}
    refs = _beside(ref, names) if not offline else {}
    if not offline and len(refs) < len(names):
        missing = [n for n in names if n not in refs]
        raise NotFoundError(
            f"{_shown(ref)} is a gensim model saved with sidecar files, and "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not beside it. Put the "
            "sidecars in the same folder, or load the whole folder.")
    if offline:
        found = _folder_of(ref)
        if found is None:
            return {}
        refs = {n: found[0].child(n) for n in names}
    return {n: _fetch(r, offline=offline, progress=progress)[0] for n, r in refs.items()}


def _checkpoint_files(ref: Ref) -> tuple[str, dict[str, Ref]] | None:
    """A missing ``ref`` that is a tf.train.Checkpoint prefix: its name and the references of
    its index and shards (None when it is not one)."""
    from .formats.tf_io import checkpoint_files

    found = _folder_of(ref)
    if found is None:
        return None
    folder, prefix = found
    try:
        names = [c.name for c in backend_for(folder).list(folder) if not c.is_dir]
    except (NotFoundError, OfflineError):
        return None
    if f"{prefix}.index" not in names:
        return None
    return prefix, {n: folder.child(n) for n in checkpoint_files(prefix, names)}


def _is_own_save(folder: Ref, entry: CacheEntry | None, local: Path) -> bool:
    """The version folder's files on Drive are all owned and last modified by the signed-in
    user, and the bytes about to be loaded are those files (their md5s match)."""
    from .registry import own_files

    mine = own_files(folder)
    if not mine:
        return False
    if entry is not None:
        loaded = {f.get("md5") for f in entry.files}
    else:  # read through a Colab mount: hash what is there
        from .transfer import file_md5

        loaded = {file_md5(p) for p in local.rglob("*") if p.is_file()} if local.is_dir() else set()
    return bool(loaded) and None not in loaded and loaded <= mine


_SNIFFED: dict[tuple[str, str], Any] = {}


def _sniff(path: Path, entry: CacheEntry | None, shown: str | None = None) -> Any:
    """sniff_format, remembered per cache entry: entries never change (content-addressed, and
    every hit re-checks sizes and mtimes), so a model loaded again skips the byte inspection."""
    from .formats import sniff_format

    if entry is None:
        return sniff_format(path, source=shown)
    key = (entry.key, str(path))
    info = _SNIFFED.get(key)
    if info is None:
        if len(_SNIFFED) > 1024:
            _SNIFFED.clear()
        info = _SNIFFED[key] = sniff_format(path, source=shown)
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


def versions(dest: str | os.PathLike[str] | Ref, *,
             offline: bool | None = None) -> list[SavedModelInfo]:
    """The complete versions saved under ``dest``, oldest first (unfinished ones are skipped).

    Offline (``offline=True`` or ``COLABMODELS_OFFLINE=1``), and when the network is down, the
    versions seen when they were last listed online are served (with a warning when the network
    is down). An empty list means ``dest`` is a folder with no saved version yet.

    Raises:
        NotFoundError: ``dest`` does not exist.
        RefError: ``dest`` is a file, not a model folder.
        OfflineError: offline and these versions were never listed online here.
    """
    from .registry import list_versions

    return list_versions(_as_ref(dest), offline=config.offline(offline))


# -- the cache, one call per action (``%cache`` and ``colabmodels cache`` show the result) -----

@dataclass
class CacheReport:
    """What a cache action did.

    Attributes:
        action: ``"ls"``, ``"verify"``, ``"prune"`` or ``"clear"``.
        root: the cache folder.
        entries: ls: every entry, most recently used first; verify: the bad ones, removed, each
            with ``extra["problem"]``; prune and clear: the removed ones.
        checked: how many entries verify hashed.
        left_bytes: the size of what is left.
    """

    action: str
    root: Path
    entries: list[CacheEntry] = field(default_factory=list)
    checked: int = 0
    left_bytes: int = 0


def cache_ls() -> CacheReport:
    """Every cache entry, most recently used first."""
    entries = cache.entries()
    return CacheReport("ls", cache.root, entries, 0, sum(e.size for e in entries))


def cache_verify() -> CacheReport:
    """Hash every cache entry; bad ones are removed (and fetched again on next use)."""
    checked = len(cache.entries())
    bad = cache.verify()
    return CacheReport("verify", cache.root, bad, checked, cache.total_bytes())


def cache_prune(max_bytes: int | None = None) -> CacheReport:
    """Evict least recently used entries down to ``max_bytes`` (default COLABMODELS_CACHE_MAX_BYTES)."""
    removed = cache.prune(max_bytes)
    return CacheReport("prune", cache.root, removed, 0, cache.total_bytes())


def cache_clear() -> CacheReport:
    """Remove every entry, alias and partial download."""
    entries = cache.entries()
    cache.clear()
    return CacheReport("clear", cache.root, entries, 0, 0)


# -- completion of Drive paths (the magics' Tab) ----------------------------------------------

def complete_drive_path(text: str, *, timeout: float = 1.5, limit: int = 500) -> list[str]:
    """What could follow ``text`` as a Drive path: ``"MyDrive/mo"`` -> ``["MyDrive/models/", ...]``.

    Folders end in ``/``. Lists only with an existing Drive session (it never signs in), gives
    up listing after ``timeout`` seconds with what has arrived, and never raises ([] instead).
    A path under a live Colab mount gives [] (the notebook's own file completion lists it).
    """
    import threading

    try:
        session = current_session()
        if session is None or not text:
            return []
        if "/" not in text:
            return ["MyDrive/"] if "MyDrive/".startswith(text) else []
        folder, _, prefix = text.rpartition("/")
        ref = parse_ref(folder or "/")
        if ref.source != "drive" or ref.path is None:
            return []
        if session.mountpoint and text.startswith(session.mountpoint):
            return []
        found: list[str] = []

        def collect() -> None:
            with contextlib.suppress(Exception):
                for child in backend_for(ref).list(ref):
                    if child.name.startswith(prefix):
                        found.append(f"{folder}/{child.name}" + ("/" if child.is_dir else ""))
                        if len(found) >= limit:
                            return

        worker = threading.Thread(target=collect, name="colabmodels-complete", daemon=True)
        worker.start()
        worker.join(timeout)
        return sorted(found[:limit])
    except Exception:
        return []
