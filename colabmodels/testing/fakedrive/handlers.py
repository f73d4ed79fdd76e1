"""What the Drive v2 method groups of the emulator share.

``DriveApp`` is assembled from mixins, one per resource
group (``.drives``, ``.permissions``, ``.revisions``, ``.changes``,
``.docs``, ``.thumbnails``). ``ApiMixin`` declares the state and the
helpers they use, which ``DriveApp`` provides; each mixin lists its
endpoints in ``routes()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import not_found
from .server import Request, Response

if TYPE_CHECKING:
    from .auth import AuthService
    from .resources import Renderer
    from .store import FileRecord, Store, User

__all__ = ["ApiMixin", "Handler", "RouteTable", "truthy"]

Handler = Callable[..., Response]
RouteTable = list[tuple[str, str, Handler]]


def truthy(value: str | None) -> bool:
    """A query-parameter boolean (``true``, ``1``, ``yes``)."""
    return value is not None and value.strip().lower() in ("1", "true", "yes")


class _Local(threading.local):
    supports_all_drives = False


class ApiMixin:
    """State and helpers every method group may use (provided by ``DriveApp``)."""

    store: Store
    auth: AuthService
    renderer: Renderer
    base_url: str
    local = _Local()  # per-request flags, set by DriveApp.dispatch

    def routes(self) -> RouteTable:
        """``(method, path regex below /drive/v2/, handler)`` of this group."""
        return []

    def _file(self, file_id: str, user: User, *, write: bool = False) -> FileRecord:
        raise NotImplementedError

    def _resource(self, rec: FileRecord, user: User) -> dict[str, Any]:
        raise NotImplementedError

    def _authenticate(self, req: Request, *, optional: bool = False) -> User:
        raise NotImplementedError

    def _visible_record(self, file_id: str, email: str | None) -> FileRecord:
        """The record ``email`` (None: signed out) may read, else a 404 ``ApiError``."""
        rec = self.store.get(file_id)
        if rec is None or not self.store.can_read(rec, email) or (self.store.is_trashed(rec) and email is None):
            raise not_found(file_id)
        return rec

    def _optional_user(self, req: Request) -> str | None:
        """The signed-in user of a request to a non-API path, or None without credentials."""
        if not req.header("Authorization") and not req.query.get("access_token"):
            return None
        return self._authenticate(req).email
