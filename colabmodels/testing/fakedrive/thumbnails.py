"""Thumbnails of image files: ``thumbnailLink`` and the path that serves it.

Drive gives image files a ``thumbnailLink`` on googleusercontent.com ending in
``=s220`` (a 220-pixel box); clients change the suffix for other sizes
(``=s800``, ``=w400-h300``). The emulator's link is
``{base}thumbnail/{fileId}/{revision}=s220``. It serves a real image that fits
the box (see ``.images.make_thumbnail``) to a request with the bearer token
of a user who can read the file, or to anyone when the file is shared with
anyone with the link; others get 404, as from googleusercontent.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from .errors import ApiError
from .handlers import ApiMixin
from .images import make_thumbnail
from .server import Request, Response

if TYPE_CHECKING:
    from .store import FileRecord

__all__ = ["THUMBNAIL_PREFIX", "ThumbnailsApi", "has_thumbnail"]

THUMBNAIL_PREFIX = "/thumbnail/"
_PATH = re.compile(r"^/thumbnail/(?P<id>[A-Za-z0-9_-]+)/(?P<rev>\d+)(?:=(?P<spec>[a-z0-9-]*))?$")
_SPEC = re.compile(r"^(?:s(?P<s>\d+)|w(?P<w>\d+)(?:-h(?P<h>\d+))?|h(?P<h2>\d+))(?:-.*)?$")
_MAX_BOX = 1600
_CACHE_SIZE = 512


def has_thumbnail(rec: FileRecord) -> bool:
    """True when Drive would make a thumbnail: an image file whose header parsed."""
    return rec.image is not None and rec.has_blob and rec.mime_type.startswith("image/")


def thumbnail_link(base_url: str, rec: FileRecord) -> str:
    """The ``thumbnailLink`` of ``rec`` (which must have a thumbnail)."""
    rev = rec.revisions[-1]["n"] if rec.revisions else 0
    return f"{base_url}thumbnail/{rec.id}/{rev}=s220"


def _box(spec: str | None) -> int:
    if not spec:
        return 220
    m = _SPEC.match(spec)
    if not m:
        return 220
    sizes = [int(v) for v in (m.group("s"), m.group("w"), m.group("h"), m.group("h2")) if v]
    return max(1, min(_MAX_BOX, max(sizes)))


class ThumbnailsApi(ApiMixin):
    """``GET /thumbnail/ID/REV=sN``."""

    _thumb_lock = threading.Lock()
    _thumb_cache: OrderedDict[tuple[str, str, int], tuple[bytes, str]]

    def thumbnail(self, req: Request) -> Response:
        """Serve the thumbnail of an image file."""
        m = _PATH.match(req.path)
        if not m or req.method not in ("GET", "HEAD"):
            return _not_found()
        try:
            email = self._optional_user(req)
            rec = self._visible_record(m.group("id"), email)
        except ApiError as e:
            if e.code == 401:
                raise
            return _not_found()
        if not has_thumbnail(rec):
            return _not_found()
        box = _box(m.group("spec"))
        head = rec.revisions[-1]["id"] if rec.revisions else ""
        key = (rec.id, head, box)
        with self._thumb_lock:
            if not hasattr(self, "_thumb_cache"):
                self._thumb_cache = OrderedDict()
            cached = self._thumb_cache.get(key)
        if cached is None:
            made = make_thumbnail(self.store.blob_path(rec), box)
            if made is None:
                return _not_found()
            cached = made
            with self._thumb_lock:
                self._thumb_cache[key] = cached
                while len(self._thumb_cache) > _CACHE_SIZE:
                    self._thumb_cache.popitem(last=False)
        data, mime = cached
        return Response(200, [("Content-Type", mime), ("Cache-Control", "private, max-age=86400")], data)


def _not_found() -> Response:
    return Response(404, [("Content-Type", "text/html; charset=utf-8")], b"<html><body>Error 404 (Not Found)</body></html>")
