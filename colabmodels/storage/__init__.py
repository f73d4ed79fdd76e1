"""Storage backends, one per source, behind one contract (``StorageBackend``).

The registry maps a source name to a dotted path, so nothing heavy (urllib3, s3fs, gcsfs,
PyDrive2) is imported until a backend is first asked for; each entry carries the pip extra
to name when its library is missing.

    >>> from colabmodels.storage import get_backend
    >>> backend = get_backend("s3", client_kwargs={"endpoint_url": "http://127.0.0.1:9000"})

``backend_for`` chooses the backend for a reference; for Drive that is the Drive session's
backend (signing in on first use, without a request of its own), or, with no credentials at
all, an anonymous one that reads files shared "anyone with the link".
"""

from __future__ import annotations

import importlib
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import AuthError, MissingDependencyError, RefError
from ..refs import Ref
from .base import RemoteStat, StorageBackend

if TYPE_CHECKING:
    from ..drive.session import DriveSession
    from .drive import DriveBackend

__all__ = [
    "BACKENDS",
    "RemoteStat",
    "StorageBackend",
    "backend_for",
    "drive_backend",
    "get_backend",
]

logger = logging.getLogger(__name__)

BACKENDS: dict[str, dict[str, str]] = {
    "local": {"class": "colabmodels.storage.local:LocalBackend", "err": ""},
    "http": {"class": "colabmodels.storage.http:HTTPBackend", "err": ""},
    "s3": {"class": "colabmodels.storage.s3:S3Backend",
           "err": 'Reading s3:// needs s3fs: pip install "colabmodels[s3]"'},
    "gcs": {"class": "colabmodels.storage.gcs:GCSBackend",
            "err": 'Reading gs:// needs gcsfs: pip install "colabmodels[gcs]"'},
    "drive": {"class": "colabmodels.storage.drive:DriveBackend",
              "err": "Google Drive needs PyDrive2: pip install pydrive2"},
}
"""source -> ``{"class": "module:Class", "err": install hint}``."""

_instances: dict[tuple[str, Any], StorageBackend] = {}
_lock = threading.Lock()


def _freeze(value: Any) -> Any:
    """A hashable stand-in for nested option values (dicts, lists)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, set):
        return tuple(sorted(_freeze(v) for v in value))
    hash(value)  # raises TypeError for anything else unhashable
    return value


def backend_class(source: str) -> type[StorageBackend]:
    """The backend class registered for ``source``, imported on first use.

    Raises:
        RefError: no backend is registered for ``source``.
        MissingDependencyError: the backend's library is not installed.
    """
    try:
        entry = BACKENDS[source]
    except KeyError:
        raise RefError(f"no storage backend for source {source!r}; "
                       f"known sources: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = entry["class"].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        if (isinstance(e, MissingDependencyError) or not entry["err"]
                or getattr(e, "name", None) == module_name):  # our own module is missing
            raise
        raise MissingDependencyError(entry["err"]) from e
    return getattr(module, class_name)


def get_backend(source: str, **options: Any) -> StorageBackend:
    """The backend for ``source``, one shared instance per (source, options).

    Args:
        source: ``"local"``, ``"http"``, ``"s3"``, ``"gcs"`` or ``"drive"`` (``Ref.source``).
        **options: passed to the backend's constructor (for S3/GCS: fsspec storage options
            such as ``endpoint_url``, ``key``/``secret``, ``token``, ``project``).

    Raises:
        RefError: unknown source.
        MissingDependencyError: the source's library is not installed (the message names the
            pip extra).
    """
    try:
        key: tuple[str, Any] | None = (source, _freeze(options))
    except TypeError:  # an option that cannot be hashed (a live client object): no sharing
        key = None
    if key is not None:
        with _lock:
            found = _instances.get(key)
        if found is not None:
            return found
    backend = backend_class(source)(**options)
    if key is not None:
        with _lock:
            backend = _instances.setdefault(key, backend)
    return backend


_drive_backends: weakref.WeakKeyDictionary[DriveSession, DriveBackend] = weakref.WeakKeyDictionary()


def drive_backend(session: DriveSession | None) -> DriveBackend:
    """The Drive backend of ``session`` (one per session), or an anonymous one for ``None``."""
    from .drive import DriveBackend

    if session is None:
        return DriveBackend(None)
    with _lock:
        found = _drive_backends.get(session)
        if found is None:
            found = _drive_backends[session] = DriveBackend(session)
        return found


def backend_for(ref: Ref, *, write: bool = False) -> StorageBackend:
    """The backend that reads (or, with ``write``, writes) ``ref``.

    Drive uses the current session while it fits the configuration (the endpoint included),
    else signs in without sending a request; with no credentials it still reads files shared
    "anyone with the link" by id.

    Raises:
        AuthError: no way to sign in, and ``ref`` is a Drive path or ``write`` is set.
        RefError, MissingDependencyError: see ``get_backend``.
    """
    if ref.source != "drive":
        return get_backend(ref.source)
    from ..drive.session import implicit_session

    try:
        session = implicit_session()
    except AuthError:
        if ref.id and not write:
            logger.info("not signed in: reading %s as a public link", ref.id)
            return drive_backend(None)
        raise
    return drive_backend(session)
