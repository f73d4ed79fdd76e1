"""Saved models as numbered versions: ``DEST/v1/``, ``DEST/v2/``, each with a ``manifest.json``.

A version is complete when its ``manifest.json`` exists; it is uploaded last, so an
interrupted save leaves a folder that :func:`list_versions` ignores.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import NotFoundError, OfflineError, RefError, VersionError
from .progress import progress_bar
from .refs import Ref

logger = logging.getLogger("colabmodels")

MANIFEST = "manifest.json"
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

    def __repr__(self) -> str:
        meta = ", ".join(f"{k}={v!r}" for k, v in self.metadata.items())
        return f"<SavedModelInfo {self.ref} {self.framework}/{self.format} {self.created} {meta}>"


def _dest_str(dest: Ref) -> str:
    return str(dest.unversioned())


def _info(dest: Ref, n: int, manifest: dict[str, Any]) -> SavedModelInfo:
    return SavedModelInfo(
        dest=_dest_str(dest), version=n, ref=f"{_dest_str(dest)}@v{n}",
        folder_ref=dest.unversioned().child(f"v{n}"),
        framework=manifest.get("framework", ""), format=manifest.get("format", ""),
        created=manifest.get("created", ""), metadata=manifest.get("metadata", {}),
        files=manifest.get("files", []), manifest=manifest,
    )


# -- reading ----------------------------------------------------------------------------------

def _version_folders(backend: Any, dest: Ref) -> list[tuple[int, Any]]:
    try:
        children = list(backend.list(dest.unversioned()))
    except NotFoundError:
        return []
    found = []
    for child in children:
        m = _VERSION_RE.match(child.name)
        if m and child.is_dir:
            found.append((int(m.group(1)), child))
    return sorted(found, key=lambda item: item[0])


def _read_manifest(backend: Any, folder: Any) -> dict[str, Any] | None:
    ref = folder.ref.child(MANIFEST) if folder.ref.path else None
    if ref is None:
        return None
    try:
        raw = backend.read_range(backend.stat(ref).ref, 0, None)
    except NotFoundError:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        logger.warning("%s has an unreadable manifest; skipping it", folder.ref)
        return None


def list_versions(dest: Ref) -> list[SavedModelInfo]:
    """Complete versions under ``dest``, oldest first."""
    from .api import backend_for

    backend = backend_for(dest)
    infos = []
    for n, folder in _version_folders(backend, dest):
        manifest = _read_manifest(backend, folder)
        if manifest is not None:
            infos.append(_info(dest, n, manifest))
    _remember_versions(dest, infos)
    return infos


def _remember_versions(dest: Ref, infos: list[SavedModelInfo]) -> None:
    from .cache import cache

    with contextlib.suppress(OSError):
        cache.remember_info(f"versions:{_dest_str(dest)}", {"versions": [i.version for i in infos]})


def resolve_version(ref: Ref, *, offline: bool = False) -> SavedModelInfo:
    """The version ``REF@vN`` / ``REF@latest`` names.

    Raises:
        VersionError: no such version (the message lists the ones there are).
    """
    assert ref.version is not None
    dest = ref.unversioned()
    if offline:
        from .cache import cache

        known = (cache.recall(f"versions:{_dest_str(dest)}") or {}).get("versions") or []
        if not known:
            raise OfflineError(f"versions of {_dest_str(dest)} are not known offline; list them online once")
        n = max(known) if ref.version == "latest" else int(ref.version[1:])
        return _info(dest, n, {})
    infos = list_versions(dest)
    if not infos:
        raise VersionError(f"no saved versions under {_dest_str(dest)}; save one with cm.save_model")
    if ref.version == "latest":
        return infos[-1]
    wanted = int(ref.version[1:])
    for info in infos:
        if info.version == wanted:
            return info
    have = ", ".join(f"v{i.version}" for i in infos)
    raise VersionError(f"{_dest_str(dest)} has no {ref.version} (it has {have})")


def model_path_in(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The model file (or folder) inside a fetched version folder, and its manifest."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as e:
        raise NotFoundError(f"{folder} has no readable {MANIFEST}: {e}") from None
    rel = manifest.get("model_path") or manifest["files"][0]["path"]
    target = (folder / rel).resolve()
    if folder.resolve() not in target.parents and target != folder.resolve():
        raise RefError(f"manifest in {folder} points outside its version folder: {rel!r}")
    return target, manifest


# -- claiming a version number ----------------------------------------------------------------

class _Claim:
    """One saver's claim on ``vN``; see the module docstring for the protocol."""

    def __init__(self, backend: Any, dest: Ref, n: int) -> None:
        self.backend, self.dest, self.n = backend, dest, n
        self.folder = dest.unversioned().child(f"v{n}")
        self.token = uuid.uuid4().hex
        self.handle: Any = None
        self.parent_id: str | None = None

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
            self.parent_id = self.backend.makedirs(self.dest.unversioned()).ref.id
            meta = self.backend.new_folder(
                self.parent_id, f"v{self.n}",
                properties=[{"key": "cm_claim", "value": self.token, "visibility": "PUBLIC"}],
                what=f"claiming v{self.n} under {self.dest.path}")
            self.handle = meta["id"]
            return True
        with tempfile.NamedTemporaryFile() as empty:
            self.handle = self.folder.child(f".claim-{self.token}")
            self.backend.upload(Path(empty.name), self.handle)
        return True

    def sole(self) -> bool:
        """True when this claim is the only one visible."""
        source = self.dest.source
        if source == "local":
            return True  # mkdir is exclusive
        if source == "drive":
            twins = self.backend.folders_named(self.parent_id, f"v{self.n}",
                                               what=f"checking the claim on v{self.n}")
            return [t["id"] for t in twins] == [self.handle]
        claims = [c for c in self.backend.list(self.folder) if c.name.startswith(".claim-")]
        return [c.name for c in claims] == [f".claim-{self.token}"]

    def withdraw(self) -> None:
        with contextlib.suppress(Exception):
            if self.dest.source == "local":
                shutil.rmtree(self.folder.path or "", ignore_errors=True)
            elif self.dest.source == "drive":
                self.backend.delete(Ref("drive", id=self.handle))
            elif self.handle is not None:
                self.backend.delete(self.handle)

    def adopt(self) -> None:
        """After winning: make the folder path resolve to this claim (Drive may hold twins briefly)."""
        if self.dest.source == "drive":
            assert self.folder.path is not None
            self.backend.session.remember_path(self.folder.path, self.handle)
        elif self.dest.source in ("s3", "gcs") and self.handle is not None:
            with contextlib.suppress(Exception):
                self.backend.delete(self.handle)


def _claim_version(backend: Any, dest: Ref, version: int | str) -> _Claim:
    fixed = None if version == "auto" else int(str(version).lstrip("v"))
    if fixed is not None and fixed < 1:
        raise VersionError("versions are numbered from 1")
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


def _properties(manifest: dict[str, Any]) -> dict[str, str]:
    props = {
        "cm_version": str(manifest["version"]),
        "cm_framework": manifest["framework"],
        "cm_format": manifest["format"],
        "cm_created": manifest["created"],
    }
    for key, value in manifest.get("metadata", {}).items():
        props[f"meta_{key}"] = value if isinstance(value, str) else json.dumps(value)
    out = {}
    for key, value in props.items():
        budget = _PROPERTY_LIMIT - len(key.encode())
        if budget <= 0:
            continue
        encoded = value.encode()[:budget].decode("utf-8", "ignore")
        out[key] = encoded
    return out


def _description(manifest: dict[str, Any]) -> str:
    meta = " ".join(f"{k}={v}" for k, v in manifest.get("metadata", {}).items())
    return (f"colabmodels v{manifest['version']} · {manifest['framework']} "
            f"{manifest.get('framework_version', '')} · {manifest['format']} · "
            f"{manifest['created']}" + (f" · {meta}" if meta else ""))


def save(obj: Any, dest: Ref, *, version: int | str = "auto", metadata: dict[str, Any] | None = None,
         format: str | None = None, progress: bool = True) -> SavedModelInfo:
    """Serialise ``obj`` and upload it as a new version under ``dest`` (see ``cm.save_model``)."""
    from .api import backend_for
    from .formats import save_object

    if dest.version:
        raise RefError(f"save to {_dest_str(dest)}, not to a version ({dest.raw}); the number is chosen for you")
    metadata = dict(metadata or {})
    json.dumps(metadata)  # fail early on values the manifest cannot hold
    backend = backend_for(dest, write=True)
    with tempfile.TemporaryDirectory(prefix="colabmodels-save-") as tmp:
        staged = Path(tmp)
        saved = save_object(obj, staged, format=format)
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
        }
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        total = sum(f["size"] for f in files)
        try:
            with progress_bar(total, f"{_dest_str(dest)}@v{claim.n}", enabled=progress) as report:
                for f in files:
                    backend.upload(staged / f["path"], claim.folder.child(f["path"]), progress=report)
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
    logger.info("saved %s (%s)", info.ref, _description(manifest))
    return info

