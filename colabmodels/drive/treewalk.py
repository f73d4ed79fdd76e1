"""The Drive requests of a tree walk: children with the extra fields a dataset needs, a
shortcut's target, and the two ways of telling which folders of a remembered listing changed.

``TreeRequests`` counts every request it makes (the walk reports them). The walk itself
(folders in parallel, the remembered listing, local names) is source-neutral and lives in
``colabmodels.tree``; it calls these for Drive folders.

- ``TreeRequests.children``: every untrashed child of a folder as a v2 resource, paged,
  with ``thumbnailLink``, ``imageMediaMetadata`` and ``shortcutDetails``;
- ``TreeRequests.start_token``, ``TreeRequests.changed_in_feed``: Drive's change feed
  (``changes.getStartPageToken``/``changes.list``); ``ask_start_token_early`` asks for the
  position while the caller still resolves the folder's path, one round trip saved;
- ``TreeRequests.changed_since``: where an endpoint has no change feed, one query per
  ``FOLDERS_PER_QUERY`` folders for anything modified since a time.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from . import files
from .files import Executes
from .wire import FILE_FIELDS, quote_q

__all__ = ["EARLY_TOKEN_MAX_AGE_S", "EXTRA_FIELDS", "FOLDERS_PER_QUERY", "TreeRequests",
           "ask_start_token_early"]

logger = logging.getLogger("colabmodels.drive")

EXTRA_FIELDS = "thumbnailLink,imageMediaMetadata(width,height,rotation),shortcutDetails"
"""What a tree listing asks for beyond ``FILE_FIELDS``."""
FOLDERS_PER_QUERY = 40
"""Folders checked by one modified-since query."""
EARLY_TOKEN_MAX_AGE_S = 30.0
"""How long a change-feed position asked for ahead of a walk waits for it; an older one is
not used (it would still be right, but the next check would read more of the feed)."""

Listing = dict[str, list[dict[str, Any]]]
"""A remembered listing: folder id -> its children as v2 resources."""


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


def _ask_start_token(session: Executes) -> dict[str, Any]:
    return session.execute(lambda s: s.changes().getStartPageToken(supportsAllDrives=True),
                           what="reading the change feed position")


_early: weakref.WeakKeyDictionary[Any, tuple[float, Future[dict[str, Any]]]] = \
    weakref.WeakKeyDictionary()
_early_lock = threading.Lock()


def ask_start_token_early(session: Executes) -> None:
    """Ask for Drive's change-feed position now, on a thread of its own, for the walk of a
    folder that the caller is about to resolve (``TreeRequests.start_token`` takes it).

    Any position taken before a folder is listed is right for that listing: the feed then
    names every later change (and perhaps a few earlier ones, which only cost a look). So it
    can be asked for in parallel with the path's look-ups instead of after them, and the
    listing waits for the answer (in practice already there) before it starts.
    """
    answer: Future[dict[str, Any]] = Future()

    def run() -> None:
        try:
            answer.set_result(_ask_start_token(session))
        except BaseException as e:  # handed to the walk, which decides
            answer.set_exception(e)

    with _early_lock:
        _early[session] = (time.monotonic(), answer)
    threading.Thread(target=run, daemon=True, name="colabmodels-feed-position").start()


def _take_early(session: Executes) -> Future[dict[str, Any]] | None:
    """The position asked for ahead of this walk, if it is recent (taken once)."""
    with _early_lock:
        early = _early.pop(session, None)
    if early is None or time.monotonic() - early[0] > EARLY_TOKEN_MAX_AGE_S:
        return None
    return early[1]


class TreeRequests:
    """The Drive requests of one walk, counted in ``requests``."""

    def __init__(self, session: Executes) -> None:
        self.session = session
        self.requests = 0
        self.touched: set[str] = set()
        """Folders of a remembered listing that the change feed names themselves (renamed,
        moved, trashed, their metadata changed), filled by ``changed_in_feed``."""
        self.on_page: Callable[[str, list[dict[str, Any]]], None] | None = None
        """Called with (folder id, items) as each page of ``children`` arrives."""
        self._lock = threading.Lock()

    def _count(self, n: int = 1) -> None:
        with self._lock:
            self.requests += n

    def children(self, folder_id: str, what: str) -> list[dict[str, Any]]:
        """Every untrashed child of ``folder_id`` (paged), with ``EXTRA_FIELDS``."""
        items: list[dict[str, Any]] = []
        for page in files.children_pages(self.session, folder_id,
                                         item_fields=f"{FILE_FIELDS},{EXTRA_FIELDS}",
                                         what=f"listing {what}"):
            self._count()
            items.extend(page)
            if self.on_page is not None:
                self.on_page(folder_id, page)
        return items

    def get(self, file_id: str, what: str) -> dict[str, Any]:
        """One file (a shortcut's target) with ``EXTRA_FIELDS``."""
        self._count()
        return files.get(self.session, file_id, fields=f"{FILE_FIELDS},{EXTRA_FIELDS}",
                         what=f"reading {what}")

    def start_token(self) -> str | None:
        """Drive's change-feed position now, or as asked for just before by
        ``ask_start_token_early`` (None when the endpoint has no change feed)."""
        early = _take_early(self.session)
        try:
            found = early.result() if early is not None else _ask_start_token(self.session)
        except Exception as e:  # an endpoint without changes: fall back to a modified-since query
            logger.debug("no change feed: %s", e)
            return None
        self._count()
        return found.get("startPageToken")

    def changed_in_feed(self, raw: Listing, token: str | None) -> tuple[set[str] | None, str | None]:
        """Folders of a remembered listing touched by a change since ``token`` (Drive's change
        feed), and the feed position after the changes read (``newStartPageToken`` of the last
        page).

        A change counts when the file is in one of the folders now, or was in one of them when
        the listing was taken (moved away, trashed, deleted for good). ``(None, None)`` when
        the feed cannot be read.
        """
        if not token:
            return None, None
        where: dict[str, set[str]] = {}
        for fid, items in raw.items():
            for item in items:
                where.setdefault(item["id"], set()).add(fid)
        dirty: set[str] = set()
        page_token: str | None = token
        new_token: str | None = None
        try:
            while page_token:
                def one_page(s: Any, t: str = page_token) -> Any:
                    return s.changes().list(
                        pageToken=t, maxResults=1000, includeDeleted=True, supportsAllDrives=True,
                        includeItemsFromAllDrives=True,
                        fields="nextPageToken,newStartPageToken,items(fileId,deleted,"
                               "file(id,parents(id),labels(trashed)))")

                page = self.session.execute(one_page, what="reading the change feed")
                self._count()
                for change in page.get("items", []):
                    dirty |= where.get(change.get("fileId", ""), set())
                    if change.get("fileId") in raw:
                        self.touched.add(change["fileId"])
                    parents = ((change.get("file") or {}).get("parents")) or []
                    dirty |= {p.get("id") for p in parents if p.get("id") in raw}
                page_token = page.get("nextPageToken")
                new_token = page.get("newStartPageToken") or new_token
        except Exception as e:
            logger.debug("change feed unreadable, checking by query instead: %s", e)
            return None, None
        return dirty, new_token

    def changed_since(self, raw: Listing, since: float) -> set[str]:
        """Folders of a remembered listing in which something was added or modified since
        ``since``.

        One query per ``FOLDERS_PER_QUERY`` folders (in parallel). An item that the
        remembered listing already has with the same modifiedDate is no change (the caller
        looks back a few minutes to allow for clock skew). Files deleted for good leave no
        trace in this query; a dataset that lost files is noticed when the walk is refreshed.
        """
        known: dict[str, tuple[str, str | None]] = {}
        for fid, items in raw.items():
            for item in items:
                known[f"{fid}/{item['id']}"] = (item.get("modifiedDate", ""), item.get("title"))
        ids = sorted(raw)
        groups = [ids[i:i + FOLDERS_PER_QUERY] for i in range(0, len(ids), FOLDERS_PER_QUERY)]

        def one(group: list[str]) -> set[str]:
            parents = " or ".join(f"{quote_q(g)} in parents" for g in group)
            q = f"modifiedDate > '{_rfc3339(since)}' and ({parents})"
            dirty: set[str] = set()
            for page in files.query_pages(
                    self.session, q, what="checking a remembered listing",
                    item_fields="id,title,modifiedDate,parents(id),labels(trashed)"):
                self._count()
                for item in page.get("items", []):
                    trashed = (item.get("labels") or {}).get("trashed", False)
                    for parent in item.get("parents") or []:
                        pid = parent.get("id")
                        if pid not in raw:
                            continue
                        seen = known.get(f"{pid}/{item['id']}")
                        if trashed or seen != (item.get("modifiedDate", ""), item.get("title")):
                            dirty.add(pid)
            return dirty

        if not groups:
            return set()
        with ThreadPoolExecutor(max_workers=min(8, len(groups))) as pool:
            return set().union(*pool.map(one, groups))
