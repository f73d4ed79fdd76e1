"""Files, folders, users and blobs of the Drive emulator, with optional persistence.

The store knows nothing of HTTP. It keeps one :class:`FileRecord` per file or
folder (metadata only) and one blob file per file with content, in ``blob_dir``,
so a 256 MiB file costs 256 MiB of disk and no memory. New content is written to
a staging file (:class:`BlobWriter`, which hashes while writing) and renamed over
the old blob, so a download that already opened the old blob keeps reading it.

Sharing model (a subset of Drive's):

* every file has one owner; a user's "My Drive" root folder is a record with
  ``is_root`` and no parents;
* ``readers`` / ``writers`` grant access to named users and ``public`` is
  "anyone with the link can view"; all three are inherited by everything below
  a folder;
* only the owner may trash, untrash or delete.

With ``state_path`` set, :meth:`Store.save` writes all metadata (and the
emulator's extra state, e.g. registered service-account keys) as JSON
atomically; :meth:`Store.load` reads it back, so files and ids survive a restart.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "FOLDER_MIME",
    "BlobWriter",
    "FileRecord",
    "StagedBlob",
    "Store",
    "User",
    "split_drive_path",
]

logger = logging.getLogger("colabmodels.testing.fakedrive")

FOLDER_MIME = "application/vnd.google-apps.folder"
"""mimeType of Drive folders."""

GOOGLE_APPS_PREFIX = "application/vnd.google-apps."

_ID_ALPHABET_TRANS = bytes.maketrans(b"+/", b"-_")
_STATE_FORMAT = 1


@dataclass
class User:
    """A Drive user of the emulator."""

    email: str
    display_name: str
    root_id: str
    permission_id: str


@dataclass
class FileRecord:
    """Metadata of one file or folder. Rendered to a v2 resource by ``resources``."""

    id: str
    title: str
    mime_type: str
    owner: str
    parents: list[str]
    created: float
    modified: float
    seq: int
    description: str | None = None
    properties: list[dict[str, str]] = field(default_factory=list)
    starred: bool = False
    hidden: bool = False
    restricted: bool = False
    viewed: bool = False
    explicitly_trashed: bool = False
    trashed_date: float | None = None
    trashing_user: str | None = None
    size: int = 0
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    has_blob: bool = False
    version: int = 1
    public: bool = False
    readers: list[str] = field(default_factory=list)
    writers: list[str] = field(default_factory=list)
    original_filename: str | None = None
    last_modifying_user: str | None = None
    is_root: bool = False

    @property
    def is_folder(self) -> bool:
        """True for folders (including a user's root)."""
        return self.mime_type == FOLDER_MIME

    @property
    def is_binary(self) -> bool:
        """True for files with downloadable content (not folders or Google Docs)."""
        return not self.mime_type.startswith(GOOGLE_APPS_PREFIX)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form for persistence."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileRecord:
        """Inverse of :meth:`to_json`; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class StagedBlob:
    """Content written by a :class:`BlobWriter`, ready to be attached to a file."""

    path: Path
    size: int
    md5: str
    sha1: str
    sha256: str


class BlobWriter:
    """Write new content into a staging file in the blob directory, hashing as it goes.

    Use :meth:`finish` to get a :class:`StagedBlob` for :meth:`Store.attach_blob`,
    or :meth:`abort` to throw the bytes away.
    """

    def __init__(self, blob_dir: Path) -> None:
        fd, name = tempfile.mkstemp(prefix="staging-", suffix=".part", dir=blob_dir)
        self.path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5()
        self._sha1 = hashlib.sha1()
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``."""
        self._file.write(data)
        self._md5.update(data)
        self._sha1.update(data)
        self._sha256.update(data)
        self.size += len(data)

    def copy_from(self, src: BinaryIO, chunk_size: int = 1 << 20) -> None:
        """Append everything readable from ``src``."""
        while True:
            chunk = src.read(chunk_size)
            if not chunk:
                return
            self.write(chunk)

    def finish(self) -> StagedBlob:
        """Close the staging file and return what was written."""
        self._file.close()
        return StagedBlob(
            self.path,
            self.size,
            self._md5.hexdigest(),
            self._sha1.hexdigest(),
            self._sha256.hexdigest(),
        )

    def abort(self) -> None:
        """Close and delete the staging file."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def split_drive_path(path: str) -> list[str]:
    """Split a ``MyDrive/a/b`` path into title components below the root.

    Accepts ``MyDrive/...``, ``My Drive/...``, ``/content/drive/MyDrive/...`` and
    paths without a root component (taken relative to My Drive).
    """
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if parts[:2] == ["content", "drive"]:
        parts = parts[2:]
    if parts and parts[0] in ("MyDrive", "My Drive", "root"):
        parts = parts[1:]
    return parts


class Store:
    """All metadata of the emulator, guarded by one re-entrant lock.

    Args:
        blob_dir: where blob files live (created if missing).
        seed: seeds file ids, so the same seed and the same sequence of
            creations give the same ids.
        state_path: JSON file for :meth:`save` / :meth:`load`, or None.
    """

    def __init__(self, blob_dir: Path, *, seed: int = 0, state_path: Path | None = None) -> None:
        self.blob_dir = Path(blob_dir)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self.state_path = state_path
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.files: dict[str, FileRecord] = {}
        self.default_user: str | None = None
        self.extra: dict[str, Any] = {}
        self.dirty = False
        self._id_counter = 0
        self._seq = 0
        self._kids: dict[str, dict[str, None]] = {}  # parent id -> child ids (an index)

    # ---------------------------------------------------------------- ids

    def new_id(self) -> str:
        """A fresh Drive-like file id: ``1`` + 32 characters of ``[A-Za-z0-9_-]``."""
        with self.lock:
            while True:
                self._id_counter += 1
                digest = hashlib.sha256(f"fakedrive:{self.seed}:{self._id_counter}".encode()).digest()
                text = base64.b64encode(digest).translate(_ID_ALPHABET_TRANS).decode("ascii")
                file_id = "1" + text[:32]
                if file_id not in self.files:
                    return file_id

    def _root_id(self) -> str:
        with self.lock:
            self._id_counter += 1
            digest = hashlib.sha256(f"fakedrive-root:{self.seed}:{self._id_counter}".encode()).digest()
            text = base64.b64encode(digest).translate(_ID_ALPHABET_TRANS).decode("ascii")
            return "0A" + text[:11] + "Uk9PVA"

    # -------------------------------------------------------------- users

    def add_user(self, email: str, display_name: str | None = None) -> User:
        """Create a user with an empty My Drive (or return the existing one)."""
        email = normalize_email(email)
        with self.lock:
            if email in self.users:
                return self.users[email]
            root_id = self._root_id()
            now = time.time()
            self._seq += 1
            self.files[root_id] = FileRecord(
                id=root_id,
                title="My Drive",
                mime_type=FOLDER_MIME,
                owner=email,
                parents=[],
                created=now,
                modified=now,
                seq=self._seq,
                is_root=True,
                last_modifying_user=email,
            )
            name = display_name or email.split("@", 1)[0].replace(".", " ").title()
            perm = "".join(c for c in hashlib.sha1(email.encode()).hexdigest() if c.isdigit())[:20]
            user = User(email=email, display_name=name, root_id=root_id, permission_id=perm or "0")
            self.users[email] = user
            if self.default_user is None:
                self.default_user = email
            self.dirty = True
            return user

    def user(self, email: str | None = None) -> User:
        """The user with ``email`` (a bare name means ``name@example.com``), or the default user."""
        with self.lock:
            if email is None:
                if self.default_user is None:
                    raise KeyError("no users")
                return self.users[self.default_user]
            return self.users[normalize_email(email)]

    # ------------------------------------------------------------ lookups

    def get(self, file_id: str) -> FileRecord | None:
        """The record with this id, or None."""
        with self.lock:
            return self.files.get(file_id)

    def snapshot(self) -> list[FileRecord]:
        """All records, in creation order (a copy of the list; records are live)."""
        with self.lock:
            return list(self.files.values())

    def children(self, folder_id: str) -> list[FileRecord]:
        """Records whose parents include ``folder_id``, in creation order."""
        with self.lock:
            kids = [self.files[k] for k in self._kids.get(folder_id, ()) if k in self.files]
        kids.sort(key=lambda r: r.seq)
        return kids

    def _index_add(self, rec: FileRecord) -> None:
        for pid in rec.parents:
            self._kids.setdefault(pid, {})[rec.id] = None

    def _index_remove(self, rec: FileRecord) -> None:
        for pid in rec.parents:
            kids = self._kids.get(pid)
            if kids is not None:
                kids.pop(rec.id, None)

    def _reindex(self) -> None:
        self._kids = {}
        for rec in self.files.values():
            self._index_add(rec)

    def set_parents(self, rec: FileRecord, parents: list[str]) -> None:
        """Move ``rec`` to ``parents`` (keeps the children index right)."""
        with self.lock:
            known = rec.id in self.files and self.files[rec.id] is rec
            if known:
                self._index_remove(rec)
            rec.parents = list(parents)
            if known:
                self._index_add(rec)
                self.dirty = True

    def commit(self, rec: FileRecord, edited: FileRecord) -> None:
        """Copy every field of ``edited`` (a scratch copy of ``rec``) into ``rec``."""
        with self.lock:
            for f in dataclasses.fields(FileRecord):
                if f.name != "parents":
                    setattr(rec, f.name, getattr(edited, f.name))
            if edited.parents != rec.parents:
                self.set_parents(rec, edited.parents)
            self.dirty = True

    def ancestors_and_self(self, rec: FileRecord) -> Iterator[FileRecord]:
        """``rec`` and every folder above it (each once; parents that vanished are skipped)."""
        seen: set[str] = set()
        stack = [rec]
        with self.lock:
            while stack:
                cur = stack.pop()
                if cur.id in seen:
                    continue
                seen.add(cur.id)
                yield cur
                for pid in cur.parents:
                    parent = self.files.get(pid)
                    if parent is not None:
                        stack.append(parent)

    def is_trashed(self, rec: FileRecord) -> bool:
        """True when ``rec`` or a folder above it was trashed."""
        return any(a.explicitly_trashed for a in self.ancestors_and_self(rec))

    def is_public(self, rec: FileRecord) -> bool:
        """True when ``rec`` or a folder above it is shared with anyone with the link."""
        return any(a.public for a in self.ancestors_and_self(rec))

    def role(self, rec: FileRecord, email: str | None) -> str | None:
        """``owner``, ``writer``, ``reader`` or None: what ``email`` may do with ``rec``."""
        if email is None:
            return "reader" if self.is_public(rec) else None
        if rec.owner == email:
            return "owner"
        best: str | None = None
        for a in self.ancestors_and_self(rec):
            if a.owner == email or email in a.writers:
                return "writer"
            if email in a.readers or a.public:
                best = "reader"
        return best

    def can_read(self, rec: FileRecord, email: str | None) -> bool:
        """True when ``email`` may see ``rec``."""
        return self.role(rec, email) is not None

    def can_write(self, rec: FileRecord, email: str | None) -> bool:
        """True when ``email`` may change ``rec``."""
        return self.role(rec, email) in ("owner", "writer")

    def is_shared(self, rec: FileRecord) -> bool:
        """True when anyone but the owner has access."""
        return any(a.public or a.readers or a.writers for a in self.ancestors_and_self(rec))

    def blob_path(self, rec: FileRecord) -> Path:
        """Where the content of ``rec`` lives."""
        return self.blob_dir / rec.id

    def is_descendant(self, rec: FileRecord, folder_id: str) -> bool:
        """True when ``folder_id`` is ``rec`` or one of the folders above it."""
        return any(a.id == folder_id for a in self.ancestors_and_self(rec))

    # ----------------------------------------------------------- mutations

    def new_blob(self) -> BlobWriter:
        """A staging writer for new content."""
        return BlobWriter(self.blob_dir)

    def create(
        self,
        *,
        owner: str,
        title: str,
        mime_type: str,
        parents: list[str],
        blob: StagedBlob | None = None,
        file_id: str | None = None,
        description: str | None = None,
        properties: list[dict[str, str]] | None = None,
        created: float | None = None,
        modified: float | None = None,
        original_filename: str | None = None,
        starred: bool = False,
        public: bool = False,
    ) -> FileRecord:
        """Add a file (with ``blob`` as its content) or folder and return its record."""
        now = time.time()
        with self.lock:
            if file_id is None:
                file_id = self.new_id()
            self._seq += 1
            rec = FileRecord(
                id=file_id,
                title=title,
                mime_type=mime_type,
                owner=owner,
                parents=list(parents),
                created=created if created is not None else now,
                modified=modified if modified is not None else now,
                seq=self._seq,
                description=description,
                properties=[dict(p) for p in (properties or [])],
                original_filename=original_filename,
                starred=starred,
                public=public,
                last_modifying_user=owner,
            )
            if blob is not None:
                self._attach(rec, blob)
            elif rec.is_binary and not rec.is_folder:
                # A metadata-only insert of a binary file: empty content.
                empty = self.new_blob().finish()
                self._attach(rec, empty)
            self.files[file_id] = rec
            self._index_add(rec)
            self.dirty = True
            return rec

    def _attach(self, rec: FileRecord, blob: StagedBlob) -> None:
        os.replace(blob.path, self.blob_path(rec))
        rec.size = blob.size
        rec.md5 = blob.md5
        rec.sha1 = blob.sha1
        rec.sha256 = blob.sha256
        rec.has_blob = True

    def attach_blob(self, rec: FileRecord, blob: StagedBlob, *, by: str | None = None) -> None:
        """Replace the content of ``rec`` with ``blob`` (a new version)."""
        with self.lock:
            self._attach(rec, blob)
            self.touch(rec, by=by)

    def touch(self, rec: FileRecord, *, by: str | None = None, modified: float | None = None) -> None:
        """Record a change: bump version and modifiedDate."""
        with self.lock:
            rec.version += 1
            rec.modified = modified if modified is not None else max(time.time(), rec.modified)
            if by:
                rec.last_modifying_user = by
            self.dirty = True

    def copy_blob(self, src: FileRecord) -> StagedBlob:
        """A staged copy of the content of ``src`` (a hard link when possible)."""
        writer = self.new_blob()
        writer.abort()
        staged = writer.path
        try:
            os.link(self.blob_path(src), staged)
        except OSError:
            writer = self.new_blob()
            with open(self.blob_path(src), "rb") as f:
                writer.copy_from(f)
            return writer.finish()
        return StagedBlob(staged, src.size, src.md5 or "", src.sha1 or "", src.sha256 or "")

    def delete(self, rec: FileRecord) -> list[str]:
        """Delete ``rec`` and, for a folder, everything below it that has no other parent.

        Returns the deleted ids.
        """
        deleted: list[str] = []
        with self.lock:
            stack = [rec]
            while stack:
                cur = stack.pop()
                if cur.id not in self.files:
                    continue
                del self.files[cur.id]
                self._index_remove(cur)
                deleted.append(cur.id)
                if cur.has_blob:
                    with contextlib.suppress(OSError):
                        self.blob_path(cur).unlink()
                for kid_id in list(self._kids.pop(cur.id, ())):
                    child = self.files.get(kid_id)
                    if child is None or cur.id not in child.parents:
                        continue
                    child.parents.remove(cur.id)
                    if not child.parents:
                        stack.append(child)
            self.dirty = True
        return deleted

    # --------------------------------------------------------------- paths

    def resolve_path(self, path: str, *, owner: str | None = None) -> FileRecord | None:
        """The record at ``MyDrive/a/b`` in the My Drive of ``owner`` (default user)."""
        user = self.user(owner)
        with self.lock:
            cur = self.files[user.root_id]
            for title in split_drive_path(path):
                found = [r for r in self.children(cur.id) if r.title == title and not r.explicitly_trashed]
                if not found:
                    return None
                # Prefer a folder when several items share a title.
                found.sort(key=lambda r: (not r.is_folder, r.seq))
                cur = found[0]
            return cur

    def makedirs(self, parts: list[str], *, owner: str | None = None) -> FileRecord:
        """Create (or reuse) the folders ``parts`` below the My Drive of ``owner``."""
        user = self.user(owner)
        with self.lock:
            cur = self.files[user.root_id]
            for title in parts:
                existing = [
                    r
                    for r in self.children(cur.id)
                    if r.title == title and r.is_folder and not r.explicitly_trashed
                ]
                if existing:
                    cur = min(existing, key=lambda r: r.seq)
                else:
                    cur = self.create(owner=user.email, title=title, mime_type=FOLDER_MIME, parents=[cur.id])
            return cur

    # --------------------------------------------------------- persistence

    def to_state(self) -> dict[str, Any]:
        """Everything needed to restore the store (without blobs)."""
        with self.lock:
            return {
                "format": _STATE_FORMAT,
                "seed": self.seed,
                "id_counter": self._id_counter,
                "seq": self._seq,
                "default_user": self.default_user,
                "users": [dataclasses.asdict(u) for u in self.users.values()],
                "files": [r.to_json() for r in self.files.values()],
                "extra": self.extra,
            }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the contents with ``state`` (from :meth:`to_state`)."""
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"unsupported fakedrive state format {state.get('format')!r}")
        with self.lock:
            self._id_counter = int(state["id_counter"])
            self._seq = int(state["seq"])
            self.default_user = state.get("default_user")
            self.users = {u["email"]: User(**u) for u in state["users"]}
            self.files = {}
            for data in state["files"]:
                rec = FileRecord.from_json(data)
                self.files[rec.id] = rec
            self._reindex()
            self.extra = dict(state.get("extra") or {})
            self.dirty = False

    def save(self) -> None:
        """Write the state atomically to ``state_path`` (no-op without one)."""
        if self.state_path is None:
            return
        with self.lock:
            state = self.to_state()
            self.dirty = False
        tmp = self.state_path.with_name(self.state_path.name + f".{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(tmp, self.state_path)

    def load(self) -> bool:
        """Read ``state_path`` if it exists; return whether anything was loaded."""
        if self.state_path is None or not self.state_path.exists():
            return False
        with open(self.state_path, encoding="utf-8") as f:
            self.load_state(json.load(f))
        # Staging files of an unfinished run are garbage.
        for leftover in self.blob_dir.glob("staging-*.part"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        logger.info("fakedrive: loaded %d files from %s", len(self.files), self.state_path)
        return True


def normalize_email(name: str) -> str:
    """``bob`` -> ``bob@example.com``; addresses are lower-cased."""
    name = name.strip().lower()
    return name if "@" in name else f"{name}@example.com"
