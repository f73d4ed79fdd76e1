"""Saved models as numbered versions: ``DEST/v1/``, ``DEST/v2/``, each with a ``manifest.json``.

A version is complete when its ``manifest.json`` exists; it is uploaded last, so an
interrupted save leaves a folder that ``list_versions`` ignores.

Claiming a number is safe between concurrent savers on every source. Each saver puts a claim
for ``vN`` (on disk: ``mkdir``, atomic; on Drive: a new ``vN`` folder, Drive allows twins; on
S3/GCS: an object ``vN/.claim-<random>``) and then lists the claims for ``vN``. It wins only
if its own claim is the only one it sees. Two savers that overlap both see two claims, both
withdraw and retry at ``N+1`` after a random pause; a saver that sees only itself listed
before any rival claimed, so the rival will see it and withdraw. (This needs read-after-write
consistent listings, which Drive, S3 and GCS provide.)

The manifest is mirrored into Drive: the version folder and the manifest file get a
one-line description and ``PUBLIC`` properties (``cm_version``, ``cm_framework``,
``cm_format``, ``meta_<key>``...), so the Drive web UI shows what a version is.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import random
import re
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from . import config
from ._version import __version__
from .drive import copies as drive_copies
from .drive import files as drive_files
from .errors import (
    ColabModelsError,
    IntegrityError,
    MetadataError,
    NotFoundError,
    OfflineError,
    RefError,
    UnknownFormatError,
    VersionError,
)
from .progress import ProgressCallback, progress_bar
from .refs import Ref

if TYPE_CHECKING:
    from .drive.session import DriveSession
    from .formats import SavedFiles
    from .storage.base import RemoteStat, StorageBackend

__all__ = [
    "MANIFEST",
    "MANIFEST_SCHEMA",
    "DriveCalls",
    "DriveSessionCalls",
    "SavedModelInfo",
    "best_version",
    "down_reason",
    "json_metadata",
    "list_versions",
    "model_path_in",
    "own_files",
    "prune_checkpoints",
    "publish",
    "resolve_version",
    "save",
    "warn_stale",
]

logger = logging.getLogger("colabmodels")

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1
"""The newest manifest layout this version reads and writes."""
_VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")
_PROPERTY_LIMIT = 124  # Drive: key + value of one property, in bytes


@dataclass
class SavedModelInfo:
    """One saved version.

    Attributes:
        dest: where versions live, as given to ``save_model``.
        version: the number N of ``vN``.
        ref: a string that loads this version back (``"DEST@vN"``).
        folder_ref: the version folder.
        framework, format: as recorded.
        created: ISO-8601 UTC time of the save.
        metadata: the user's metadata.
        files: ``[{"path", "size", "sha256"}]``.
        manifest: the whole manifest.
        tags: ``"latest"`` on the newest version, ``"best"`` on the best checkpoint (see
            ``best_version``), as listed by ``list_versions``.
    """

    dest: str
    version: int
    ref: str
    folder_ref: Ref
    framework: str = ""
    format: str = ""
    created: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        meta = ", ".join(f"{k}={v!r}" for k, v in self.metadata.items())
        tags = f" ({', '.join(self.tags)})" if self.tags else ""
        return (f"<SavedModelInfo {self.ref}{tags} {self.framework}/{self.format} {self.created} "
                f"{meta}>")


class DriveSessionCalls(Protocol):
    """What the registry asks of a Drive session (``DriveSession``)."""

    def execute(self, build: Callable[[Any], Any], *, what: str) -> Any: ...

    def remember_path(self, path: str, file_id: str) -> None: ...


class DriveCalls(Protocol):
    """The Drive-only calls the registry makes on a backend
    (``DriveBackend``), beyond the common contract."""

    @property
    def session(self) -> DriveSessionCalls | None: ...

    def file_id(self, ref: Ref) -> str: ...

    def makedirs(self, ref: Ref) -> RemoteStat | None: ...

    def folders_named(self, parent_id: str, name: str, *, what: str) -> list[dict[str, Any]]: ...

    def new_folder(self, parent_id: str, name: str, *, properties: list[dict[str, str]],
                   what: str) -> dict[str, Any]: ...

    def delete(self, ref: Ref) -> None: ...


if TYPE_CHECKING:
    from .storage.drive import DriveBackend

    def _drive_backend_meets_the_protocol(backend: DriveBackend) -> DriveCalls:
        return backend  # mypy checks that DriveBackend has every call the registry makes


def _drive(backend: StorageBackend) -> DriveCalls:
    """``backend`` seen through ``DriveCalls`` (only for ``source == "drive"``)."""
    if backend.source != "drive":
        raise RefError(f"{type(backend).__name__} is not a Drive backend")
    return cast(DriveCalls, backend)


def _backend(ref: Ref, *, write: bool = False) -> StorageBackend:
    """The backend for ``ref`` (signing in to Drive when it can)."""
    from .storage import backend_for

    return backend_for(ref, write=write)


def _dest_str(dest: Ref) -> str:
    return str(dest.unversioned())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _info(dest: Ref, n: int, manifest: dict[str, Any]) -> SavedModelInfo:
    """A SavedModelInfo from a manifest; fields of the wrong type read as empty."""
    metadata = manifest.get("metadata")
    files = manifest.get("files")
    return SavedModelInfo(
        dest=_dest_str(dest), version=n, ref=f"{_dest_str(dest)}@v{n}",
        folder_ref=dest.unversioned().child(f"v{n}"),
        framework=_text(manifest.get("framework")), format=_text(manifest.get("format")),
        created=_text(manifest.get("created")),
        metadata=metadata if isinstance(metadata, dict) else {},
        files=[f for f in files if isinstance(f, dict)] if isinstance(files, list) else [],
        manifest=manifest,
    )


# -- reading ----------------------------------------------------------------------------------

def _version_folders(backend: StorageBackend, dest: Ref, *,
                     must_exist: bool = False) -> list[tuple[int, RemoteStat]]:
    """The ``vN`` folders under ``dest``, by number.

    Raises (only with ``must_exist``):
        NotFoundError: ``dest`` does not exist.
        RefError: ``dest`` is a file, not a model folder.
    """
    shown = _dest_str(dest)
    try:
        children = list(backend.list(dest.unversioned()))
    except NotFoundError:
        if not must_exist:
            return []
        raise NotFoundError(f"{shown} does not exist (or you cannot see it); nothing has been "
                            "saved there. Check the path, or save a first version with "
                            "cm.save_model") from None
    except RefError:
        if not must_exist:
            raise
        raise RefError(f"{shown} is a file, not a model folder: versions live in the folder "
                       "given to cm.save_model (e.g. MyDrive/models/name)") from None
    if not children and must_exist:
        try:
            st = backend.stat(dest.unversioned())
        except NotFoundError:
            raise NotFoundError(f"{shown} does not exist (or you cannot see it); nothing has "
                                "been saved there") from None
        except RefError:
            st = None
        if st is not None and not st.is_dir:
            raise RefError(f"{shown} is a file, not a model folder: versions live in the folder "
                           "given to cm.save_model (e.g. MyDrive/models/name)")
    found = []
    for child in children:
        m = _VERSION_RE.match(child.name)
        if m and child.is_dir:
            found.append((int(m.group(1)), child))
    return sorted(found, key=lambda item: item[0])


def _read_manifest(backend: StorageBackend, folder: RemoteStat) -> dict[str, Any] | None:
    ref = folder.ref.child(MANIFEST) if folder.ref.path else None
    if ref is None:
        return None
    try:
        raw = backend.read_range(backend.stat(ref).ref, 0, None)
    except NotFoundError:
        return None
    try:
        manifest = json.loads(raw)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        logger.warning("%s has an unreadable manifest; skipping it", folder.ref)
        return None
    return manifest


def list_versions(dest: Ref, *, offline: bool = False) -> list[SavedModelInfo]:
    """Complete versions under ``dest``, oldest first.

    Offline (``offline=True``), and when the network is down, the versions seen the last time
    they were listed online are served (with a warning that they may be stale).

    Raises:
        NotFoundError: ``dest`` does not exist.
        RefError: ``dest`` is a file, not a model folder.
        OfflineError: offline (or the network is down) and these versions were never listed.
    """
    if offline:
        return _remembered_versions(dest, None)
    try:
        backend = _backend(dest)
        infos = []
        for n, folder in _version_folders(backend, dest, must_exist=True):
            manifest = _read_manifest(backend, folder)
            if manifest is not None:
                infos.append(_info(dest, n, manifest))
    except OfflineError as e:  # NetworkDownError: serve what was seen last
        return _remembered_versions(dest, e)
    _remember_versions(dest, infos)
    return _tagged(infos)


def _checkpoint(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The ``checkpoint`` record a DriveCheckpoint wrote into a manifest, or None."""
    record = manifest.get("checkpoint")
    return record if isinstance(record, dict) else None


def _monitored(info: SavedModelInfo) -> tuple[str, str, float] | None:
    """``(monitor, mode, value)`` of a checkpoint saved with a monitored metric, else None."""
    import math

    record = _checkpoint(info.manifest) or {}
    monitor, mode, value = record.get("monitor"), record.get("mode"), record.get("value")
    if not isinstance(monitor, str) or mode not in ("min", "max") \
            or not isinstance(value, (int, float)) or isinstance(value, bool) \
            or not math.isfinite(value):
        return None
    return monitor, mode, float(value)


def best_version(infos: list[SavedModelInfo]) -> SavedModelInfo | None:
    """The best checkpoint among complete versions (oldest first), as ``REF@best`` names it.

    The newest version that records a monitored metric decides which metric and mode count
    (``val_loss``/``min``); among the versions that record the same, the best value wins, the
    earliest on a tie (a later one is best only when strictly better, as Keras'
    ``save_best_only`` counts). None when no version records a monitored metric.
    """
    scored = [(info, m) for info in infos if (m := _monitored(info)) is not None]
    if not scored:
        return None
    monitor, mode, _ = scored[-1][1]
    best: tuple[SavedModelInfo, float] | None = None
    for info, (name, how, value) in scored:
        if name != monitor or how != mode:
            continue
        if best is None or (value < best[1] if mode == "min" else value > best[1]):
            best = (info, value)
    return best[0] if best is not None else None


def _tagged(infos: list[SavedModelInfo]) -> list[SavedModelInfo]:
    """``infos`` with their tags set: ``latest`` on the newest, ``best`` on the best checkpoint."""
    for info in infos:
        info.tags = []
    if infos:
        infos[-1].tags.append("latest")
    best = best_version(infos)
    if best is not None:
        best.tags.append("best")
    return infos


def _versions_alias(dest: Ref) -> str:
    return f"versions:{_dest_str(dest)}"


def _remember_versions(dest: Ref, infos: list[SavedModelInfo]) -> None:
    from .cachestore import cache

    with contextlib.suppress(OSError, TypeError, ValueError):
        cache.remember_info(_versions_alias(dest), {
            "versions": [i.version for i in infos],
            "manifests": {str(i.version): i.manifest for i in infos},
        })


def warn_stale(message: str) -> None:
    """Log ``message`` and ``warnings.warn`` it at the caller's own line (outside colabmodels)."""
    import sys

    logger.warning("%s", message)
    package = os.path.dirname(os.path.abspath(__file__))
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    warnings.warn(message, UserWarning, stacklevel=level)


def down_reason(error: BaseException) -> str:
    """The first sentence of a network-down error (its advice may not fit every caller)."""
    text = str(error).strip()
    return text.split(". ", 1)[0].rstrip(".") or type(error).__name__


def _remembered_versions(dest: Ref, cause: OfflineError | None) -> list[SavedModelInfo]:
    """The versions remembered from the last online listing (``cause``: why not online)."""
    from .cachestore import cache

    shown = _dest_str(dest)
    known = cache.recall(_versions_alias(dest)) or {}
    numbers = known.get("versions")
    manifests = known.get("manifests")
    if not isinstance(numbers, list) or not all(isinstance(n, int) for n in numbers):
        why = "offline mode is on" if cause is None else f"Drive cannot be reached ({cause})"
        error = type(cause) if cause is not None else OfflineError
        raise error(f"the versions of {shown} are not known: {why}, and they were never listed "
                    "online on this machine. List them once online (cm.versions) first.") from cause
    if cause is not None:
        message = (f"cannot reach the storage of {shown} ({down_reason(cause)}); showing the "
                   "versions listed there last time, which may be stale")
        warn_stale(message)
    manifests = manifests if isinstance(manifests, dict) else {}
    return _tagged([_info(dest, n, m if isinstance(m := manifests.get(str(n)), dict) else {})
                    for n in sorted(numbers)])


def resolve_version(ref: Ref, *, offline: bool = False) -> SavedModelInfo:
    """The version ``REF@vN`` / ``REF@latest`` / ``REF@best`` names (offline: from the
    remembered listing). ``@best`` is worked out from the manifests (``best_version``).

    Raises:
        VersionError: no such version (the message lists the ones there are), or ``@best``
            where no version records a monitored metric.
        NotFoundError, RefError, OfflineError: see ``list_versions``.
    """
    from .refs import version_number

    tag = ref.version or ""
    dest = ref.unversioned()
    wanted = None if tag in ("latest", "best") else version_number(tag)
    infos = list_versions(dest, offline=offline)
    if not infos:
        raise VersionError(f"no saved versions under {_dest_str(dest)}; save one with cm.save_model")
    if tag == "best":
        best = best_version(infos)
        if best is None:
            raise VersionError(
                f"{_dest_str(dest)} has no @best: none of its versions records a monitored "
                "metric. Save checkpoints with cm.DriveCheckpoint(..., monitor=\"val_loss\"), or "
                "load @latest or @vN")
        return best
    if wanted is None:
        return infos[-1]
    for info in infos:
        if info.version == wanted:
            return info
    have = ", ".join(f"v{i.version}" for i in infos)
    known = " known offline" if offline else ""
    raise VersionError(f"{_dest_str(dest)} has no v{wanted} (the versions{known}: {have})")


def model_path_in(folder: Path, *, shown: str | None = None) -> tuple[Path, dict[str, Any]]:
    """The model file (or folder) inside a fetched version folder, and its manifest.

    Args:
        folder: the fetched version folder.
        shown: how to name the version in messages (what the user typed).

    Raises:
        NotFoundError: no readable manifest, or the file it names is missing.
        IntegrityError: the manifest is damaged (not an object, no model path).
        UnknownFormatError: the manifest was written by a newer colabmodels.
        RefError: the manifest points outside the version folder.
    """
    where = shown or str(folder)
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as e:
        raise NotFoundError(f"{where} has no readable {MANIFEST} ({type(e).__name__}); it is "
                            "not a complete saved version") from None
    if not isinstance(manifest, dict):
        raise IntegrityError(f"the {MANIFEST} of {where} is damaged (not a JSON object)")
    schema = manifest.get("manifest_schema", 1)
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > MANIFEST_SCHEMA:
        raise UnknownFormatError(
            f"{where} was saved by a newer colabmodels (manifest schema {schema}; this one reads "
            f"up to {MANIFEST_SCHEMA}): pip install -U colabmodels")
    rel = manifest.get("model_path")
    if not isinstance(rel, str) or not rel:
        files = manifest.get("files")
        first = files[0] if isinstance(files, list) and files else None
        rel = first.get("path") if isinstance(first, dict) else None
    if not isinstance(rel, str) or not rel or "\0" in rel:
        raise IntegrityError(f"the {MANIFEST} of {where} is damaged: it names no model file")
    try:
        target = (folder / rel).resolve()
    except (OSError, ValueError) as e:
        raise IntegrityError(f"the {MANIFEST} of {where} names an unusable path {rel!r}: {e}") from None
    if folder.resolve() not in target.parents and target != folder.resolve():
        raise RefError(f"manifest in {where} points outside its version folder: {rel!r}")
    if not target.exists():
        raise NotFoundError(f"{where}: the model file {rel!r} named by its {MANIFEST} is missing")
    return target, manifest


# -- whose files: a user's own saves load without trust=True ----------------------------------

def own_files(folder: Ref) -> set[str] | None:
    """The md5s of the files in a Drive folder (recursively) when Drive reports every one of
    them as owned and last modified by the signed-in user; None otherwise (another user's file
    among them, not Drive, not signed in, or Drive cannot say).

    This is the rule by which a user's own saves load without ``trust=True``; the owner walk
    itself is ``colabmodels.drive.files.owned_md5s``.
    """
    if folder.source != "drive":
        return None
    try:
        drive = _drive(_backend(folder))
        session = drive.session
        if session is None:
            return None
        return drive_files.owned_md5s(session, drive.file_id(folder),
                                      what=f"checking who saved {folder}")
    except Exception as e:  # any doubt means "not known to be yours"
        logger.info("could not check who saved %s: %s", folder, e)
        return None


# -- claiming a version number ----------------------------------------------------------------

class _Claim:
    """One saver's claim on ``vN``; see the module docstring for the protocol."""

    def __init__(self, backend: StorageBackend, dest: Ref, n: int) -> None:
        self.backend, self.dest, self.n = backend, dest, n
        self.folder = dest.unversioned().child(f"v{n}")
        self.token = uuid.uuid4().hex
        self.drive_id: str | None = None  # Drive: the claimed folder's id
        self.object: Ref | None = None  # S3/GCS: the claim object
        self.parent_id: str = ""

    def put(self) -> bool:
        """Place the claim; False when the number is visibly taken already."""
        source = self.dest.source
        if source == "local":
            assert self.folder.path is not None
            try:
                os.makedirs(Path(self.folder.path).parent, exist_ok=True)
                os.mkdir(self.folder.path)
            except FileExistsError:
                return False
            return True
        if source == "drive":
            drive = _drive(self.backend)
            parent = drive.makedirs(self.dest.unversioned())
            if parent is None or not parent.ref.id:
                raise NotFoundError(f"could not create {_dest_str(self.dest)} in Drive")
            self.parent_id = parent.ref.id
            meta = drive.new_folder(
                self.parent_id, f"v{self.n}",
                properties=[{"key": "cm_claim", "value": self.token, "visibility": "PUBLIC"}],
                what=f"claiming v{self.n} under {self.dest.path}")
            self.drive_id = str(meta["id"])
            return True
        with tempfile.NamedTemporaryFile() as empty:
            self.object = self.folder.child(f".claim-{self.token}")
            self.backend.upload(Path(empty.name), self.object)
        return True

    def sole(self) -> bool:
        """True when this claim is the only one visible."""
        source = self.dest.source
        if source == "local":
            return True  # mkdir is exclusive
        if source == "drive":
            twins = _drive(self.backend).folders_named(self.parent_id, f"v{self.n}",
                                                       what=f"checking the claim on v{self.n}")
            return [t["id"] for t in twins] == [self.drive_id]
        claims = [c for c in self.backend.list(self.folder) if c.name.startswith(".claim-")]
        return [c.name for c in claims] == [f".claim-{self.token}"]

    def withdraw(self) -> None:
        with contextlib.suppress(Exception):
            if self.dest.source == "local":
                shutil.rmtree(self.folder.path or "", ignore_errors=True)
            elif self.dest.source == "drive":
                if self.drive_id:
                    self.backend.delete(Ref("drive", id=self.drive_id))
            elif self.object is not None:
                self.backend.delete(self.object)

    def adopt(self) -> None:
        """After winning: make the folder path resolve to this claim (Drive may hold twins briefly)."""
        if self.dest.source == "drive":
            session = _drive(self.backend).session
            if session is not None and self.folder.path and self.drive_id:
                session.remember_path(self.folder.path, self.drive_id)
        elif self.dest.source in ("s3", "gcs") and self.object is not None:
            with contextlib.suppress(Exception):
                self.backend.delete(self.object)


def _claim_version(backend: StorageBackend, dest: Ref, version: int | str) -> _Claim:
    from .refs import version_number

    fixed = None if version == "auto" else version_number(version)
    for attempt in range(50):
        taken = [n for n, _ in _version_folders(backend, dest)]
        n = fixed if fixed is not None else (max(taken) + 1 if taken else 1)
        if fixed is not None and fixed in taken:
            raise VersionError(f"{_dest_str(dest)}@v{fixed} exists already; versions are never overwritten")
        claim = _Claim(backend, dest, n)
        if claim.put() and claim.sole():
            claim.adopt()
            return claim
        claim.withdraw()
        if fixed is not None:
            raise VersionError(f"another save took {_dest_str(dest)}@v{fixed} at the same moment")
        time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))
    raise VersionError(f"could not claim a version under {_dest_str(dest)}: too many concurrent saves")


# -- saving -----------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    from .transfer import file_sha256

    return file_sha256(path)


def _libraries(framework: str) -> dict[str, str]:
    """Installed versions of the libraries a framework's files depend on."""
    from importlib import metadata as md

    candidates = {"keras": ["keras", "tensorflow", "tensorflow-cpu", "h5py"],
                  "tensorflow": ["tensorflow", "tensorflow-cpu", "keras"],
                  "torch": ["torch", "safetensors"], "gensim": ["gensim", "scipy"]}
    out = {}
    for name in [*candidates.get(framework, []), "numpy"]:
        with contextlib.suppress(md.PackageNotFoundError):
            out[name] = md.version(name)
    return out


def _json_value(value: Any, where: str, depth: int = 0) -> Any:
    import math

    if depth > 32:
        raise MetadataError(f"metadata {where} is nested too deeply to store")
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
            return _json_value(value.item(), where, depth + 1)
        if hasattr(value, "tolist") and getattr(value, "size", 0) <= 10_000:
            return _json_value(value.tolist(), where, depth + 1)
    if module == "torch" and hasattr(value, "numel") and hasattr(value, "tolist") \
            and value.numel() <= 10_000:
        return _json_value(value.tolist(), where, depth + 1)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise MetadataError(f"metadata {where} has a key {k!r} ({type(k).__name__}); "
                                    "keys must be strings")
            out[str(k)] = _json_value(v, f"{where}[{str(k)!r}]", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise MetadataError(
        f"metadata {where} is a {type(value).__module__}.{type(value).__qualname__}, which JSON "
        "cannot hold. Give numbers, strings, booleans, None, dates, lists or dicts of these "
        f"(or str(value))."
    )


def json_metadata(metadata: Any) -> dict[str, Any]:
    """``save_model`` metadata as JSON values: numpy scalars/small arrays and torch scalars
    become numbers/lists, ``datetime``/``date`` ISO-8601 strings, paths strings, non-finite
    floats ``"nan"``/``"inf"``; dicts and lists are converted inside.

    Raises:
        MetadataError: (a ``TypeError`` and ``ValueError``) a value that cannot be converted,
            a key that is not a string, or metadata that is not a dict.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise MetadataError(f"metadata must be a dict of key/values, not {type(metadata).__name__}")
    converted = _json_value(metadata, "")
    assert isinstance(converted, dict)
    return converted


def _shown_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _properties(manifest: dict[str, Any]) -> dict[str, str]:
    props = {
        "cm_version": str(manifest["version"]),
        "cm_framework": manifest["framework"],
        "cm_format": manifest["format"],
        "cm_created": manifest["created"],
    }
    for key, value in manifest.get("metadata", {}).items():
        props[f"meta_{key}"] = _shown_value(value)
    out = {}
    for key, value in props.items():
        budget = _PROPERTY_LIMIT - len(key.encode())
        if budget <= 0:
            continue
        encoded = value.encode()[:budget].decode("utf-8", "ignore")
        out[key] = encoded
    return out


def _description(manifest: dict[str, Any]) -> str:
    meta = " ".join(f"{k}={_shown_value(v)}" for k, v in manifest.get("metadata", {}).items())
    return (f"colabmodels v{manifest['version']} · {manifest['framework']} "
            f"{manifest.get('framework_version', '')} · {manifest['format']} · "
            f"{manifest['created']}" + (f" · {meta}" if meta else ""))


def save(obj: Any, dest: Ref, *, version: int | str = "auto", metadata: dict[str, Any] | None = None,
         format: str | None = None, progress: bool = True) -> SavedModelInfo:
    """Serialise ``obj`` and upload it as a new version under ``dest`` (see ``cm.save_model``)."""
    from .formats import save_object

    if dest.version:
        raise RefError(f"save to {_dest_str(dest)}, not to a version ({dest.raw}); the number is chosen for you")
    if version != "auto":
        from .refs import version_number

        version = version_number(version)  # a bad tag fails before anything is serialised
    metadata = json_metadata(metadata)  # fail early on values the manifest cannot hold
    backend = _backend(dest, write=True)
    with tempfile.TemporaryDirectory(prefix="colabmodels-save-") as tmp:
        staged = Path(tmp)
        saved = save_object(obj, staged, format=format)
        return publish(staged, saved, dest, version=version, metadata=metadata,
                       progress=progress, backend=backend)


def publish(folder: Path, saved: SavedFiles, dest: Ref, *, version: int | str = "auto",
            metadata: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
            progress: bool = True, report: ProgressCallback | None = None,
            backend: StorageBackend | None = None, parallel: int | None = None) -> SavedModelInfo:
    """Upload files that ``save_object`` wrote into ``folder`` as a
    new version under ``dest``: hash them, claim ``vN``, upload the files (several at once when
    there are several), then the manifest last, which makes the version complete.

    Args:
        folder: where the files are (a ``manifest.json`` is written there too).
        saved: what ``save_object`` reported.
        extra: more manifest fields (a checkpoint's ``{"checkpoint": {...}}``).
        report: a progress callback to feed instead of a progress bar.
        parallel: files uploaded at once (default: ``COLABMODELS_CONNECTIONS``, 8).

    On Drive, a file whose bytes equal a file of the previous version (same md5) is copied
    there by Drive (``files.copy``) instead of being uploaded again.
    """
    from concurrent.futures import ThreadPoolExecutor

    metadata = json_metadata(metadata)
    backend = backend or _backend(dest, write=True)
    parallel = parallel if parallel is not None else config.connections()
    staged = folder
    files: list[dict[str, Any]] = [{"path": Path(p).as_posix(), "size": (staged / p).stat().st_size,
                                    "sha256": _sha256(staged / p)} for p in saved.files]
    claim = _claim_version(backend, dest, version)
    manifest: dict[str, Any] = {
        "colabmodels": __version__,
        "manifest_schema": 1,
        "version": claim.n,
        "framework": saved.framework,
        "framework_version": saved.framework_version,
        "format": saved.format,
        "model_path": Path(saved.model_path).as_posix() if saved.model_path else files[0]["path"],
        "files": files,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metadata": metadata,
        "python": platform.python_version(),
        "libraries": _libraries(saved.framework),
        **(saved.extra or {}),
        **(extra or {}),
    }
    (staged / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    total = sum(f["size"] for f in files)
    try:
        with progress_bar(total, f"{_dest_str(dest)}@v{claim.n}",
                          enabled=progress and report is None) as bar:
            sink = report or bar

            same = _unchanged_files(backend, dest, claim, staged, files)

            def one(f: dict[str, Any]) -> None:
                if f["path"] in same and _copy_on_drive(backend, claim, f["path"], same[f["path"]]):
                    sink(f["size"])
                    return
                backend.upload(staged / f["path"], claim.folder.child(f["path"]), progress=sink)

            if len(files) > 1 and parallel > 1:
                # subfolders first, one at a time: parallel uploads would each create them
                for sub in sorted({Path(f["path"]).parent.as_posix() for f in files} - {"."}):
                    backend.makedirs(claim.folder.child(sub))
                with ThreadPoolExecutor(min(parallel, len(files)),
                                        thread_name_prefix="colabmodels-upload") as pool:
                    for done in [pool.submit(one, f) for f in files]:
                        done.result()
            else:
                for f in files:
                    one(f)
        props = _properties(manifest)
        description = _description(manifest)
        backend.upload(staged / MANIFEST, claim.folder.child(MANIFEST),
                       metadata={"description": description, "properties": props,
                                 "mime": "application/json"})
        if dest.source == "drive":
            backend.set_metadata(claim.folder, description=description, properties=props)
    except BaseException:
        logger.warning("save to %s@v%d failed; the incomplete version is ignored by versions()",
                       _dest_str(dest), claim.n)
        raise
    info = _info(dest, claim.n, manifest)
    _remember_saved(dest, info)
    logger.info("saved %s (%s)", info.ref, _description(manifest))
    return info


def _remember_saved(dest: Ref, info: SavedModelInfo) -> None:
    """Remember the version a save made as a listing would (merged into the versions listed
    before, if any), so ``versions(dest, offline=True)`` in a later process knows it."""
    from .cachestore import cache

    known: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):  # the save is done; this only helps offline
        known = cache.recall(_versions_alias(dest)) or {}
    numbers = known.get("versions")
    manifests = known.get("manifests")
    manifests = manifests if isinstance(manifests, dict) else {}
    earlier = [_info(dest, n, m if isinstance(m := manifests.get(str(n)), dict) else {})
               for n in (numbers if isinstance(numbers, list) else [])
               if isinstance(n, int) and n != info.version]
    _remember_versions(dest, sorted([*earlier, info], key=lambda i: i.version))


def _unchanged_files(backend: StorageBackend, dest: Ref, claim: _Claim, staged: Path,
                     files: list[dict[str, Any]]) -> dict[str, str]:
    """Drive only: ``{path: Drive id}`` of the files about to be saved whose bytes a file in
    the previous version folder has already: those are copied on Drive's side, not uploaded.

    A file is a candidate when the previous version's manifest lists its size and sha256
    (already computed for this manifest, so a checkpoint whose every file changed costs no
    hashing); a candidate is then hashed with md5 and must match what Drive reports for a file
    in that folder now. Any doubt (not Drive, no previous version, a listing error) gives
    ``{}``: everything is uploaded."""
    from .transfer import file_md5

    if dest.source != "drive" or claim.n <= 1:
        return {}
    try:
        previous = [st for n, st in _version_folders(backend, dest) if n < claim.n]
        if not previous:
            return {}
        manifest = _read_manifest(backend, previous[-1]) or {}
        listed: list[Any] = manifest["files"] if isinstance(manifest.get("files"), list) else []
        before = {(f.get("size"), f.get("sha256")) for f in listed if isinstance(f, dict)}
        if not any((f["size"], f["sha256"]) in before for f in files):
            return {}
        known: dict[tuple[int, str], str] = {}
        pending = [previous[-1]]
        while pending and len(known) < 10_000:
            for child in backend.list(pending.pop().ref):
                if child.is_dir:
                    pending.append(child)
                elif child.size is not None and child.checksum and child.checksum.startswith("md5:") \
                        and child.ref.id:
                    known[(child.size, child.checksum[4:])] = child.ref.id
    except Exception as e:  # a failed look costs an upload, never the save
        logger.info("could not list the previous version of %s: %s", _dest_str(dest), e)
        return {}
    out = {}
    for f in files:
        if f["size"] > 0 and (f["size"], f["sha256"]) in before:
            fid = known.get((f["size"], file_md5(staged / f["path"])))
            if fid:
                out[f["path"]] = fid
    return out


def _copy_on_drive(backend: StorageBackend, claim: _Claim, path: str, file_id: str) -> bool:
    """Copy the Drive file ``file_id`` to ``path`` in the claimed version folder, on Drive's
    side (no byte passes through this machine); False when that failed (then it is uploaded)."""
    drive = _drive(backend)
    session = drive.session
    try:
        parent_rel, _, title = path.rpartition("/")
        if parent_rel:
            parent = drive.makedirs(claim.folder.child(parent_rel))
            parent_id = parent.ref.id if parent is not None else None
        else:
            parent_id = claim.drive_id
        if session is None or not parent_id:
            return False
        meta = drive_copies.copy_file(cast("DriveSession", session), file_id, parent_id=parent_id,
                                      title=title)
    except ColabModelsError as e:
        logger.info("Drive could not copy %s into %s (%s); uploading it instead", file_id, path, e)
        return False
    if claim.folder.path:
        session.remember_path(f"{claim.folder.path.rstrip('/')}/{path}", str(meta["id"]))
    logger.debug("%s equals the previous version's file: copied on Drive", path)
    return True


# -- pruning checkpoints ----------------------------------------------------------------------

def _remove_folder(backend: StorageBackend, folder: Ref) -> None:
    """Remove a version folder: to the trash on Drive, file by file elsewhere."""
    if folder.source == "drive":
        backend.delete(folder)
        return
    for child in list(backend.list(folder)):
        if child.is_dir:
            _remove_folder(backend, child.ref)
        else:
            backend.delete(child.ref)
    if folder.source == "local":
        with contextlib.suppress(NotFoundError):
            backend.delete(folder)


def prune_checkpoints(dest: Ref, keep_last: int) -> list[SavedModelInfo]:
    """Keep the newest ``keep_last`` checkpoints under ``dest`` (and the best one), remove the
    older ones (Drive: to the trash). Returns the removed versions.

    Only versions a checkpoint wrote (a ``checkpoint`` record in the manifest) are counted and
    removed; versions saved with ``save_model`` stay. Unfinished version folders older than
    every kept checkpoint (left by a process that died mid-upload) are removed too. Call it
    only after the newest version is complete.

    Raises:
        NotFoundError, AuthError, TransferError, OfflineError: as the storage answered.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be at least 1, not {keep_last!r}")
    backend = _backend(dest, write=True)
    infos: list[SavedModelInfo] = []
    unfinished: list[RemoteStat] = []
    for n, folder in _version_folders(backend, dest):
        manifest = _read_manifest(backend, folder)
        if manifest is None:
            unfinished.append(folder)
        else:
            infos.append(_info(dest, n, manifest))
    checkpoints = [i for i in infos if _checkpoint(i.manifest) is not None]
    keep = {i.version for i in checkpoints[-keep_last:]}
    best = best_version(infos)
    if best is not None:
        keep.add(best.version)
    removed = [i for i in checkpoints if i.version not in keep]
    for info in removed:
        _remove_folder(backend, info.folder_ref)
        logger.info("removed %s (keep_last=%d)", info.ref, keep_last)
    if keep:
        oldest_kept = min(keep)
        for folder in unfinished:
            m = _VERSION_RE.match(folder.name)
            if m and int(m.group(1)) < oldest_kept:
                _remove_folder(backend, folder.ref)
                logger.info("removed the unfinished %s/%s", _dest_str(dest), folder.name)
    _remember_versions(dest, [i for i in infos if i not in removed])
    return removed
