"""Every error colabmodels raises.

Each class also subclasses the nearest builtin, so ``except FileNotFoundError`` or
``except ValueError`` in user code keeps working. Third-party errors (PyDrive2,
googleapiclient, botocore, fsspec, torch, keras) are translated once, where they
cross into colabmodels, with ``raise ... from e``.

The tree::

    ColabModelsError
     ├── RefError(ValueError)                 the string does not name anything we can read
     ├── ConfigError(ValueError)              a COLABMODELS_* setting has a value we cannot use
     ├── MetadataError(TypeError, ValueError) save_model metadata that JSON cannot hold
     ├── OptionError(TypeError)               a keyword a loader or saver does not take
     ├── AuthError(PermissionError)           not signed in, bad key, or no access to the file
     ├── NotFoundError(FileNotFoundError)     the reference points at nothing
     │    └── AmbiguousPathError              two files in one folder share a name
     ├── AlreadyExistsError(FileExistsError)  a path that must be new names a file or folder
     ├── IsAFolderError(IsADirectoryError)    a file operation on a folder
     ├── NotAFolderError(NotADirectoryError)  a folder operation on a file
     ├── QuotaError                           Drive download quota / storage quota exceeded
     ├── TransferError(OSError)               the transfer failed after all retries
     ├── IntegrityError                       bytes on disk do not match the source's checksum
     ├── UnknownFormatError(ValueError)       the bytes are no model format we recognise
     ├── UntrustedFormatError                 loading would execute code; pass trust=True
     ├── ArchitectureMismatchError(ValueError)  a state dict does not fit the architecture
     ├── OfflineError(ConnectionError)        offline and the entry is not in the cache
     │    └── NetworkDownError                the network or host cannot be reached at all
     ├── NotDownloadableError(ValueError)     a Google Doc/Sheet/Slides, or Drive refuses the bytes
     ├── RetryableError                       (internal) a transient failure; retried, then TransferError
     ├── VersionError(LookupError)            no such saved version
     ├── MissingDependencyError(ImportError)  an optional library is not installed
     └── UnsafeArchiveError(ValueError)       an archive with absolute/.. paths or absurd sizes
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "AmbiguousPathError",
    "ArchitectureMismatchError",
    "AuthError",
    "ColabModelsError",
    "ConfigError",
    "IntegrityError",
    "IsAFolderError",
    "MetadataError",
    "MissingDependencyError",
    "NetworkDownError",
    "NotAFolderError",
    "NotDownloadableError",
    "NotFoundError",
    "OfflineError",
    "OptionError",
    "QuotaError",
    "RefError",
    "RetryableError",
    "TransferError",
    "UnknownFormatError",
    "UnsafeArchiveError",
    "UntrustedFormatError",
    "VersionError",
]


class ColabModelsError(Exception):
    """Base class of every error raised by colabmodels."""


class RefError(ColabModelsError, ValueError):
    """A string that names no model, file or folder we can read."""


class ConfigError(ColabModelsError, ValueError):
    """An environment variable or setting has a value colabmodels cannot use."""


class MetadataError(ColabModelsError, TypeError, ValueError):
    """A ``save_model`` metadata value that JSON cannot hold (and colabmodels cannot convert)."""


class OptionError(ColabModelsError, TypeError):
    """A keyword argument the chosen loader or saver does not take (the message lists those it does)."""


class AuthError(ColabModelsError, PermissionError):
    """Not signed in, credentials rejected, or no permission on the file."""


class NotFoundError(ColabModelsError, FileNotFoundError):
    """The reference points at nothing (or at something the signed-in user cannot see)."""


class AmbiguousPathError(NotFoundError):
    """A path step matches several files with the same name in one folder."""

    def __init__(self, message: str, ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.ids = list(ids or [])


class AlreadyExistsError(ColabModelsError, FileExistsError):
    """A path that must be new (``mkdir``, exclusive create) already names a file or folder."""


class IsAFolderError(ColabModelsError, IsADirectoryError):
    """A file operation (open, read, overwrite) on a path that is a folder."""


class NotAFolderError(ColabModelsError, NotADirectoryError):
    """A folder operation (list into, create inside) on a path that is a file."""


class QuotaError(ColabModelsError):
    """A provider quota stops the transfer (Drive's download quota, storage quota)."""


class TransferError(ColabModelsError, OSError):
    """A transfer failed after every retry."""


class IntegrityError(ColabModelsError):
    """Bytes do not match the size or checksum the source reported."""


class UnknownFormatError(ColabModelsError, ValueError):
    """The bytes are no model format colabmodels recognises."""


class UntrustedFormatError(ColabModelsError):
    """Loading this file would execute code from it; pass ``trust=True`` if you trust it."""

    def __init__(self, message: str, would_run: list[str] | None = None) -> None:
        super().__init__(message)
        self.would_run = list(would_run or [])


class ArchitectureMismatchError(ColabModelsError, ValueError):
    """A state dict does not fit the architecture it is loaded into."""


class OfflineError(ColabModelsError, ConnectionError):
    """Offline mode is on and the entry is not in the cache."""


class NetworkDownError(OfflineError):
    """The network or the host cannot be reached at all (connection refused, DNS failure, no
    route): raised at once, without retries, so callers can fall back to the cache."""


class NotDownloadableError(ColabModelsError, ValueError):
    """The reference names something whose bytes cannot be downloaded as a file: a Google
    Doc/Sheet/Slides (export it first), or a file Drive refuses to serve."""


class RetryableError(ColabModelsError):
    """A transient failure (429, 5xx, rate-limit 403, dropped connection): try again.

    Raised inside colabmodels and retried there; once the retries are used up it becomes a
    ``TransferError``. ``retry_after`` is the server's Retry-After in seconds, if sent.
    """

    def __init__(self, message: str, *, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class VersionError(ColabModelsError, LookupError):
    """No saved version matches ``REF@vN`` / ``REF@latest``."""


class MissingDependencyError(ColabModelsError, ImportError):
    """An optional library is needed; the message names the pip extra."""


class UnsafeArchiveError(ColabModelsError, ValueError):
    """An archive with absolute or ``..`` member paths, or an absurd uncompressed size."""
