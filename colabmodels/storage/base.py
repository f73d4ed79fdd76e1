"""The contract every storage backend meets.

A backend speaks to one kind of source (Drive, GCS, S3, HTTP, local disk) and translates that
source's errors into colabmodels errors, once, here at the boundary:

- missing object -> ``NotFoundError``
- no permission / bad credentials -> ``AuthError``
- quota -> ``QuotaError``
- a file with no bytes to download (a Google Doc) -> ``NotDownloadableError``
- a host that cannot be reached at all -> ``NetworkDownError``
- a transient failure -> ``RetryableError`` (the caller retries)
- anything else from the network after retries -> ``TransferError``

A backend moves bytes; it does not download into the cache or retry a download: the transfer
engine (``colabmodels.transfer.download``) drives ``open_range`` for that.

Paths in ``RemoteStat`` are full references (``str(ref)`` shape), so ``list()`` output can be
fed back into ``stat()``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..progress import ProgressCallback
from ..refs import Ref

__all__ = ["RemoteStat", "StorageBackend"]


@dataclass(frozen=True)
class RemoteStat:
    """What a source says about one file or folder.

    Attributes:
        ref: a reference that reaches this object again (carries the Drive id when known).
        name: the last path component / Drive title.
        size: bytes (None for folders or when the source does not say).
        is_dir: folder (Drive folder, S3/GCS prefix, local directory).
        checksum: ``"md5:<hex>"``, ``"crc32c:<b64>"`` or None.
        identity: the source's content identity, used as the cache key: it changes when the
            content changes and is the same whichever link shape reached the object
            (Drive: id + md5Checksum; GCS: generation; S3: ETag; HTTP: ETag/Last-Modified + URL).
        version: the source's version token (GCS generation, S3 VersionId, Drive version), if any.
        mime: MIME type, if known.
        modified: ISO-8601 modification time, if known.
        created: ISO-8601 creation time, if the source keeps one (Drive does).
        description: Drive description (or None).
        properties: Drive properties / object metadata as strings.
    """

    ref: Ref
    name: str
    size: int | None
    is_dir: bool = False
    checksum: str | None = None
    identity: str | None = None
    version: str | None = None
    mime: str | None = None
    modified: str | None = None
    created: str | None = None
    description: str | None = None
    properties: dict[str, str] = field(default_factory=dict)


class StorageBackend(abc.ABC):
    """One source of files. Subclasses document what their ``Ref.path`` looks like."""

    source: str = ""

    @abc.abstractmethod
    def stat(self, ref: Ref) -> RemoteStat:
        """Metadata of one file or folder. Raises NotFoundError when there is none."""

    @abc.abstractmethod
    def list(self, ref: Ref, *, page_size: int = 1000) -> Iterator[RemoteStat]:
        """The direct children of a folder, lazily, one page at a time."""

    @abc.abstractmethod
    def open_range(self, ref: Ref, start: int, end: int | None) -> Iterator[bytes]:
        """Stream bytes ``[start, end)`` (``end=None``: to the end) in modest chunks.

        Each call is one request; retries are the transfer engine's job, so this raises
        ``RetryableError`` for errors worth another try (429, 5xx,
        rate-limit 403, dropped connection) and other colabmodels errors for the rest.
        """

    def read_range(self, ref: Ref, start: int, end: int | None) -> bytes:
        return b"".join(self.open_range(ref, start, end))

    def check_downloadable(self, stat: RemoteStat) -> None:
        """Raise ``NotDownloadableError`` when ``stat`` names something
        with no bytes to download (Drive: a Google Doc). The transfer engine asks first."""
        return None

    @abc.abstractmethod
    def upload(self, src: Path, dest: Ref, *, metadata: dict[str, Any] | None = None,
               progress: ProgressCallback | None = None) -> RemoteStat:
        """Upload a local file to ``dest`` (creating parent folders where the source has them).

        ``metadata`` may hold ``description`` (str) and ``properties`` (dict[str, str]).
        A ``KeyboardInterrupt`` stops the upload within one chunk.
        """

    @abc.abstractmethod
    def set_metadata(self, ref: Ref, *, description: str | None = None,
                     properties: dict[str, str] | None = None) -> RemoteStat:
        """Set description/properties (merged into existing properties)."""

    def makedirs(self, ref: Ref) -> RemoteStat | None:
        """Make a folder (and parents). Sources without folders (S3, GCS) do nothing."""
        return None

    def delete(self, ref: Ref) -> None:
        """Remove a file (or trash it, on Drive)."""
        raise NotImplementedError(f"{type(self).__name__} cannot delete")
