"""Many files at once: a parallel, remembered tree listing and a many-in-flight fetch into the cache.

Two engines serve every folder-shaped read (``cm.fetch`` of a folder, the image datasets, the
dataset panel):

- :func:`walk_tree` lists a folder tree. Folders are listed in parallel (each one paged), and on
  Drive the result is remembered (in this process and on disk under the cache's ``listings/``)
  keyed by the root folder's id. A remembered tree is checked, not re-walked: Drive's change
  feed (``changes.list`` from the position saved with the listing) says which of its folders
  gained, lost or changed a file, and only those are listed again. Where the endpoint has no
  change feed, one query per 40 folders asks for anything modified in them since the listing
  (files deleted for good are then only noticed with ``refresh=True``).
- :class:`BulkFetcher` brings many files into the cache with many requests in flight (64 by
  default). Every file becomes its own cache entry keyed by its content identity (Drive: id +
  md5Checksum), exactly the entry ``cm.fetch`` of that file would use, so datasets, folder
  fetches and single-file fetches share what is already downloaded. Small files are streamed
  in one request each (md5 computed while they arrive); large ones go through the ranged,
  resuming transfer engine. Memory stays bounded: bytes go straight to disk.

Local names: every remote name goes through :func:`colabmodels.cachestore.unique_names`, so
hostile titles never escape the tree, safe names stay as the source has them, and two children
that would map to one name (Drive allows equal titles) both keep their own file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .cachestore import CacheEntry, cache, key_for, unique_names
from .errors import AuthError, NotFoundError
from .refs import Ref

if TYPE_CHECKING:
    from .storage.base import RemoteStat, StorageBackend

logger = logging.getLogger(__name__)

FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
GOOGLE_APPS_PREFIX = "application/vnd.google-apps."
LIST_WORKERS = 16
"""Folders listed at the same time."""
FETCH_WORKERS = 64
"""Files requested at the same time by :class:`BulkFetcher`."""
SMALL_FILE_BYTES = 4 * 1024 * 1024
"""Files up to this size are fetched in one request; larger ones in parallel ranged parts."""
MEMO_SKEW_S = 300.0
"""How far back a change check looks before the listing's time (clock skew, slow writers)."""
_FOLDERS_PER_QUERY = 40
_EXTRA_FIELDS = "thumbnailLink,imageMediaMetadata(width,height,rotation),shortcutDetails"


# -- the listing -------------------------------------------------------------------------------

@dataclass
class TreeNode:
    """One file or folder of a listed tree.

    Attributes:
        parts: remote names from the root (``("cats", "x.jpg")``); Drive titles as they are.
        local: the safe, distinct local relative path (``"cats/x.jpg"``).
        stat: what the source says about it (for a shortcut: about its target).
        info: extra Drive fields (``thumbnailLink``, ``imageMediaMetadata``...), if any.
        shortcut: the shortcut's own stat when this node was reached through a Drive shortcut.
        children: a folder's children (files and folders), sorted by remote name; None for files
            and for folder shortcuts that were not followed.
        problem: why this node cannot be read (a shortcut whose target is gone or not shared).
    """

    parts: tuple[str, ...]
    local: str
    stat: RemoteStat
    info: dict[str, Any] = field(default_factory=dict)
    shortcut: RemoteStat | None = None
    children: list[TreeNode] | None = None
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else self.stat.name

    @property
    def rel(self) -> str:
        return "/".join(self.parts)

    @property
    def is_dir(self) -> bool:
        return self.stat.is_dir

    @property
    def is_google_doc(self) -> bool:
        """A Google Docs/Sheets/Slides... file: it has no bytes to download, only exports."""
        mime = self.stat.mime or ""
        return (mime.startswith(GOOGLE_APPS_PREFIX) and not self.stat.is_dir
                and mime != SHORTCUT_MIME)

    def files(self) -> Iterator[TreeNode]:
        """Every file below this node (depth first, in name order)."""
        for child in self.children or ():
            if child.children is not None:
                yield from child.files()
            elif not child.is_dir:
                yield child


@dataclass
class ListingStats:
    """How a listing was obtained: requests made, folders listed, whether it was remembered."""

    requests: int = 0
    folders_listed: int = 0
    remembered: bool = False
    seconds: float = 0.0


@dataclass
class Tree:
    """A listed folder tree: its root node and how it was obtained."""

    root: TreeNode
    stats: ListingStats

    def files(self) -> list[TreeNode]:
        return list(self.root.files())


class _Lister:
    """Lists the children of one folder: Drive with extra fields, other sources via ``list``."""

    def __init__(self, backend: StorageBackend, stats: ListingStats) -> None:
        self.backend = backend
        self.stats = stats
        self._lock = threading.Lock()
        session = getattr(backend, "session", None)
        self.drive = getattr(backend, "source", "") == "drive" and session is not None

    def _count(self, n: int = 1) -> None:
        with self._lock:
            self.stats.requests += n

    def raw_children(self, folder_id: str, what: str) -> list[dict[str, Any]]:
        """Drive: every untrashed child of ``folder_id`` as a v2 resource (paged)."""
        from .storage.drive import _FIELDS

        session = self.backend.session  # type: ignore[attr-defined]
        q = f"'{folder_id}' in parents and trashed = false"
        fields = f"nextPageToken,items({_FIELDS},{_EXTRA_FIELDS})"
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            def one_page(s: Any, t: str | None = token) -> Any:
                return s.files().list(q=q, maxResults=1000, pageToken=t, supportsAllDrives=True,
                                      includeItemsFromAllDrives=True, fields=fields)

            page = session.execute(one_page, what=f"listing {what}")
            self._count()
            items.extend(page.get("items", []))
            token = page.get("nextPageToken")
            if not token:
                return items

    def raw_get(self, file_id: str, what: str) -> dict[str, Any]:
        from .storage.drive import _FIELDS

        session = self.backend.session  # type: ignore[attr-defined]
        self._count()
        return session.execute(
            lambda s: s.files().get(fileId=file_id, supportsAllDrives=True,
                                    fields=f"{_FIELDS},{_EXTRA_FIELDS}"),
            what=f"reading {what}")

    def stat_of(self, ref: Ref, item: dict[str, Any]) -> RemoteStat:
        return self.backend._stat_from(replace(ref, id=item["id"]), item)  # type: ignore[attr-defined]

    def children(self, node: TreeNode, raw: list[dict[str, Any]] | None) -> list[tuple[RemoteStat, dict[str, Any]]]:
        """``node``'s children as (stat, extra info); ``raw`` is a remembered Drive listing."""
        if not self.drive:
            found = list(self.backend.list(node.stat.ref))
            self._count()
            return [(c, {}) for c in found]
        assert raw is not None
        out = []
        for item in raw:
            child_ref = node.stat.ref.child(item["title"]) if node.stat.ref.path else Ref("drive")
            info: dict[str, Any] = {k: item[k] for k in ("thumbnailLink", "imageMediaMetadata",
                                                         "shortcutDetails") if k in item}
            out.append((self.stat_of(child_ref, item), info))
        return out


_MEMO: dict[str, dict[str, Any]] = {}
_MEMO_LOCK = threading.Lock()


def _memo_key(backend: StorageBackend, root: RemoteStat, follow_links: bool) -> str:
    """Who asked where: the endpoint, the account, the folder, and how links are followed."""
    session = getattr(backend, "session", None)
    endpoint = getattr(session, "endpoint", "")
    creds = getattr(session, "credentials", None)
    user = (getattr(creds, "service_account_email", None)  # known without a request
            or getattr(creds, "signer_email", None) or "")
    if not user and session is not None:
        try:
            user = session.user_email  # type: ignore[attr-defined]
        except Exception:  # the account is unknown: the key still separates endpoints
            user = ""
    return (f"{endpoint}|{user}|{root.ref.source}:{root.ref.id or root.ref.path}"
            f"|links={follow_links}|{cache.root}")


def _memo_path(key: str) -> Path:
    return cache.root / "listings" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def _memo_load(key: str) -> dict[str, Any] | None:
    with _MEMO_LOCK:
        found = _MEMO.get(key)
    if found is not None:
        return found
    try:
        data = json.loads(_memo_path(key).read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != key:
        return None
    with _MEMO_LOCK:
        _MEMO[key] = data
    return data


def _memo_save(key: str, data: dict[str, Any]) -> None:
    data["key"] = key
    with _MEMO_LOCK:
        _MEMO[key] = data
    path = _memo_path(key)
    try:
        cache.private_dir("listings")
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        cache.write_private(tmp, json.dumps(data, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache still works, it just lists again next time
        logger.info("could not remember the listing of %s: %s", key, e)


def forget_listings() -> None:
    """Forget every remembered listing (in this process and on disk)."""
    import shutil

    with _MEMO_LOCK:
        _MEMO.clear()
    shutil.rmtree(cache.root / "listings", ignore_errors=True)


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


def walk_tree(backend: StorageBackend, root: RemoteStat, *, follow_links: bool = False,
              remember: bool = True, refresh: bool = False,
              workers: int = LIST_WORKERS) -> Tree:
    """List the whole tree under the folder ``root``: folders in parallel, each one paged.

    Args:
        backend: the source's backend.
        root: the folder's stat (from ``backend.stat``).
        follow_links: descend into folders reached through Drive shortcuts (like
            ``os.walk(followlinks=True)``). Shortcuts directly in ``root`` are always followed
            (``os.walk`` of a symlinked top folder walks it), and shortcuts to files are always
            resolved to their target, the way ``os.walk`` lists symlinked files.
        remember: reuse and update the remembered listing (Drive only).
        refresh: ignore the remembered listing and walk everything again.
        workers: folders listed at the same time.

    Raises:
        NotFoundError, AuthError, TransferError: as listing raised them.
    """
    started = time.monotonic()
    stats = ListingStats()
    lister = _Lister(backend, stats)
    memo_key = _memo_key(backend, root, follow_links)
    use_memo = lister.drive and remember and root.ref.id is not None
    old = None if (refresh or not use_memo) else _memo_load(memo_key)
    taken_at = time.time()
    raw: dict[str, list[dict[str, Any]]] = {}  # folder id -> its children (Drive)
    dirty: set[str] | None = None
    token = None
    if old is not None:
        raw = {k: list(v) for k, v in old["folders"].items()}
        dirty, token = _changed_in_feed(lister, raw, old.get("changes_token"))
    elif use_memo:
        token = _start_token(lister)  # before listing: later changes show in the feed
    if old is not None:
        if dirty is None:  # no change feed: ask for anything modified since the listing
            dirty = _changed_folders(lister, raw, float(old["taken_at"]) - MEMO_SKEW_S)
        stats.remembered = not dirty
    root_node = TreeNode(parts=(), local="", stat=root, children=[])
    visited: set[str] = set()

    def expand(node: TreeNode) -> list[TreeNode]:
        """List ``node`` (or reuse its remembered listing) and return the folders to descend."""
        fid = node.stat.ref.id or node.stat.ref.path or ""
        with _MEMO_LOCK:
            if fid in visited:  # a shortcut cycle, or a folder reached twice
                node.children = []
                node.problem = "reached twice (a shortcut loop); listed once"
                return []
            visited.add(fid)
        items: list[dict[str, Any]] | None = None
        if lister.drive:
            assert node.stat.ref.id is not None
            if dirty is not None and fid in raw and fid not in dirty:
                items = raw[fid]
            else:
                items = lister.raw_children(node.stat.ref.id, node.stat.ref.path or fid)
                with _MEMO_LOCK:
                    raw[fid] = items
                    stats.folders_listed += 1
        else:
            with _MEMO_LOCK:
                stats.folders_listed += 1
        found = lister.children(node, items)
        locals_ = unique_names([(_child_key(s), s.name) for s, _ in found])
        kids: list[TreeNode] = []
        for child, info in found:
            kid = TreeNode(parts=(*node.parts, child.name),
                           local=f"{node.local}/{locals_[_child_key(child)]}".lstrip("/"),
                           stat=child, info=info)
            if child.mime == SHORTCUT_MIME:
                _resolve_shortcut(lister, kid)
            kids.append(kid)
        kids.sort(key=lambda k: (k.name, k.stat.ref.id or ""))
        node.children = kids
        descend = []
        for kid in kids:
            if kid.is_dir and kid.problem is None and (kid.shortcut is None or follow_links
                                                         or not node.parts):
                kid.children = []
                descend.append(kid)
        return descend

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="colabmodels-list") as pool:
        pending = {pool.submit(expand, root_node)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                for sub in fut.result():
                    pending.add(pool.submit(expand, sub))
    if use_memo and (old is None or dirty or len(raw) != len(old["folders"])):
        live = {n.stat.ref.id for n in _folders(root_node)}
        _memo_save(memo_key, {"taken_at": taken_at, "root": root.ref.id, "changes_token": token,
                              "folders": {k: v for k, v in raw.items() if k in live}})
    elif use_memo and old is not None and token and token != old.get("changes_token"):
        old["changes_token"] = token  # unchanged here; skip the changes elsewhere next time
        old["taken_at"] = taken_at
        _memo_save(memo_key, old)
    stats.seconds = time.monotonic() - started
    logger.info("listed %s: %d requests, %d folders listed%s", root.name, stats.requests,
                stats.folders_listed, " (remembered)" if stats.remembered else "")
    return Tree(root_node, stats)


def _child_key(stat: RemoteStat) -> str:
    return stat.ref.id or stat.name


def _folders(node: TreeNode) -> Iterator[TreeNode]:
    yield node
    for child in node.children or ():
        if child.children is not None:
            yield from _folders(child)


def _resolve_shortcut(lister: _Lister, node: TreeNode) -> None:
    """Point a shortcut node at its target (Drive's ``shortcutDetails.targetId``)."""
    details = node.info.get("shortcutDetails") or {}
    target = details.get("targetId")
    node.shortcut = node.stat
    if not target:
        node.problem = f"shortcut {node.rel} names no target"
        return
    try:
        item = lister.raw_get(target, f"the target of shortcut {node.rel}")
    except (NotFoundError, AuthError) as e:
        node.problem = (f"shortcut {node.rel} points to a file you cannot read ({e}); ask its "
                        "owner to share it with you")
        return
    parent_ref = node.stat.ref
    stat = lister.stat_of(replace(parent_ref, id=item["id"]), item)
    node.stat = replace(stat, ref=replace(stat.ref, path=parent_ref.path))
    node.info = {**node.info, **{k: item[k] for k in ("thumbnailLink", "imageMediaMetadata")
                                 if k in item}}


def _start_token(lister: _Lister) -> str | None:
    """Drive's change-feed position now (None when the endpoint has no change feed)."""
    session = lister.backend.session  # type: ignore[attr-defined]
    try:
        found = session.execute(lambda s: s.changes().getStartPageToken(supportsAllDrives=True),
                                what="reading the change feed position")
    except Exception as e:  # an endpoint without changes: fall back to a modified-since query
        logger.debug("no change feed: %s", e)
        return None
    lister._count()
    return found.get("startPageToken")


def _changed_in_feed(lister: _Lister, raw: dict[str, list[dict[str, Any]]],
                     token: str | None) -> tuple[set[str] | None, str | None]:
    """Folders of a remembered listing touched by a change since ``token`` (Drive's change feed),
    and the feed position after the changes read (``newStartPageToken`` of the last page).

    A change counts when the file is in one of the folders now, or was in one of them when the
    listing was taken (moved away, trashed, deleted for good). ``(None, None)`` when the feed
    cannot be read.
    """
    if not token:
        return None, None
    where: dict[str, set[str]] = {}
    for fid, items in raw.items():
        for item in items:
            where.setdefault(item["id"], set()).add(fid)
    session = lister.backend.session  # type: ignore[attr-defined]
    dirty: set[str] = set()
    page_token: str | None = token
    new_token: str | None = None
    try:
        while page_token:
            page = session.execute(
                lambda s, t=page_token: s.changes().list(
                    pageToken=t, maxResults=1000, includeDeleted=True, supportsAllDrives=True,
                    includeItemsFromAllDrives=True,
                    fields="nextPageToken,newStartPageToken,items(fileId,deleted,"
                           "file(id,parents(id),labels(trashed)))"),
                what="reading the change feed")
            lister._count()
            for change in page.get("items", []):
                dirty |= where.get(change.get("fileId", ""), set())
                parents = ((change.get("file") or {}).get("parents")) or []
                dirty |= {p.get("id") for p in parents if p.get("id") in raw}
            page_token = page.get("nextPageToken")
            new_token = page.get("newStartPageToken") or new_token
    except Exception as e:
        logger.debug("change feed unreadable, checking by query instead: %s", e)
        return None, None
    return dirty, new_token


def _changed_folders(lister: _Lister, raw: dict[str, list[dict[str, Any]]],
                     since: float) -> set[str]:
    """Folders of a remembered listing in which something was added or modified since ``since``.

    One query per ``_FOLDERS_PER_QUERY`` folders (in parallel). An item that the remembered
    listing already has with the same modifiedDate is no change (the query looks back a few
    minutes to allow for clock skew). Files deleted for good leave no trace in this query; a
    dataset that lost files is noticed when ``refresh=True`` is passed.
    """
    known: dict[str, tuple[str, str | None]] = {}
    for fid, items in raw.items():
        for item in items:
            known[f"{fid}/{item['id']}"] = (item.get("modifiedDate", ""), item.get("title"))
    ids = sorted(raw)
    groups = [ids[i:i + _FOLDERS_PER_QUERY] for i in range(0, len(ids), _FOLDERS_PER_QUERY)]
    from .drive.session import quote_q

    session = lister.backend.session  # type: ignore[attr-defined]

    def one(group: list[str]) -> set[str]:
        parents = " or ".join(f"{quote_q(g)} in parents" for g in group)
        q = f"modifiedDate > '{_rfc3339(since)}' and ({parents})"
        dirty: set[str] = set()
        token = None
        while True:
            page = session.execute(
                lambda s, t=token: s.files().list(
                    q=q, maxResults=1000, pageToken=t, supportsAllDrives=True,
                    includeItemsFromAllDrives=True,
                    fields="nextPageToken,items(id,title,modifiedDate,parents(id),labels(trashed))"),
                what="checking a remembered listing")
            lister._count()
            for item in page.get("items", []):
                trashed = (item.get("labels") or {}).get("trashed", False)
                for parent in item.get("parents") or []:
                    pid = parent.get("id")
                    if pid not in raw:
                        continue
                    seen = known.get(f"{pid}/{item['id']}")
                    if trashed or seen != (item.get("modifiedDate", ""), item.get("title")):
                        dirty.add(pid)
            token = page.get("nextPageToken")
            if not token:
                return dirty

    if not groups:
        return set()
    with ThreadPoolExecutor(max_workers=min(8, len(groups))) as pool:
        return set().union(*pool.map(one, groups))


# -- fetching many files ---------------------------------------------------------------------

def identity_of(stat: RemoteStat) -> str:
    """The cache identity of one file (the same one ``cm.fetch`` of that file uses)."""
    return stat.identity or f"{stat.ref}:size={stat.size}:modified={stat.modified}"


def md5_of(stat: RemoteStat) -> str | None:
    return stat.checksum[4:] if stat.checksum and stat.checksum.startswith("md5:") else None


def cached_path(stat: RemoteStat, *, root: Path | None = None) -> Path | None:
    """Where ``stat``'s file already sits in the cache, found without reading the entry.

    A fast check for many files at once (one ``stat`` call each): the entry's data file exists
    and has the size the source reports. :meth:`Cache.entry` does the full check (sizes and
    mtimes recorded at write) when the file is fetched through :func:`fetch_file_entry`.
    """
    from .cachestore import sanitize_name

    base = root if root is not None else cache.root
    path = os.path.join(base, "entries", key_for(identity_of(stat)), "data", sanitize_name(stat.name))
    try:
        size = os.stat(path).st_size
    except OSError:
        return None
    return Path(path) if stat.size is None or size == stat.size else None


def cached_paths(stats: list[RemoteStat]) -> list[Path | None]:
    """:func:`cached_path` for many files: one directory listing finds the entries that exist,
    and only their files are checked (size, and the name: a file renamed in Drive keeps its
    entry under the old name, so it is looked up the slow way). One ``stat`` each, on this
    thread: on a local disk that is a few microseconds, less than handing it to a pool."""
    from .cachestore import sanitize_name

    base = os.path.join(cache.root, "entries")
    try:
        present = set(os.listdir(base))
    except OSError:
        return [None] * len(stats)
    out: list[Path | None] = [None] * len(stats)
    join, stat_ = os.path.join, os.stat
    for i, stat in enumerate(stats):
        key = key_for(identity_of(stat))
        if key not in present:
            continue
        path = join(base, key, "data", sanitize_name(stat.name))
        try:
            ok = stat.size is None or stat_(path).st_size == stat.size
        except OSError:
            ok = False
        if ok:
            out[i] = Path(path)
    return out


def _download_small(backend: StorageBackend, stat: RemoteStat, dest: Path) -> str:
    """One request for the whole file, md5 computed as it arrives, written to ``dest``
    (created ``0600``); retried from zero. ``dest`` is removed if the file does not verify."""
    from .transfer import call_with_retries, verify_file

    def attempt() -> str:
        digest = hashlib.md5(usedforsecurity=False)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as fh:
            if stat.size != 0:
                for block in backend.open_range(stat.ref, 0, stat.size):
                    fh.write(block)
                    digest.update(block)
        return digest.hexdigest()

    try:
        md5 = call_with_retries(attempt, what=f"downloading {stat.ref.path or stat.name}")
        verify_file(dest, size=stat.size, checksum=stat.checksum, md5=md5)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return md5


def fetch_file_entry(backend: StorageBackend, stat: RemoteStat,
                     report: Callable[[int], None] | None = None) -> CacheEntry:
    """The cache entry of one file, downloading it when it is missing (one entry per file).

    The same key and entry as ``cm.fetch`` of that file; the key's cross-process lock is held
    while it is created.
    """
    return _file_entry(backend, stat, report)[0]


def _file_entry(backend: StorageBackend, stat: RemoteStat,
                report: Callable[[int], None] | None) -> tuple[CacheEntry, bool]:
    """``(entry, downloaded now)``."""
    key = key_for(identity_of(stat))
    entry = cache.entry(key)
    if entry is not None:
        return entry, False
    with cache.lock(key):
        entry = cache.entry(key)
        if entry is not None:
            return entry, False

        def fill(target: Path) -> None:
            if stat.size is not None and stat.size <= SMALL_FILE_BYTES:
                # Straight into the entry's staging folder (private, invisible until the
                # entry is renamed into place): a small file is fetched again from zero anyway.
                _download_small(backend, stat, target)
                if report:
                    report(stat.size)
                return
            from .transfer import download_to

            partial = cache.partial_path(key)  # a big file resumes from here after a crash
            download_to(backend, stat, partial, progress=report)
            os.replace(partial, target)

        md5 = md5_of(stat)
        return cache.store(key, identity=identity_of(stat), source=str(stat.ref), name=stat.name,
                           kind="file", fill=fill, known_md5={"": md5} if md5 else None), True


_FAST_BACKENDS: weakref.WeakKeyDictionary[Any, tuple[int, StorageBackend]] = weakref.WeakKeyDictionary()
_FAST_LOCK = threading.Lock()


def bulk_backend(backend: StorageBackend, connections: int) -> StorageBackend:
    """A backend whose connection pool holds ``connections`` (Drive keeps one per session)."""
    session = getattr(backend, "session", None)
    if getattr(backend, "source", "") != "drive" or session is None:
        return backend
    with _FAST_LOCK:
        found = _FAST_BACKENDS.get(session)
        if found is None or found[0] != os.getpid():  # a forked child never shares sockets
            from .storage.drive import DriveBackend

            found = _FAST_BACKENDS[session] = (os.getpid(),
                                               DriveBackend(session, connections=connections))
        return found[1]


class BulkFetcher:
    """Fetches many files into the cache, ``workers`` requests in flight.

    ``submit(stat)`` returns a future of the file's local path in the cache; the same file
    submitted twice is fetched once. Use as a context manager (or call :meth:`close`).
    """

    def __init__(self, backend: StorageBackend, *, workers: int = FETCH_WORKERS,
                 progress: Callable[[int], None] | None = None) -> None:
        self.backend = bulk_backend(backend, workers + 8)
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="colabmodels-bulk")
        self._futures: dict[str, Future[Path]] = {}
        self._lock = threading.Lock()
        self._progress = progress
        self.keys: set[str] = set()
        self.downloaded = 0

    def fetch(self, stat: RemoteStat) -> Path:
        """Fetch one file now, on the calling thread; its cache path."""
        entry, downloaded = _file_entry(self.backend, stat, self._progress)
        if downloaded:
            with self._lock:
                self.downloaded += 1
        elif self._progress and stat.size:
            self._progress(stat.size)
        return entry.path

    def submit(self, stat: RemoteStat) -> Future[Path]:
        key = key_for(identity_of(stat))
        with self._lock:
            fut = self._futures.get(key)
            if fut is None or (fut.done() and fut.exception() is not None):
                fut = self._futures[key] = self._pool.submit(self.fetch, stat)
                self.keys.add(key)
            return fut

    def run(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on one of the fetcher's workers (it may call :meth:`fetch`)."""
        return self._pool.submit(fn, *args)

    def forget(self, stat: RemoteStat) -> None:
        """Drop the finished future of ``stat`` (bounds memory on very long runs)."""
        with self._lock:
            self._futures.pop(key_for(identity_of(stat)), None)

    def fetch_all(self, stats: Iterable[RemoteStat]) -> list[Path]:
        """Every file's cache path, in order; the first failure is raised after the rest stop."""
        futures = [self.submit(s) for s in stats]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if config.cache_max_bytes() is not None:
            cache.prune(keep=self.keys)

    def __enter__(self) -> BulkFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- a folder as one cache entry (cm.fetch) ----------------------------------------------------

def fetch_tree(backend: StorageBackend, root: RemoteStat, *, progress: bool = True,
               workers: int = FETCH_WORKERS) -> CacheEntry:
    """A folder (SavedModel, gensim with sidecars, sharded checkpoint...) as one cache entry.

    The tree is listed with :func:`walk_tree` (remembered), each file is fetched into its own
    entry by :class:`BulkFetcher`, and the folder entry is assembled from hard links to them
    (a copy where links are not possible), so a folder that changed re-downloads only the
    files that changed. Google Docs (no bytes) and unreadable shortcuts are left out, with a
    warning.

    Raises:
        NotFoundError: the folder holds no files.
    """
    from .progress import progress_bar

    tree = walk_tree(backend, root)
    files = []
    for node in tree.files():
        if node.problem or node.is_google_doc:
            logger.warning("%s: left out of %s: %s", node.rel, root.name,
                           node.problem or "a Google Docs file has no bytes to download")
            continue
        files.append(node)
    if not files:
        raise NotFoundError(f"folder {root.ref.path or root.ref.id} is empty")
    digest = hashlib.sha256()
    for node in sorted(files, key=lambda n: n.local):
        digest.update(f"{node.local}\0{identity_of(node.stat)}\n".encode())
    identity = f"tree:{root.ref.source}:{digest.hexdigest()}"
    key = key_for(identity)
    entry = cache.entry(key)
    if entry is not None:
        return entry
    total = sum(n.stat.size or 0 for n in files)
    with progress_bar(total, root.name, enabled=progress) as report, \
            BulkFetcher(backend, workers=workers, progress=report) as fetcher:
        cache.ensure_space(total)
        paths = fetcher.fetch_all(n.stat for n in files)

    def create() -> CacheEntry:
        def fill(target: Path) -> None:
            for node, src in zip(files, paths, strict=True):
                dest = target / node.local
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, dest)
                except OSError:
                    import shutil

                    shutil.copy2(src, dest)

        known = {n.local: md5 for n in files if (md5 := md5_of(n.stat))}
        return cache.store(key, identity=identity, source=str(root.ref), name=root.name,
                           kind="tree", fill=fill, known_md5=known)

    entry = cache.entry(key)
    if entry is not None:
        return entry
    with cache.lock(key):
        entry = cache.entry(key)
        if entry is None:
            entry = create()
    if config.cache_max_bytes() is not None:
        cache.prune(keep={entry.key, *fetcher.keys})
    return entry


__all__ = ["BulkFetcher", "ListingStats", "Tree", "TreeNode", "fetch_file_entry", "fetch_tree",
           "forget_listings", "walk_tree"]
