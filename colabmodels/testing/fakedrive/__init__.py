"""A Google Drive REST v2 emulator on loopback, for tests, demos and benchmarks.

The real PyDrive2 and google-api-python-client talk to it unchanged once their
service is built from the bundled discovery document with ``rootUrl`` pointing
here (see ``.client``)::

    from colabmodels.testing import FakeDrive
    from colabmodels.testing.fakedrive.client import pydrive2_drive

    with FakeDrive() as fd:
        fd.write_service_account("key.json")
        file_id = fd.put("MyDrive/models/a.pth", b"weights")
        drive = pydrive2_drive(fd, "key.json")
        assert drive.CreateFile({"id": file_id}).GetContentString() == "weights"
        print(len(fd.requests), "requests")

Modules: ``.server`` (HTTP), ``.api`` (Drive v2 files methods, routing),
``.drives`` (shared drives), ``.permissions``, ``.revisions``,
``.changes`` (the change feed), ``.docs`` (Google Docs conversion and
export), ``.thumbnails`` and ``.images`` (thumbnails, image metadata),
``.batch`` (batch requests), ``.fields`` (``fields=``), ``.store``
(files, users, drives, persistence), ``.auth`` (keys and tokens),
``.shaping`` (bandwidth and faults), ``.uploads``, ``.webdownload``,
``.query`` (the ``q`` language), ``.resources`` (JSON rendering),
``.client`` (building clients against the emulator). It imports nothing else
of colabmodels.

Not emulated (each answers 404 ``notFound`` or is absent): comments and
replies, apps, channels and ``*.watch`` push notifications, labels
(``listLabels``/``modifyLabels``), ``generateCseToken``, the ``appDataFolder``
and ``photos`` spaces, ``fullText`` search, PDF/Office/OpenDocument exports,
content restrictions and resource keys.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import mimetypes
import os
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from .api import DriveApp
from .auth import AuthService
from .server import DriveHTTPServer, RequestLog, RequestRecord
from .shaping import FaultPlan, TokenBucket
from .store import FileRecord, StagedBlob, Store, normalize_email, split_drive_path

__all__ = ["DEFAULT_USER", "FakeDrive", "RequestRecord"]

logger = logging.getLogger("colabmodels.testing.fakedrive")

DEFAULT_USER = "ada@example.com"
"""The user service accounts sign in as, unless told otherwise."""
FREEZE_AT_FILES = 10_000
"""From this many files, ``put_many`` takes what is alive out of the garbage collector's sight."""

Content = bytes | bytearray | memoryview | str | os.PathLike | BinaryIO


class FakeDrive:
    """A running (after ``start`` or ``with``) Drive v2 emulator.

    Content helpers (all take paths like ``MyDrive/a/b.bin``; ids work too)::

        fd.put("MyDrive/models/a.pth", b"...")                  # a file; folders made as needed
        fd.put("Shareddrives/Team/models/a.pth", b"...")        # in shared drive "Team" (made on first use,
                                                                # the default user is its organizer)
        fd.add_shared_drive("Lab", members={"bob": "reader"})   # -> drive id (also its root folder's id)
        fd.put("MyDrive/notes", b"text", mime_type="application/vnd.google-apps.document")  # a Google Doc
        fd.put("MyDrive/table", b"a,b\n1,2\n", mime_type="application/vnd.google-apps.spreadsheet")
        fd.put_shortcut("MyDrive/link-to-a", "MyDrive/models/a.pth")   # a shortcut (target path or id)
        fd.put("MyDrive/img/cat.png", png_bytes)               # images get imageMediaMetadata and a
                                                                # thumbnailLink serving a scaled image
        fd.share(path, public=True, readers=[...], writers=[...])
        fd.add_group("team@example.com", ["bob", "carol"])     # for type=group permissions

    Google Docs store their text (Sheets: CSV) and export to the formats listed
    in ``.docs``; every content upload makes a revision (``.revisions``);
    every change gets a change id (``.changes``).

    Args:
        data_dir: keep files and metadata here across restarts (default: a
            temporary directory removed by ``close``).
        latency_ms: added to every request.
        bandwidth_bytes_per_s: cap per connection, for request and response bodies.
        total_bandwidth_bytes_per_s: cap for all connections together.
        faults: random faults, ``{"rate": 0.05}`` or per kind
            (``{"503": 0.05, "429": 0.02, "drop": 0.02, "403-rate": 0.01, "quota": 0.0, "500": 0.01}``).
        seed: seeds fault choice and file ids.
        host: address to bind (loopback).
        port: port to bind (0: any free port; kept across ``stop``/``start``).
        token_lifetime_s: lifetime of issued access tokens.
        virus_scan_threshold_bytes: web downloads above this get the confirmation page.
        retry_after_s: ``Retry-After`` of injected 429s.
        default_user: the user that service accounts and ``put`` use.
        persist_interval_s: how often changed metadata is written to ``data_dir``.
        keep_json: keep every JSON response body in ``requests[i].response_json``
            (for tests that validate what clients received).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        latency_ms: float = 0,
        bandwidth_bytes_per_s: float | None = None,
        total_bandwidth_bytes_per_s: float | None = None,
        faults: Mapping[str, float] | None = None,
        seed: int = 0,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime_s: float = 3600,
        virus_scan_threshold_bytes: int = 25 * 1024 * 1024,
        retry_after_s: int = 1,
        default_user: str = DEFAULT_USER,
        persist_interval_s: float = 1.0,
        keep_json: bool = False,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fakedrive-")
            root = Path(self._tmp.name)
            state_path = None
        else:
            root = Path(data_dir)
            root.mkdir(parents=True, exist_ok=True)
            state_path = root / "fakedrive-state.json"
        self.data_dir = root
        self.store = Store(root / "blobs", seed=seed, state_path=state_path)
        self.auth = AuthService(token_lifetime_s=token_lifetime_s)
        if self.store.load():
            self.auth.load_state(self.store.extra.get("auth", {}))
        if not self.store.users or normalize_email(default_user) not in self.store.users:
            self.store.add_user(default_user)
        self.store.default_user = normalize_email(default_user)
        self.fault_plan = FaultPlan(faults, seed=seed)
        self.app = DriveApp(
            self.store,
            self.auth,
            self.fault_plan,
            latency_s=latency_ms / 1000.0,
            bandwidth_bytes_per_s=bandwidth_bytes_per_s,
            virus_scan_threshold_bytes=virus_scan_threshold_bytes,
            retry_after_s=retry_after_s,
        )
        self._total_bandwidth = total_bandwidth_bytes_per_s
        self._host = host
        self._port = port
        self._log = RequestLog(keep_json=keep_json)
        self._server: DriveHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._persist_interval_s = persist_interval_s
        self._persist_stop = threading.Event()
        self._persist_thread: threading.Thread | None = None
        self.seed = seed
        self.key_path: Path | None = None
        """The key file ``write_service_account`` wrote last (None before the first)."""

    # ---------------------------------------------------------- lifecycle

    def start(self) -> FakeDrive:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        bucket = TokenBucket(self._total_bandwidth) if self._total_bandwidth else None
        server = DriveHTTPServer((self._host, self._port), self.app, log=self._log, total_bucket=bucket)
        self._port = server.server_address[1]
        self.app.set_base_url(server.base_url)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fakedrive", daemon=True
        )
        self._thread.start()
        if self.store.state_path is not None:
            self._persist_stop.clear()
            self._persist_thread = threading.Thread(target=self._persist_loop, name="fakedrive-persist", daemon=True)
            self._persist_thread.start()
        logger.info("fakedrive serving at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and write the metadata (if persistent)."""
        server = self._server
        if server is None:
            return
        self._server = None
        server.shutdown()
        server.server_close()
        server.close_all_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._persist_stop.set()
        if self._persist_thread is not None:
            self._persist_thread.join(timeout=5)
            self._persist_thread = None
        self.save()
        logger.info("fakedrive stopped")

    def close(self) -> None:
        """``stop``, then remove the temporary directory (if one was used)."""
        self.stop()
        self.app.uploads.discard_all()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> FakeDrive:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self) -> None:
        """Write metadata and registered keys to ``data_dir`` now (no-op without one)."""
        if self.store.state_path is None:
            return
        with self.store.lock:
            self.store.extra["auth"] = self.auth.to_state()
            self.store.save()

    def _persist_loop(self) -> None:
        while not self._persist_stop.wait(self._persist_interval_s):
            if self.store.dirty:
                try:
                    self.save()
                except OSError:
                    logger.exception("fakedrive: could not persist state")

    # ----------------------------------------------------------- address

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/`` (the ``rootUrl`` for clients)."""
        if self._server is None:
            raise RuntimeError("FakeDrive is not running; use start() or a with-block")
        return self._server.base_url

    @property
    def port(self) -> int:
        """The bound port."""
        return self._port

    @property
    def token_uri(self) -> str:
        """The OAuth token endpoint."""
        return self.url + "token"

    # --------------------------------------------------------------- auth

    def service_account_info(self, *, user: str | None = None, name: str | None = None) -> dict[str, str]:
        """A new registered service-account key (the key-file JSON as a dict).

        Args:
            user: the Drive user it signs in as (default user if None).
            name: the account name (part of ``client_email``).
        """
        email = self.add_user(user) if user else self.default_user
        info = self.auth.create_service_account(user=email, token_uri=self.token_uri, name=name)
        self.store.dirty = True
        return info

    def write_service_account(self, path: str | os.PathLike, *, user: str | None = None) -> dict[str, str]:
        """Write a service-account key file whose ``token_uri`` is this emulator; returns its JSON.

        The path is kept as ``key_path`` (the last key written), so a test can point
        ``GOOGLE_APPLICATION_CREDENTIALS`` or ``service_account=`` at it.
        """
        info = self.service_account_info(user=user)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(info, indent=2), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        self.key_path = path
        return info

    def issue_refresh_token(self, user: str | None = None) -> tuple[str, str, str]:
        """An OAuth client and refresh token for ``user``: ``(client_id, client_secret, refresh_token)``."""
        email = self.add_user(user) if user else self.default_user
        result = self.auth.issue_refresh_token(email)
        self.store.dirty = True
        return result

    def expire_tokens(self) -> None:
        """Invalidate every issued access token; clients get 401 until they refresh."""
        self.auth.expire_all()

    def revoke_sign_ins(self) -> None:
        """Revoke every sign-in made so far (a password change, an expired or revoked grant):
        clients get 401, and their refresh fails with ``invalid_grant``. Keys written after
        this (``write_service_account``) sign in again."""
        self.auth.revoke_all()
        self.store.dirty = True

    @property
    def token_lifetime_s(self) -> float:
        """Lifetime of access tokens issued from now on."""
        return self.auth.token_lifetime_s

    @token_lifetime_s.setter
    def token_lifetime_s(self, value: float) -> None:
        self.auth.token_lifetime_s = value

    # -------------------------------------------------------------- users

    @property
    def default_user(self) -> str:
        """Email of the default user."""
        return self.store.user().email

    def add_user(self, email: str, display_name: str | None = None) -> str:
        """Create a user (a bare name becomes ``name@example.com``); returns the email."""
        return self.store.add_user(email, display_name).email

    def root_id(self, user: str | None = None) -> str:
        """The My Drive root folder id of ``user``."""
        return self.store.user(user).root_id

    # -------------------------------------------------------------- files

    def _record(self, path_or_id: str, owner: str | None = None) -> FileRecord:
        rec = self.store.get(path_or_id)
        if rec is None:
            rec = self.store.resolve_path(path_or_id, owner=owner)
        if rec is None:
            raise FileNotFoundError(path_or_id)
        return rec

    def put(
        self,
        path: str,
        data_or_path: Content,
        description: str | None = None,
        properties: Mapping[str, str] | Iterable[Mapping[str, str]] | None = None,
        public: bool = False,
        owner: str | None = None,
        *,
        mime_type: str | None = None,
        replace: bool = False,
        modified: float | None = None,
    ) -> str:
        """Create a file at ``MyDrive/...`` (folders are created as needed); returns its id.

        Args:
            path: ``MyDrive/models/a.pth`` (relative to the owner's My Drive), or
                ``Shareddrives/NAME/models/a.pth`` (the shared drive NAME is
                created on first use, with the owner as organizer).
            data_or_path: bytes, an open binary file, or a local file path
                (``str``/``PathLike``).
            description: Drive description.
            properties: ``{"k": "v"}`` (PRIVATE) or a list of
                ``{"key", "value", "visibility"}``.
            public: share with "anyone with the link".
            owner: another user (``"bob"`` or ``"bob@example.com"``) owns the
                file, so the default user cannot see it (unless ``public``).
            mime_type: default: guessed from the name, else ``application/octet-stream``.
                ``application/vnd.google-apps.document`` makes a Google Doc
                whose text is the content (``...spreadsheet``: CSV content).
            replace: replace the content of an existing file with this name
                instead of adding a second file with the same title.
            modified: POSIX time for ``modifiedDate``.
        """
        parts = split_drive_path(path)
        if not parts:
            raise ValueError(f"not a file path: {path!r}")
        email = self.add_user(owner) if owner else self.default_user
        props = _properties(properties)
        writer = self.store.new_blob()
        try:
            if isinstance(data_or_path, (bytes, bytearray, memoryview)):
                writer.write(bytes(data_or_path))
            elif isinstance(data_or_path, (str, os.PathLike)):
                with open(data_or_path, "rb") as f:
                    writer.copy_from(f)
            else:
                writer.copy_from(data_or_path)
        except BaseException:
            writer.abort()
            raise
        blob = writer.finish()
        mime = mime_type or mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
        with self.store.lock:
            folder = self.store.makedirs(parts[:-1], owner=email)
            existing = self.store.resolve_path("/".join(parts), owner=email) if replace else None
            if existing is not None and not existing.is_folder:
                self.store.attach_blob(existing, blob, by=email)
                rec = existing
                if description is not None:
                    rec.description = description
                if props:
                    rec.properties = props
                rec.public = rec.public or public
            else:
                rec = self.store.create(
                    owner=email,
                    title=parts[-1],
                    mime_type=mime,
                    parents=[folder.id],
                    blob=blob,
                    description=description,
                    properties=props,
                    original_filename=parts[-1],
                    public=public,
                )
            if modified is not None:
                rec.modified = modified
        return rec.id

    def put_many(self, folder: str, names: Iterable[str], data: bytes, *,
                 owner: str | None = None, mime_type: str | None = None) -> list[str]:
        """Many files with the same content in folder ``folder`` (made as needed), fast: the
        content is written and hashed once, then linked for each file (a folder of 300,000
        files for a listing benchmark); returns their ids in ``names`` order.

        When the store then holds ``FREEZE_AT_FILES`` files or more, every object alive in
        this process is moved out of the cyclic garbage collector's sight (``gc.freeze``):
        a full collection otherwise walks every record, and at 300,000 files it paused the
        server for 0.6-1.9 s in the middle of a listing. Records are never freed in a cycle
        anyway; objects frozen stay alive until ``gc.unfreeze``."""
        email = self.add_user(owner) if owner else self.default_user
        def source() -> StagedBlob:
            writer = self.store.new_blob()
            writer.write(bytes(data))
            return writer.finish()

        first = source()
        ids = []
        try:
            with self.store.lock:
                parent = self.store.makedirs(split_drive_path(folder), owner=email)
            for name in names:
                staged = first.path.with_name(f"staging-{uuid.uuid4().hex}.part")
                try:
                    os.link(first.path, staged)
                except OSError as e:  # ext4 allows 65,000 links to one file: a fresh copy
                    if e.errno != errno.EMLINK:
                        raise
                    first.path.unlink()
                    first = source()
                    os.link(first.path, staged)
                blob = StagedBlob(staged, first.size, first.md5, first.sha1, first.sha256)
                with self.store.lock:
                    rec = self.store.create(
                        owner=email, title=name, parents=[parent.id], blob=blob,
                        mime_type=mime_type or mimetypes.guess_type(name)[0]
                        or "application/octet-stream", original_filename=name)
                ids.append(rec.id)
        finally:
            with contextlib.suppress(OSError):
                first.path.unlink()
        if len(self.store.files) >= FREEZE_AT_FILES:
            gc.freeze()
        return ids

    def mkdir(self, path: str, *, owner: str | None = None, public: bool = False) -> str:
        """Create folders ``MyDrive/a/b`` (reusing existing ones); returns the last folder's id."""
        email = self.add_user(owner) if owner else self.default_user
        with self.store.lock:
            rec = self.store.makedirs(split_drive_path(path), owner=email)
            if public:
                rec.public = True
        return rec.id

    def add_shared_drive(
        self,
        name: str,
        *,
        members: Mapping[str, str] | None = None,
        creator: str | None = None,
    ) -> str:
        """Create a shared drive; returns its id (which is also the id of its root folder).

        Args:
            name: the drive's name (``Shareddrives/NAME/...`` paths find it).
            members: ``{"bob": "reader", ...}`` with roles ``organizer``,
                ``fileOrganizer``, ``writer``, ``commenter`` or ``reader``.
            creator: its first organizer (default: the default user).
        """
        email = self.add_user(creator) if creator else self.default_user
        with self.store.lock:
            drive = self.store.add_shared_drive(name, creator=email)
            for who, role in (members or {}).items():
                if role not in ("organizer", "fileOrganizer", "writer", "commenter", "reader"):
                    raise ValueError(f"not a shared-drive role: {role!r}")
                member = normalize_email(who)
                if member not in self.store.groups:
                    member = self.add_user(who)
                drive.members[member] = role
        return drive.id

    def add_group(self, email: str, members: Iterable[str]) -> str:
        """Create (or replace) a Google group with these member users; returns its address."""
        group = normalize_email(email)
        with self.store.lock:
            self.store.groups[group] = [self.add_user(m) for m in members]
            self.store.dirty = True
        return group

    def put_shortcut(self, path: str, target: str, *, owner: str | None = None) -> str:
        """Create a shortcut at ``path`` pointing at ``target`` (an id or a path); returns its id."""
        from .store import SHORTCUT_MIME

        parts = split_drive_path(path)
        if not parts:
            raise ValueError(f"not a file path: {path!r}")
        email = self.add_user(owner) if owner else self.default_user
        with self.store.lock:
            dest = self._record(target, owner)
            folder = self.store.makedirs(parts[:-1], owner=email)
            rec = self.store.create(owner=email, title=parts[-1], mime_type=SHORTCUT_MIME, parents=[folder.id])
            rec.shortcut_target, rec.shortcut_target_mime = dest.id, dest.mime_type
        return rec.id

    def share(
        self,
        path_or_id: str,
        *,
        public: bool | None = None,
        readers: Iterable[str] = (),
        writers: Iterable[str] = (),
        owner: str | None = None,
    ) -> None:
        """Change sharing: ``public`` (anyone with the link) and named readers/writers."""
        with self.store.lock:
            rec = self._record(path_or_id, owner)
            if public is not None:
                rec.public = public
            for r in readers:
                email = self.add_user(r)
                if email not in rec.readers:
                    rec.readers.append(email)
            for w in writers:
                email = self.add_user(w)
                if email not in rec.writers:
                    rec.writers.append(email)
            self.store.dirty = True

    def get(self, path_or_id: str, *, owner: str | None = None) -> bytes:
        """The content of a file (by id, or path in ``owner``'s My Drive), for assertions."""
        rec = self._record(path_or_id, owner)
        if not rec.has_blob:
            raise IsADirectoryError(path_or_id)
        return self.store.blob_path(rec).read_bytes()

    def resolve(self, path: str, *, owner: str | None = None) -> str | None:
        """The id of ``MyDrive/...`` in ``owner``'s My Drive, or None."""
        rec = self.store.resolve_path(path, owner=owner)
        return rec.id if rec is not None else None

    def exists(self, path_or_id: str, *, owner: str | None = None) -> bool:
        """True when a file with this id or path exists."""
        try:
            self._record(path_or_id, owner)
        except FileNotFoundError:
            return False
        return True

    def metadata(self, path_or_id: str, *, owner: str | None = None, viewer: str | None = None) -> dict[str, Any]:
        """The v2 file resource as ``viewer`` (default: the file's owner) sees it."""
        rec = self._record(path_or_id, owner)
        return self.app.renderer.file(rec, normalize_email(viewer) if viewer else rec.owner)

    def files_of(self, user: str | None = None, *, include_folders: bool = True) -> list[dict[str, Any]]:
        """Resources of every file ``user`` owns (not their root), in creation order."""
        email = self.store.user(user).email
        return [
            self.app.renderer.file(r, email)
            for r in self.store.snapshot()
            if r.owner == email and not r.is_any_root and (include_folders or not r.is_folder)
        ]

    def trash(self, path_or_id: str, *, owner: str | None = None) -> None:
        """Move a file to the trash (as its owner)."""
        import time as _time

        with self.store.lock:
            rec = self._record(path_or_id, owner)
            rec.explicitly_trashed = True
            rec.trashed_date = _time.time()
            rec.trashing_user = rec.owner
            self.store.touch(rec, modified=rec.modified)

    def delete(self, path_or_id: str, *, owner: str | None = None) -> None:
        """Delete a file (and a folder's contents) for good."""
        self.store.delete(self._record(path_or_id, owner))

    # ----------------------------------------------------- request log

    @property
    def requests(self) -> list[RequestRecord]:
        """Every handled request so far, oldest first (a copy)."""
        return self._log.snapshot()

    def reset_requests(self) -> None:
        """Forget the request log."""
        self._log.clear()

    # ---------------------------------------------------- shaping/faults

    def fail_next(self, kind: str, path_contains: str | None = None, **kwargs: Any) -> None:
        """Script one fault for the next request whose path+query contains ``path_contains``.

        ``kind``: ``503``, ``500``, ``429``, ``403-rate``, ``403-user-rate``,
        ``quota``, ``drop``, ``401``. Keyword arguments: ``method``, ``count``,
        ``drop_after_bytes`` (see ``.shaping.FaultPlan.fail_next``).
        """
        self.fault_plan.fail_next(kind, path_contains, **kwargs)

    def set_faults(self, faults: Mapping[str, float] | None, *, seed: int | None = None) -> None:
        """Replace the random-fault rates (and restart the seeded sequence)."""
        plan = FaultPlan(faults, seed=self.seed if seed is None else seed)
        plan._scripted = self.fault_plan._scripted  # keep scripted faults
        self.fault_plan = plan
        self.app.faults = plan

    @property
    def latency_ms(self) -> float:
        """Latency added to every request."""
        return self.app.latency_s * 1000.0

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        self.app.latency_s = value / 1000.0

    @property
    def bandwidth_bytes_per_s(self) -> float | None:
        """Per-connection cap (applies to connections opened afterwards)."""
        return self.app.bandwidth_bytes_per_s

    @bandwidth_bytes_per_s.setter
    def bandwidth_bytes_per_s(self, value: float | None) -> None:
        self.app.bandwidth_bytes_per_s = value

    @property
    def total_bandwidth_bytes_per_s(self) -> float | None:
        """Cap for all connections together."""
        return self._total_bandwidth

    @total_bandwidth_bytes_per_s.setter
    def total_bandwidth_bytes_per_s(self, value: float | None) -> None:
        self._total_bandwidth = value
        if self._server is not None:
            self._server.total_bucket = TokenBucket(value) if value else None


def _properties(
    properties: Mapping[str, str] | Iterable[Mapping[str, str]] | None,
) -> list[dict[str, str]]:
    if not properties:
        return []
    if isinstance(properties, Mapping):
        return [{"key": str(k), "value": str(v), "visibility": "PRIVATE"} for k, v in properties.items()]
    return [
        {
            "key": str(p["key"]),
            "value": str(p.get("value", "")),
            "visibility": str(p.get("visibility", "PRIVATE")).upper(),
        }
        for p in properties
    ]

