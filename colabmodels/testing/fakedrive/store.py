"""Files, folders, users and blobs of the Drive emulator, with optional persistence.

The store knows nothing of HTTP. It keeps one ``FileRecord`` per file or
folder (metadata only) and one blob file per file with content, in ``blob_dir``,
so a 256 MiB file costs 256 MiB of disk and no memory. New content is written to
a staging file (``BlobWriter``, which hashes while writing) and renamed over
the old blob, so a download that already opened the old blob keeps reading it.

Sharing model (a subset of Drive's):

* every file has one owner; a user's "My Drive" root folder is a record with
  ``is_root`` and no parents;
* ``readers`` / ``writers`` grant access to named users and ``public`` is
  "anyone with the link can view"; all three are inherited by everything below
  a folder;
* only the owner may trash, untrash or delete.

The store keeps an index of each folder's children (in creation order) and a
``generation`` counter that every change moves on (setting ``dirty`` does it);
``files.list`` uses the first to look only inside the folder a query names and
the second to know when a sorted listing it kept for the next pages is stale.

With ``state_path`` set, ``Store.save`` writes all metadata (and the
emulator's extra state, e.g. registered service-account keys) as JSON
atomically; ``Store.load`` reads it back, so files and ids survive a restart.
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
    "SharedDrive",
    "StagedBlob",
    "Store",
    "User",
    "split_drive_path",
]

logger = logging.getLogger("colabmodels.testing.fakedrive")

FOLDER_MIME = "application/vnd.google-apps.folder"
"""mimeType of Drive folders."""

SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
"""mimeType of Drive shortcuts."""

GOOGLE_APPS_PREFIX = "application/vnd.google-apps."

ROLE_RANK = {"reader": 1, "commenter": 2, "writer": 3, "fileOrganizer": 4, "organizer": 5, "owner": 6}
"""Roles from weakest to strongest (``commenter`` is v2's reader + additionalRoles commenter)."""

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
    drive_id: str | None = None
    shortcut_target: str | None = None
    shortcut_target_mime: str | None = None
    image: dict[str, int] | None = None
    grants: list[dict[str, Any]] = field(default_factory=list)
    revisions: list[dict[str, Any]] = field(default_factory=list)
    change_id: int = 0

    @property
    def is_folder(self) -> bool:
        """True for folders (including a user's root)."""
        return self.mime_type == FOLDER_MIME

    @property
    def is_binary(self) -> bool:
        """True for files with downloadable content (not folders or Google Docs)."""
        return not self.mime_type.startswith(GOOGLE_APPS_PREFIX)

    @property
    def is_drive_root(self) -> bool:
        """True for the root folder of a shared drive (its id is the drive's id)."""
        return self.drive_id is not None and self.drive_id == self.id

    @property
    def is_any_root(self) -> bool:
        """A My Drive root or a shared drive root (cannot be trashed, moved or listed)."""
        return self.is_root or self.is_drive_root

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form for persistence."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileRecord:
        """Inverse of ``to_json``; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class SharedDrive:
    """A shared drive: its root folder is the file record with the same id."""

    id: str
    name: str
    created: float
    members: dict[str, str] = field(default_factory=dict)  # email -> organizer/fileOrganizer/writer/commenter/reader
    hidden: bool = False
    color_rgb: str = "#4986e7"
    restrictions: dict[str, bool] = field(default_factory=dict)


@dataclass
class StagedBlob:
    """Content written by a ``BlobWriter``, ready to be attached to a file."""

    path: Path
    size: int
    md5: str
    sha1: str
    sha256: str


class BlobWriter:
    """Write new content into a staging file in the blob directory, hashing as it goes.

    Use ``finish`` to get a ``StagedBlob`` for ``Store.attach_blob``,
    or ``abort`` to throw the bytes away.
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
        state_path: JSON file for ``save`` / ``load``, or None.
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
        self.generation = 0  # bumped by every change; listing caches are keyed by it
        self._dirty = False
        self._id_counter = 0
        self._seq = 0
        self._kids: dict[str, dict[str, None]] = {}  # parent id -> child ids (an index)
        self._kids_unordered: set[str] = set()  # parents whose child ids may be out of creation order
        self.drives: dict[str, SharedDrive] = {}
        self.groups: dict[str, list[str]] = {}  # group email -> member emails
        self.change_counter = 0
        self.tombstones: list[dict[str, Any]] = []  # deleted files, for changes.list
        self.max_revisions = 100

    @property
    def dirty(self) -> bool:
        """True when something changed since the last ``save``."""
        return self._dirty

    @dirty.setter
    def dirty(self, value: bool) -> None:
        # Every mutation marks the store dirty, so this is where the generation moves on.
        if value:
            self.generation += 1
        self._dirty = value

    def bump(self) -> None:
        """Note a change that needs no saving (drops cached listings)."""
        with self.lock:
            self.generation += 1

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
            digest = hashlib.sha1(email.encode()).hexdigest()
            perm = "".join(c for c in digest if c.isdigit())[:20]
            if len(perm) < 20:  # Drive's user permission ids are 20 digits
                perm = str(int(digest, 16))[:20]
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

    @staticmethod
    def turns(records: list[FileRecord], size: int = 64) -> Iterator[list[FileRecord]]:
        """``records`` in slices of ``size``, for loops that look many records up: hold
        ``lock`` over each slice (``with store.lock:``). Each look-up takes the lock itself, and
        a few listings doing that a dozen times per record at once spent most of their time
        queueing for it; within a slice those are re-entries. The lock is never held between
        slices (nor by a suspended generator, which another thread could finalize)."""
        for start in range(0, len(records), size):
            yield records[start:start + size]

    def snapshot(self) -> list[FileRecord]:
        """All records, in creation order (a copy of the list; records are live)."""
        with self.lock:
            return list(self.files.values())

    def children(self, folder_id: str) -> list[FileRecord]:
        """Records whose parents include ``folder_id``, in creation order (from the index)."""
        with self.lock:
            kids = self._kids.get(folder_id)
            if not kids:
                return []
            files = self.files
            if folder_id in self._kids_unordered:
                # A file moved in: put the ids back in creation order once, not on every call.
                ordered = sorted((files[k] for k in kids if k in files), key=lambda r: r.seq)
                self._kids[folder_id] = dict.fromkeys(r.id for r in ordered)
                self._kids_unordered.discard(folder_id)
                return ordered
            return [files[k] for k in kids if k in files]

    def _index_add(self, rec: FileRecord) -> None:
        for pid in rec.parents:
            kids = self._kids.setdefault(pid, {})
            if kids:
                last = self.files.get(next(reversed(kids)))
                if last is None or last.seq > rec.seq:
                    self._kids_unordered.add(pid)
            kids[rec.id] = None

    def _index_remove(self, rec: FileRecord) -> None:
        for pid in rec.parents:
            kids = self._kids.get(pid)
            if kids is not None:
                kids.pop(rec.id, None)

    def _reindex(self) -> None:
        self._kids = {}
        self._kids_unordered = set()
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
                self._refresh_drive(rec)
                self.note_change(rec)

    def _refresh_drive(self, rec: FileRecord) -> None:
        """After a move: ``rec`` and everything below it take the drive of the new parents."""
        drive_id = self._drive_of(rec.parents)
        stack = [rec]
        while stack:
            cur = stack.pop()
            if cur.drive_id == drive_id or cur.is_any_root:
                continue
            cur.drive_id = drive_id
            stack.extend(self.files[k] for k in self._kids.get(cur.id, ()) if k in self.files)

    def commit(self, rec: FileRecord, edited: FileRecord) -> None:
        """Copy every field of ``edited`` (a scratch copy of ``rec``) into ``rec``."""
        with self.lock:
            for f in dataclasses.fields(FileRecord):
                if f.name != "parents":
                    setattr(rec, f.name, getattr(edited, f.name))
            if edited.parents != rec.parents:
                self.set_parents(rec, edited.parents)
            self.note_change(rec)

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
        """True when ``rec`` or a folder above it is readable by anyone with the link."""
        return any(a.public or any(g["type"] == "anyone" for g in a.grants) for a in self.ancestors_and_self(rec))

    def _grant_applies(self, grant: dict[str, Any], email: str | None) -> bool:
        kind = grant["type"]
        if kind == "anyone":
            return True
        if email is None:
            return False
        if kind == "user":
            return grant.get("email") == email
        if kind == "group":
            return email in self.groups.get(grant.get("email", ""), ())
        if kind == "domain":
            return email.rsplit("@", 1)[-1] == grant.get("domain")
        return False

    def role(self, rec: FileRecord, email: str | None) -> str | None:
        """What ``email`` (None: a signed-out visitor) may do with ``rec``.

        One of ``owner``, ``organizer``, ``fileOrganizer``, ``writer``,
        ``commenter``, ``reader`` or None. Shared-drive members get their drive
        role on everything in the drive; grants on a folder apply below it.
        """
        best: str | None = None

        def better(candidate: str | None) -> None:
            nonlocal best
            if candidate and (best is None or ROLE_RANK[candidate] > ROLE_RANK[best]):
                best = candidate

        if rec.drive_id is not None:
            drive = self.drives.get(rec.drive_id)
            if drive is not None and email is not None:
                better(drive.members.get(email))
        elif email is not None and rec.owner == email:
            return "owner"
        for a in self.ancestors_and_self(rec):
            if email is not None and a.drive_id is None and a.owner == email:
                better("writer")
            if email is not None and email in a.writers:
                better("writer")
            if (email is not None and email in a.readers) or a.public:
                better("reader")
            for g in a.grants:
                if self._grant_applies(g, email):
                    better(g["role"])
        return best

    def can_read(self, rec: FileRecord, email: str | None) -> bool:
        """True when ``email`` may see ``rec``."""
        return self.role(rec, email) is not None

    def can_write(self, rec: FileRecord, email: str | None) -> bool:
        """True when ``email`` may change ``rec``."""
        role = self.role(rec, email)
        return role is not None and ROLE_RANK[role] >= ROLE_RANK["writer"]

    def can_delete(self, rec: FileRecord, email: str | None) -> bool:
        """Owner in My Drive; organizer or file organizer in a shared drive."""
        role = self.role(rec, email)
        return role is not None and ROLE_RANK[role] >= ROLE_RANK["fileOrganizer"]

    def has_direct_access(self, rec: FileRecord, email: str) -> bool:
        """Access other than "anyone with the link": ownership, membership, a named or domain grant."""
        if rec.drive_id is not None:
            drive = self.drives.get(rec.drive_id)
            if drive is not None and email in drive.members:
                return True
        for a in self.ancestors_and_self(rec):
            if (a.owner == email and a.drive_id is None) or email in a.readers or email in a.writers:
                return True
            for g in a.grants:
                if g["type"] != "anyone" and not g.get("withLink") and self._grant_applies(g, email):
                    return True
        return False

    def shared_directly_with(self, rec: FileRecord, email: str) -> bool:
        """Whether ``rec`` itself (not a folder above it) is shared with ``email`` by name.

        This is Drive's "Shared with me": a named reader/writer or a user, group
        or domain permission on the item, not "anyone with the link", not the
        owner, never for shared-drive items. Items inside a shared folder are
        reached through the folder and are not "shared with me" themselves.
        """
        if rec.drive_id is not None or rec.owner == email:
            return False
        if email in rec.readers or email in rec.writers:
            return True
        return any(
            g["type"] != "anyone" and not g.get("withLink") and self._grant_applies(g, email) for g in rec.grants
        )

    def is_shared(self, rec: FileRecord) -> bool:
        """True when anyone but the owner has access."""
        return any(a.public or a.readers or a.writers or a.grants for a in self.ancestors_and_self(rec))

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
        drive_id: str | None = None,
    ) -> FileRecord:
        """Add a file (with ``blob`` as its content) or folder and return its record.

        Files below a shared drive's folders get its ``drive_id`` automatically.
        """
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
            if drive_id is None:
                drive_id = self._drive_of(parents)
            rec.drive_id = drive_id
            if blob is not None:
                self._attach(rec, blob, by=owner)
            elif rec.is_binary and not rec.is_folder:
                # A metadata-only insert of a binary file: empty content.
                empty = self.new_blob().finish()
                self._attach(rec, empty, by=owner)
            self.files[file_id] = rec
            self._index_add(rec)
            self.note_change(rec)
            return rec

    def revision_path(self, rec: FileRecord, rev_id: str) -> Path:
        """Where the content of an older revision of ``rec`` lives."""
        return self.blob_dir / f"{rec.id}.rev-{rev_id}"

    def revision_blob(self, rec: FileRecord, rev: dict[str, Any]) -> Path:
        """The content of revision ``rev`` (the head revision's is the file's blob)."""
        if rec.revisions and rec.revisions[-1] is rev:
            return self.blob_path(rec)
        return self.revision_path(rec, rev["id"])

    def _revision_id(self, rec: FileRecord, n: int) -> str:
        digest = hashlib.sha256(f"fakedrive-rev:{rec.id}:{n}".encode()).digest()
        return "0B" + base64.b64encode(digest).translate(_ID_ALPHABET_TRANS).decode("ascii")[:42]

    def _attach(self, rec: FileRecord, blob: StagedBlob, *, by: str | None = None) -> None:
        head = self.blob_path(rec)
        if rec.has_blob and rec.revisions and head.exists():
            # The old content becomes an older revision (a rename: open readers keep reading it).
            os.replace(head, self.revision_path(rec, rec.revisions[-1]["id"]))
        os.replace(blob.path, head)
        rec.size = blob.size
        rec.md5 = blob.md5
        rec.sha1 = blob.sha1
        rec.sha256 = blob.sha256
        rec.has_blob = True
        rec.image = None
        if rec.mime_type.startswith("image/"):
            from .images import probe_image

            rec.image = probe_image(head)
        n = int(rec.revisions[-1]["n"]) + 1 if rec.revisions else 1
        rec.revisions.append(
            {
                "id": self._revision_id(rec, n),
                "n": n,
                "modified": time.time(),
                "size": blob.size,
                "md5": blob.md5,
                "mime": rec.mime_type,
                "title": rec.original_filename or rec.title,
                "user": by or rec.last_modifying_user or rec.owner,
                "pinned": False,
                "published": False,
            }
        )
        self._purge_revisions(rec)

    def _purge_revisions(self, rec: FileRecord) -> None:
        """Keep at most ``max_revisions`` (pinned ones and the head always stay), as Drive does."""
        while len(rec.revisions) > self.max_revisions:
            victim = next((r for r in rec.revisions[:-1] if not r.get("pinned")), None)
            if victim is None:
                return
            self.drop_revision(rec, victim)

    def drop_revision(self, rec: FileRecord, rev: dict[str, Any]) -> None:
        """Forget an older revision and its content."""
        with self.lock:
            rec.revisions = [r for r in rec.revisions if r is not rev]
            with contextlib.suppress(OSError):
                self.revision_path(rec, rev["id"]).unlink()
            self.dirty = True

    def note_change(self, rec: FileRecord) -> None:
        """Give ``rec`` the next change id (``changes.list`` reports it)."""
        with self.lock:
            self.change_counter += 1
            rec.change_id = self.change_counter
            self.dirty = True

    def attach_blob(self, rec: FileRecord, blob: StagedBlob, *, by: str | None = None) -> None:
        """Replace the content of ``rec`` with ``blob`` (a new version)."""
        with self.lock:
            self._attach(rec, blob, by=by)
            self.touch(rec, by=by)

    def touch(self, rec: FileRecord, *, by: str | None = None, modified: float | None = None) -> None:
        """Record a change: bump version and modifiedDate."""
        with self.lock:
            rec.version += 1
            rec.modified = modified if modified is not None else max(time.time(), rec.modified)
            if by:
                rec.last_modifying_user = by
            self.note_change(rec)

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
            viewers = [email for email in self.users if self.can_read(rec, email)]
            now = time.time()
            stack = [rec]
            while stack:
                cur = stack.pop()
                if cur.id not in self.files:
                    continue
                del self.files[cur.id]
                self._index_remove(cur)
                deleted.append(cur.id)
                self.change_counter += 1
                self.tombstones.append(
                    {
                        "change_id": self.change_counter,
                        "file_id": cur.id,
                        "time": now,
                        "viewers": sorted({*viewers, cur.owner}),
                        "drive_id": cur.drive_id,
                    }
                )
                if cur.has_blob:
                    with contextlib.suppress(OSError):
                        self.blob_path(cur).unlink()
                for rev in cur.revisions[:-1]:
                    with contextlib.suppress(OSError):
                        self.revision_path(cur, rev["id"]).unlink()
                self._kids_unordered.discard(cur.id)
                for kid_id in list(self._kids.pop(cur.id, ())):
                    child = self.files.get(kid_id)
                    if child is None or cur.id not in child.parents:
                        continue
                    child.parents.remove(cur.id)
                    if not child.parents:
                        stack.append(child)
            self.dirty = True
        return deleted

    # ------------------------------------------------------- shared drives

    def new_drive_id(self) -> str:
        """A fresh shared-drive id (the same shape as a root folder id: ``0A...Uk9PVA``)."""
        return self._root_id()

    def add_shared_drive(self, name: str, *, creator: str, drive_id: str | None = None) -> SharedDrive:
        """Create a shared drive whose organizer is ``creator``."""
        with self.lock:
            drive_id = drive_id or self.new_drive_id()
            now = time.time()
            drive = SharedDrive(id=drive_id, name=name, created=now, members={creator: "organizer"})
            self.drives[drive_id] = drive
            self._seq += 1
            root = FileRecord(
                id=drive_id,
                title=name,
                mime_type=FOLDER_MIME,
                owner=creator,
                parents=[],
                created=now,
                modified=now,
                seq=self._seq,
                last_modifying_user=creator,
                drive_id=drive_id,
            )
            self.files[drive_id] = root
            self.note_change(root)
            return drive

    def drive_named(self, name: str, email: str | None = None) -> SharedDrive | None:
        """The first shared drive called ``name`` (that ``email`` is a member of, if given)."""
        with self.lock:
            for d in self.drives.values():
                if d.name == name and (email is None or email in d.members):
                    return d
        return None

    def delete_shared_drive(self, drive: SharedDrive) -> None:
        """Remove a shared drive and everything in it."""
        with self.lock:
            root = self.files.get(drive.id)
            if root is not None:
                self.delete(root)
            self.drives.pop(drive.id, None)
            self.dirty = True

    def _drive_of(self, parents: list[str]) -> str | None:
        for pid in parents:
            parent = self.files.get(pid)
            if parent is not None and parent.drive_id is not None:
                return parent.drive_id
        return None

    def _path_root(self, parts: list[str], owner: str | None, *, create: bool) -> tuple[FileRecord, list[str]] | None:
        """``(root folder, rest)`` for split path ``parts``: My Drive, or ``Shareddrives/NAME``."""
        user = self.user(owner)
        if len(parts) >= 2 and parts[0] in ("Shareddrives", "Shared drives"):
            drive = self.drive_named(parts[1], user.email) or self.drive_named(parts[1])
            if drive is None:
                if not create:
                    return None
                drive = self.add_shared_drive(parts[1], creator=user.email)
            return self.files[drive.id], parts[2:]
        return self.files[user.root_id], parts

    # --------------------------------------------------------------- paths

    def resolve_path(self, path: str, *, owner: str | None = None) -> FileRecord | None:
        """The record at ``MyDrive/a/b`` (in ``owner``'s My Drive) or ``Shareddrives/NAME/a/b``."""
        with self.lock:
            found_root = self._path_root(split_drive_path(path), owner, create=False)
            if found_root is None:
                return None
            cur, rest = found_root
            for title in rest:
                found = [r for r in self.children(cur.id) if r.title == title and not r.explicitly_trashed]
                if not found:
                    return None
                # Prefer a folder when several items share a title.
                found.sort(key=lambda r: (not r.is_folder, r.seq))
                cur = found[0]
            return cur

    def makedirs(self, parts: list[str], *, owner: str | None = None) -> FileRecord:
        """Create (or reuse) the folders ``parts`` below the My Drive of ``owner``.

        ``["Shareddrives", NAME, ...]`` works in the shared drive NAME (created on first use).
        """
        user = self.user(owner)
        with self.lock:
            found_root = self._path_root(parts, user.email, create=True)
            assert found_root is not None
            cur, parts = found_root
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
                "drives": [dataclasses.asdict(d) for d in self.drives.values()],
                "groups": self.groups,
                "change_counter": self.change_counter,
                "tombstones": self.tombstones,
                "extra": self.extra,
            }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the contents with ``state`` (from ``to_state``)."""
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
            self.drives = {d["id"]: SharedDrive(**d) for d in state.get("drives") or []}
            self.groups = {k: list(v) for k, v in (state.get("groups") or {}).items()}
            self.change_counter = int(state.get("change_counter", 0))
            self.tombstones = list(state.get("tombstones") or [])
            self.extra = dict(state.get("extra") or {})
            self.generation += 1
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
