"""Folder trees listed in parallel and remembered: the walk under every folder-shaped read.

``walk_tree`` lists a folder tree (``cm.fetch`` of a folder, the image datasets, the
dataset panel). Folders are listed in parallel (each one paged), and on Drive the result is
remembered (in this process and on disk under the cache's ``listings/``) keyed by the root
folder's id. A remembered tree is checked, not re-walked: Drive's change feed (``changes.list``
from the position saved with the listing) says which of its folders gained, lost or changed a
file, and only those are listed again. Where the endpoint has no change feed, one query per 40
folders asks for anything modified in them since the listing (files deleted for good are then
only noticed with ``refresh=True``).

The walk is source-neutral: other sources are listed with their backend's ``list``. Drive's
requests (children with thumbnail and image fields, shortcut targets, the change feed, the
modified-since check) are ``colabmodels.drive.treewalk.TreeRequests``.

Local names: every remote name goes through ``colabmodels.cachestore.unique_names``, so
hostile titles never escape the tree, safe names stay as the source has them, and two children
that would map to one name (Drive allows equal titles) both keep their own file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .cachestore import cache, unique_names
from .drive.treewalk import TreeRequests, ask_start_token_early
from .drive.wire import SHORTCUT_MIME, is_google_doc
from .errors import AuthError, NotFoundError
from .refs import Ref
from .storage.base import RemoteStat
from .storage.drive import DriveBackend, stat_from_meta

if TYPE_CHECKING:
    from .storage.base import StorageBackend

__all__ = ["LIST_WORKERS", "MEMO_SKEW_S", "FeedAnswer", "ListingStats", "RememberedStat",
           "RememberedWalk", "Tree", "TreeNode", "forget_listings", "prepare_walk", "walk_remembered",
           "walk_tree"]

logger = logging.getLogger(__name__)

LIST_WORKERS = 16
"""Folders listed at the same time."""
MEMO_SKEW_S = 300.0
"""How far back a change check looks before the listing's time (clock skew, slow writers)."""


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
        return is_google_doc(self.stat.mime) and not self.stat.is_dir

    def file_nodes(self) -> Iterator[TreeNode]:
        """Every file below this node (depth first, in name order)."""
        for child in self.children or ():
            if child.children is not None:
                yield from child.file_nodes()
            elif not child.is_dir:
                yield child


@dataclass(frozen=True)
class RememberedStat(RemoteStat):
    """A Drive folder's stat remembered from an earlier process, not asked for again.

    ``walk_tree`` accepts it as the root and trusts it while Drive's change feed (which the
    walk of a remembered listing reads anyway) does not name the folder itself; otherwise
    (renamed, moved, trashed, no remembered listing, no feed) it asks Drive for the stat first.
    So a new kernel on a warm cache makes one metadata request, the change feed's.
    """


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

    def file_nodes(self) -> list[TreeNode]:
        return list(self.root.file_nodes())


class _Lister:
    """Lists the children of one folder: Drive with extra fields, other sources via ``list``."""

    def __init__(self, backend: StorageBackend) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._listed = 0  # list() calls of other sources
        session = backend.session if isinstance(backend, DriveBackend) else None
        self.drive: TreeRequests | None = TreeRequests(session) if session is not None else None

    @property
    def requests(self) -> int:
        return self._listed + (self.drive.requests if self.drive is not None else 0)

    def children(self, node: TreeNode, raw: list[dict[str, Any]] | None) -> list[tuple[RemoteStat, dict[str, Any]]]:
        """``node``'s children as (stat, extra info); ``raw`` is a remembered Drive listing."""
        if self.drive is None:
            found = list(self.backend.list(node.stat.ref))
            with self._lock:
                self._listed += 1
            return [(c, {}) for c in found]
        assert raw is not None
        out = []
        for item in raw:
            child_ref = node.stat.ref.child(item["title"]) if node.stat.ref.path else Ref("drive")
            info: dict[str, Any] = {k: item[k] for k in ("thumbnailLink", "imageMediaMetadata",
                                                         "shortcutDetails") if k in item}
            out.append((stat_from_meta(child_ref, item), info))
        return out


_NOT_REMEMBERED = frozenset({"parents", "labels"})
"""Fields of a listed item that the walk never reads (the parent is the folder listed, trashed
items are not listed): left out of the remembered listing, which a new kernel decodes whole
(``parents`` with its links was about 40% of it)."""

_MEMO: dict[str, dict[str, Any]] = {}
_MEMO_LOCK = threading.Lock()


def _memo_key(backend: StorageBackend, root: RemoteStat, follow_links: bool) -> str:
    """Who asked where: the endpoint, the account, the folder, and how links are followed."""
    session = backend.session if isinstance(backend, DriveBackend) else None
    endpoint = session.endpoint if session is not None else ""
    user = session.account() if session is not None else ""
    return (f"{endpoint}|{user}|{root.ref.source}:{root.ref.id or root.ref.path}"
            f"|links={follow_links}|{cache.root}")


def _memo_path(key: str) -> Path:
    return cache.root / "listings" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def _memo_load(key: str) -> dict[str, Any] | None:
    with _MEMO_LOCK:
        found = _MEMO.get(key)
    if found is not None:
        return found
    _wait_for_writes()
    try:
        data = json.loads(_memo_path(key).read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != key:
        return None
    with _MEMO_LOCK:
        _MEMO[key] = data
    return data


_WRITES: dict[Path, threading.Thread] = {}
"""Disk copies of remembered listings being written (a walk returns before its copy is on
disk: encoding a 20,000-file listing takes a good part of a second)."""


def _memo_save(key: str, data: dict[str, Any]) -> None:
    """Remember a listing in this process now, and on disk from a background thread (not a
    daemon: the interpreter finishes the write before it exits)."""
    data["key"] = key
    with _MEMO_LOCK:
        _MEMO[key] = data
    path = _memo_path(key)
    try:
        cache.private_dir("listings")
    except OSError as e:  # a read-only cache still works, it just lists again next time
        logger.info("could not remember the listing of %s: %s", key, e)
        return
    with _MEMO_LOCK:  # started under the lock: every thread in _WRITES can be joined
        writer = threading.Thread(target=_memo_write, args=(path, key, data, _WRITES.get(path)),
                                  name="colabmodels-listing-save")
        _WRITES[path] = writer
        writer.start()


def _memo_write(path: Path, key: str, data: dict[str, Any],
                earlier: threading.Thread | None) -> None:
    if earlier is not None:
        earlier.join()  # the newer copy lands last
    try:
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        cache.write_private(tmp, json.dumps(data, separators=(",", ":")))
        os.replace(tmp, path)
    except (OSError, RuntimeError, ValueError) as e:
        logger.info("could not remember the listing of %s: %s", key, e)
    finally:
        with _MEMO_LOCK:
            if _WRITES.get(path) is threading.current_thread():
                del _WRITES[path]


def _wait_for_writes() -> None:
    """Let the disk copies being written land (before reading or removing them)."""
    with _MEMO_LOCK:
        pending = list(_WRITES.values())
    for writer in pending:
        writer.join()


def forget_listings(*, on_disk: bool = True) -> None:
    """Forget every remembered listing: in this process, and on disk unless ``on_disk=False``
    (then the next walk reads the disk copy, as a new process would)."""
    _wait_for_writes()
    with _MEMO_LOCK:
        _MEMO.clear()
    if on_disk:
        shutil.rmtree(cache.root / "listings", ignore_errors=True)


def prepare_walk(backend: StorageBackend) -> None:
    """A first walk of a folder follows (no listing of it is remembered) and its path is being
    resolved now: on Drive, the change feed's position that the walk takes before listing is
    asked for at once, in parallel with the path's look-ups (``ask_start_token_early``)."""
    session = backend.session if isinstance(backend, DriveBackend) else None
    if session is not None:
        ask_start_token_early(session)


def walk_tree(backend: StorageBackend, root: RemoteStat, *, follow_links: bool = False,
              remember: bool = True, refresh: bool = False,
              workers: int = LIST_WORKERS,
              on_page: Callable[[str, list[dict[str, Any]]], None] | None = None,
              feed: FeedAnswer | None = None) -> Tree:
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
        on_page: Drive only: called with ``(folder id, items)`` for each page listed now (on a
            listing thread), so a caller can show counts before the walk ends.
        feed: the change feed's answer for the remembered listing, already read (by
            ``walk_remembered``); it is not asked for again while the remembered listing
            is still the one it answered for.

    Raises:
        NotFoundError, AuthError, TransferError: as listing raised them.
    """
    started = time.monotonic()
    stats = ListingStats()
    lister = _Lister(backend)
    drive = lister.drive
    if drive is not None:
        drive.on_page = on_page
    memo_key = _memo_key(backend, root, follow_links)
    use_memo = drive is not None and remember and root.ref.id is not None
    old = None if (refresh or not use_memo) else _memo_load(memo_key)
    taken_at = time.time()
    raw: dict[str, list[dict[str, Any]]] = {}  # folder id -> its children (Drive)
    dirty: set[str] | None = None
    token = None
    if drive is not None and old is not None:
        raw = {k: list(v) for k, v in old["folders"].items()}
        if feed is not None and feed.since == old.get("changes_token"):
            dirty, token = (set(feed.dirty) if feed.dirty is not None else None), feed.token
            drive.touched |= feed.touched
        else:
            dirty, token = drive.changed_in_feed(raw, old.get("changes_token"))
    elif drive is not None and use_memo:
        token = drive.start_token()  # before listing: later changes show in the feed
    if drive is not None and old is not None:
        if dirty is None:  # no change feed: ask for anything modified since the listing
            dirty = drive.changed_since(raw, float(old["taken_at"]) - MEMO_SKEW_S)
        stats.remembered = not dirty
    if isinstance(root, RememberedStat) and (
            old is None or drive is None or dirty is None or not token
            or root.ref.id in drive.touched):
        fresh = backend.stat(root.ref)  # the feed cannot vouch for it: ask once
        stats.requests += 1
        if not fresh.is_dir:
            raise NotFoundError(f"{root.ref.path or root.name} is no longer a folder")
        if fresh.ref.id != root.ref.id:  # another folder took the path: walk that one
            return walk_tree(backend, fresh, follow_links=follow_links, remember=remember,
                             refresh=refresh, workers=workers, on_page=on_page, feed=feed)
        root = fresh
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
        if drive is not None:
            assert node.stat.ref.id is not None
            if dirty is not None and fid in raw and fid not in dirty:
                items = raw[fid]
            else:
                items = [{k: v for k, v in item.items() if k not in _NOT_REMEMBERED}
                         for item in drive.children(node.stat.ref.id, node.stat.ref.path or fid)]
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
            if child.mime == SHORTCUT_MIME and drive is not None:
                _resolve_shortcut(drive, kid)
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

    def remembered(node: TreeNode) -> bool:
        """Whether ``node`` expands without a request (its listing is remembered and still
        good, and it holds no shortcut to resolve): then it is expanded on this thread."""
        fid = node.stat.ref.id or ""
        return (drive is not None and dirty is not None and fid in raw and fid not in dirty
                and not any(item.get("mimeType") == SHORTCUT_MIME for item in raw[fid]))

    # Folders that need requests are listed on a pool, started only when one does: a new
    # kernel on an unchanged remembered tree starts no thread for it.
    pool: ThreadPoolExecutor | None = None
    pending: set[Future[list[TreeNode]]] = set()
    ready = [root_node]
    try:
        while ready or pending:
            while ready:
                node = ready.pop()
                if remembered(node):
                    ready.extend(expand(node))
                    continue
                if pool is None:
                    pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                              thread_name_prefix="colabmodels-list")
                pending.add(pool.submit(expand, node))
            if pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    ready.extend(fut.result())
    finally:
        if pool is not None:  # on an error: nothing new starts, what runs ends first
            pool.shutdown(wait=True, cancel_futures=True)
    if use_memo and (old is None or dirty or len(raw) != len(old["folders"])):
        live = {n.stat.ref.id for n in _folders(root_node)}
        _memo_save(memo_key, {"taken_at": taken_at, "root": root.ref.id, "changes_token": token,
                              "folders": {k: v for k, v in raw.items() if k in live}})
    elif use_memo and old is not None and token and token != old.get("changes_token"):
        old["changes_token"] = token  # unchanged here; skip the changes elsewhere next time
        old["taken_at"] = taken_at
        _memo_save(memo_key, old)
    stats.requests += lister.requests
    stats.seconds = time.monotonic() - started
    logger.info("listed %s: %d requests, %d folders listed%s", root.name, stats.requests,
                stats.folders_listed, " (remembered)" if stats.remembered else "")
    return Tree(root_node, stats)


@dataclass(frozen=True)
class FeedAnswer:
    """What Drive's change feed said about a remembered listing (``TreeRequests.changed_in_feed``).

    Attributes:
        since: the feed position it was read from (the remembered listing's).
        dirty: its folders that gained, lost or changed a file (None: the feed could not be read).
        token: the feed position after the changes read.
        touched: its folders named by the feed themselves (renamed, moved, trashed).
    """

    since: str
    dirty: frozenset[str] | None
    token: str | None
    touched: frozenset[str]


class RememberedWalk(NamedTuple):
    """``walk_remembered``: the remembered tree now, and ``confirm()`` for the tree as of now."""

    tree: Tree
    confirm: Callable[[], Tree]


def walk_remembered(backend: StorageBackend, root: RemoteStat, *, follow_links: bool = False,
                    workers: int = LIST_WORKERS) -> RememberedWalk | None:
    """The remembered tree of a Drive folder, built at once, while the change feed is asked.

    For a caller with work to do on the listing before it must be sure of it (a new kernel
    on a warm cache): the tree is built from the remembered listing as if the feed named
    nothing (no request waited for), while one thread reads the feed. ``confirm()`` waits for
    that answer and returns ``tree`` itself when the feed names none of its folders nor the
    folder itself; otherwise it returns the tree walked now (``walk_tree``, which reuses the
    answer: the feed is read once). Whatever the caller built from ``tree`` is right only when
    ``confirm()`` returns ``tree``.

    Returns None where there is nothing to start from (no remembered listing with a feed
    position, not Drive); then call ``walk_tree``.
    """
    session = backend.session if isinstance(backend, DriveBackend) else None
    if session is None or root.ref.id is None:
        return None
    memo_key = _memo_key(backend, root, follow_links)
    old = _memo_load(memo_key)
    since = old.get("changes_token") if old is not None else None
    if old is None or not isinstance(since, str) or not since:
        return None
    drive = TreeRequests(session)
    folders = old["folders"]
    answer: Future[FeedAnswer] = Future()

    def ask() -> None:
        try:
            dirty, token = drive.changed_in_feed(folders, since)
            answer.set_result(FeedAnswer(since, None if dirty is None else frozenset(dirty),
                                         token, frozenset(drive.touched)))
        except BaseException as e:  # handed to confirm(), which raises it
            answer.set_exception(e)

    threading.Thread(target=ask, name="colabmodels-change-feed", daemon=True).start()
    assumed = FeedAnswer(since, frozenset(), since, frozenset())
    try:
        tree = walk_tree(backend, root, follow_links=follow_links, workers=workers, feed=assumed)
    except BaseException:
        answer.result()  # the thread's request ends before the error goes on
        raise
    settled: list[Tree] = []

    def confirm() -> Tree:
        if settled:
            return settled[0]
        said = answer.result()
        if said.dirty is None or said.dirty or root.ref.id in said.touched:
            settled.append(walk_tree(backend, root, follow_links=follow_links, workers=workers,
                                     feed=said))
            return settled[0]
        tree.stats.requests += drive.requests
        if said.token and said.token != since:  # unchanged here: skip those changes next time
            current = _memo_load(memo_key)
            if current is not None and current.get("changes_token") == since:
                current["changes_token"] = said.token
                current["taken_at"] = time.time()
                _memo_save(memo_key, current)
        settled.append(tree)
        return tree

    return RememberedWalk(tree, confirm)


def _child_key(stat: RemoteStat) -> str:
    return stat.ref.id or stat.name


def _folders(node: TreeNode) -> Iterator[TreeNode]:
    yield node
    for child in node.children or ():
        if child.children is not None:
            yield from _folders(child)


def _resolve_shortcut(drive: TreeRequests, node: TreeNode) -> None:
    """Point a shortcut node at its target (Drive's ``shortcutDetails.targetId``)."""
    details = node.info.get("shortcutDetails") or {}
    target = details.get("targetId")
    node.shortcut = node.stat
    if not target:
        node.problem = f"shortcut {node.rel} names no target"
        return
    try:
        item = drive.get(target, f"the target of shortcut {node.rel}")
    except (NotFoundError, AuthError) as e:
        node.problem = (f"shortcut {node.rel} points to a file you cannot read ({e}); ask its "
                        "owner to share it with you")
        return
    parent_ref = node.stat.ref
    stat = stat_from_meta(parent_ref, item)
    node.stat = replace(stat, ref=replace(stat.ref, path=parent_ref.path))
    node.info = {**node.info, **{k: item[k] for k in ("thumbnailLink", "imageMediaMetadata")
                                 if k in item}}
