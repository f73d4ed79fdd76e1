"""The Drive session: who is signed in, the PyDrive2 objects, and path -> id resolution.

One ``DriveSession`` per runtime (``cm.mount()`` returns the same one until
``force_remount=True``). It is built on PyDrive2: ``session.drive`` is a ready
``pydrive2.drive.GoogleDrive`` and ``session.gauth`` its ``GoogleAuth``, whose service is built
from the Drive v2 discovery document bundled with google-api-python-client, with ``rootUrl``
pointed at ``COLABMODELS_DRIVE_ENDPOINT`` when one is set (uploads included, which
``client_options`` would not rewrite).

Two ways in:

- ``mount`` (``cm.mount()``, ``%drive_mount``) signs in and asks Drive who is signed in,
  so it can say so;
- ``implicit_session`` (the first Drive use without a mount) signs in without sending any
  request of its own: a cache hit in a fresh process costs one metadata request.

Configuration is read at call time: when ``COLABMODELS_DRIVE_ENDPOINT`` changes after a
session was made, the next use signs in again against the new endpoint.

This module speaks the Drive API through ``colabmodels.drive.wire`` and never imports the
storage backends (they import it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .. import config
from ..auth import PyDrive2Credentials, SignIn, bearer_token, sign_in
from ..errors import AmbiguousPathError, NotFoundError, RefError
from ..presentation import format_size
from ..retry import call_with_retries
from . import files
from .wire import FILE_FIELDS, build_drive_service, quote_q, translate_drive_error

__all__ = ["DriveSession", "current_session", "implicit_session", "mount", "reset"]

logger = logging.getLogger("colabmodels.drive")

_current: DriveSession | None = None
_current_lock = threading.Lock()


class DriveSession:
    """A signed-in connection to Drive (or to a Drive-compatible endpoint such as the emulator).

    Attributes:
        credentials: google-auth credentials.
        method: how they were found (``colab``, ``service_account``, ``saved_login``, ``interactive``).
        endpoint: the Drive endpoint root.
        mountpoint: where Drive is mounted as files (Colab), else None.
        gauth, drive: the PyDrive2 ``GoogleAuth`` and ``GoogleDrive``.
    """

    def __init__(self, signin: SignIn, *, endpoint: str | None = None,
                 configured_endpoint: str | None = None) -> None:
        from pydrive2.auth import GoogleAuth
        from pydrive2.drive import GoogleDrive

        self.credentials = signin.credentials
        self.method = signin.method
        self.mountpoint = signin.mounted_at
        self.endpoint = endpoint or config.drive_endpoint()
        # What COLABMODELS_DRIVE_ENDPOINT said when this session was made: when it says
        # something else later, the session is replaced (configuration is read at call time).
        self.configured_endpoint = configured_endpoint or config.drive_endpoint()
        gauth = GoogleAuth(settings_file=None, settings={
            "client_config_backend": "settings",
            "client_config": {"client_id": "colabmodels", "client_secret": "unused"},
            "save_credentials": False,
            "oauth_scope": list(config.DRIVE_SCOPES),
        })
        gauth.credentials = PyDrive2Credentials(self.credentials)
        gauth.http = gauth.Get_Http_Object()
        gauth.service = build_drive_service(gauth.http, self.endpoint)
        self.gauth = gauth
        self.drive = GoogleDrive(gauth)
        self._local = threading.local()
        self._resources = _MadeOnce(gauth.service)
        self._paths: dict[str, str] = {}
        self._paths_lock = threading.Lock()
        self._about: dict[str, Any] | None = None
        self._token_lock = threading.Lock()

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def service(self) -> Any:
        return self.gauth.service

    def http(self) -> Any:
        """This thread's authorized httplib2 object (httplib2 is not thread-safe)."""
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self.gauth.Get_Http_Object()
        return http

    def execute(self, build: Callable[[Any], Any], *, what: str) -> Any:
        """Run ``build(service).execute()`` with retries and colabmodels errors.

        ``build`` receives the service with its resources (``files()``, ``about()``...) made
        once: googleapiclient rebuilds a resource object, some milliseconds of work, on every
        ``service.files()``. Sharing them between threads is safe because each request runs
        on its thread's own ``http``.

        Raises:
            NetworkDownError: Drive cannot be reached at all (no retries).
            TransferError: transient errors outlasted the retries.
            NotFoundError, AuthError, QuotaError, NotDownloadableError: as Drive answered.
        """

        def once() -> Any:
            try:
                return build(self._resources).execute(http=self.http())
            except Exception as e:
                error = translate_drive_error(e, what)
                if error is e:
                    raise
                raise error from e

        return call_with_retries(once, what=what)

    def matches_configuration(self) -> bool:
        """Whether ``COLABMODELS_DRIVE_ENDPOINT`` still says what it said when this was made."""
        return config.drive_endpoint() == self.configured_endpoint

    def access_token(self) -> str:
        creds = self.credentials
        if creds.valid and creds.token:  # the common case, without 64 fetch threads queueing
            return str(creds.token)
        with self._token_lock:
            return bearer_token(creds)

    # -- who and how much --------------------------------------------------------------------
    def about(self, *, refresh: bool = False) -> dict[str, Any]:
        if self._about is None or refresh:
            self._about = self.execute(lambda s: s.about().get(), what="reading account details")
        return self._about

    @property
    def user_email(self) -> str:
        user = self.about().get("user") or {}
        return user.get("emailAddress") or user.get("displayName") or "unknown user"

    def account(self) -> str:
        """Who is signed in, for keys: from the credentials when they say (a service account,
        no request), else asked of Drive once; ``""`` when Drive cannot say."""
        creds = self.credentials
        user = getattr(creds, "service_account_email", None) or getattr(creds, "signer_email", None)
        if user:
            return str(user)
        try:
            return self.user_email
        except Exception:  # the account is unknown: keys still separate endpoints
            return ""

    @property
    def root_id(self) -> str:
        """The id of My Drive's root folder (asks Drive once; ``"root"`` works as an alias)."""
        return self.about().get("rootFolderId") or "root"

    def describe(self) -> str:
        """One line: who, how much space, where Drive is."""
        about = self.about()
        used, total = about.get("quotaBytesUsed"), about.get("quotaBytesTotal")
        parts = [f"Signed in as {self.user_email}"]
        if used is not None and total:
            parts.append(f"{format_size(int(used))} of {format_size(int(total))} used")
        if self.mountpoint:
            parts.append(f"Drive mounted at {self.mountpoint}")
        else:
            parts.append("API session; no mount outside Colab")
        if self.endpoint != config.GOOGLE_DRIVE_ENDPOINT:
            parts.append(f"endpoint {self.endpoint}")
        return " · ".join(parts)

    # -- paths -------------------------------------------------------------------------------
    def resolve(self, path: str) -> str:
        """The id of ``MyDrive/a/b``, ``Shareddrives/Team/a`` or ``SharedWithMe/name``.

        Raises:
            NotFoundError: a step does not exist (the message names it).
            AmbiguousPathError: two files in one folder share a step's name (lists their ids).
        """
        return self.resolve_with_meta(path)[0]

    def resolve_with_meta(self, path: str) -> tuple[str, dict[str, Any] | None]:
        """``resolve``, and the file's metadata (``FILE_FIELDS``) when the last step was
        looked up now (None when its id was remembered, or the path is a drive's root): a
        caller that wants the metadata too needs no second request for it."""
        path = path.strip("/")
        with self._paths_lock:
            if path in self._paths:
                return self._paths[path], None
        parts = path.split("/")
        head, rest = parts[0], parts[1:]
        meta: dict[str, Any] | None = None
        if head == "MyDrive":
            current, walked = "root", "MyDrive"  # Drive's alias: no request for the real id
        elif head == "Shareddrives":
            if not rest:
                raise RefError("Shareddrives/ needs a shared drive name: Shareddrives/NAME/...")
            current, walked = self._shared_drive_id(rest[0]), f"Shareddrives/{rest[0]}"
            rest = rest[1:]
        elif head == "SharedWithMe":
            if not rest:
                raise RefError("SharedWithMe/ needs a file or folder name")
            meta = self._one(
                f"sharedWithMe = true and title = {quote_q(rest[0])} and trashed = false",
                f"SharedWithMe/{rest[0]}", last=len(rest) == 1)
            current, walked, rest = meta["id"], f"SharedWithMe/{rest[0]}", rest[1:]
        else:
            raise RefError(f"{path!r}: Drive paths start with MyDrive/, Shareddrives/NAME/ or SharedWithMe/")
        for step, name in enumerate(rest):
            walked = f"{walked}/{name}"
            with self._paths_lock:
                cached = self._paths.get(walked)
            if cached:
                current, meta = cached, None
                continue
            meta = self._one(
                f"{quote_q(current)} in parents and title = {quote_q(name)} and trashed = false",
                walked, last=step == len(rest) - 1)
            current = meta["id"]
            with self._paths_lock:
                self._paths[walked] = current
        with self._paths_lock:
            self._paths[path] = current
        return current, (meta if meta and "mimeType" in meta else None)

    def _one(self, q: str, walked: str, *, last: bool = False) -> dict[str, Any]:
        """The one file the query finds (its id and title; every ``FILE_FIELDS`` when
        ``last``, the end of a path, whose metadata is wanted next anyway)."""
        fields = f"items({FILE_FIELDS})" if last else "items(id,title)"
        found = files.query_page(self, q, fields=fields, page_size=10,
                                 what=f"looking up {walked}").get("items", [])
        if not found:
            raise NotFoundError(f"{walked} does not exist in Drive (or you cannot see it)")
        if len(found) > 1:
            ids = [f["id"] for f in found]
            raise AmbiguousPathError(
                f"{walked} names {len(ids)} files with the same name: {', '.join(ids)}. "
                "Load one by its id or share link, or rename the others.", ids
            )
        return found[0]

    def _shared_drive_id(self, name: str) -> str:
        page = files.shared_drives_page(self, page_size=100, q=f"name = {quote_q(name)}",
                                        what=f"looking up shared drive {name}")
        for d in page.get("items", []):
            if d.get("name") == name:
                return d["id"]
        raise NotFoundError(f"no shared drive named {name!r} is visible to {self.user_email}")

    def remember_path(self, path: str, file_id: str) -> None:
        with self._paths_lock:
            self._paths[path.strip("/")] = file_id

    def forget_paths(self, prefix: str = "", *, ancestors: bool = False) -> None:
        """Invalidate resolved paths under ``prefix`` (after a write, move or delete), and with
        ``ancestors`` the folders above it too (one of them may be what was trashed or moved)."""
        prefix = prefix.strip("/")
        with self._paths_lock:
            for p in [p for p in self._paths if not prefix or p == prefix or p.startswith(prefix + "/")]:
                del self._paths[p]
            if ancestors:
                parts = prefix.split("/")
                for i in range(1, len(parts)):
                    self._paths.pop("/".join(parts[:i]), None)

    def __repr__(self) -> str:
        return f"<DriveSession {self.method} at {self.endpoint}>"


class _MadeOnce:
    """``service.files()`` and friends, each built once and then reused."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Callable[[], Any]:
        def resource() -> Any:
            with self._lock:
                made = self._made.get(name)
                if made is None:
                    made = self._made[name] = getattr(self._service, name)()
                return made

        return resource


def _configured(endpoint: str | None) -> str:
    return (endpoint.rstrip("/") + "/") if endpoint else config.drive_endpoint()


def _usable(session: DriveSession | None, endpoint: str | None) -> bool:
    """Whether ``session`` serves a call asking for ``endpoint`` (None: the configured one).

    A session made by ``mount(endpoint=X)`` keeps serving calls that name no endpoint until
    ``COLABMODELS_DRIVE_ENDPOINT`` changes.
    """
    if session is None:
        return False
    if endpoint is not None:
        return session.endpoint == _configured(endpoint)
    return session.matches_configuration()


def _sign_in(mountpoint: str, *, service_account: str | None, endpoint: str | None,
             interactive: bool | None, force_remount: bool, timeout_ms: int) -> DriveSession:
    target = _configured(endpoint)
    signin = sign_in(service_account=service_account, interactive=interactive,
                     mountpoint=mountpoint, force_remount=force_remount,
                     timeout_ms=timeout_ms, endpoint=target)
    if _current is not None and _current.endpoint != target:
        logger.info("Drive endpoint changed from %s to %s: signing in again",
                    _current.endpoint, target)
    return DriveSession(signin, endpoint=target, configured_endpoint=config.drive_endpoint())


def mount(mountpoint: str = "/content/drive", *, service_account: str | None = None,
          endpoint: str | None = None, interactive: bool | None = None,
          force_remount: bool = False, timeout_ms: int = 120_000) -> DriveSession:
    """Sign in (see ``colabmodels.auth``), check with Drive who that is, and return the
    runtime's Drive session.

    Calling it again returns the same session unless ``force_remount=True``, different
    credentials or another endpoint are asked for, or ``COLABMODELS_DRIVE_ENDPOINT`` changed.

    Raises:
        AuthError: no way to sign in worked; the message lists them.
        NetworkDownError: Drive cannot be reached.
    """
    global _current
    with _current_lock:
        if (not force_remount and _usable(_current, endpoint) and _current is not None
                and (service_account is None or _current.method == "service_account")):
            session = _current
        else:
            session = _sign_in(mountpoint, service_account=service_account, endpoint=endpoint,
                               interactive=interactive, force_remount=force_remount,
                               timeout_ms=timeout_ms)
        session.about()  # who is signed in: %drive_mount shows it
        _current = session
    logger.info("%s", session.describe())
    return session


def implicit_session() -> DriveSession:
    """The session for a Drive call made without ``mount()``: the current one while it still
    fits the configuration, else a new sign-in that sends no request of its own.

    Raises:
        AuthError: no credentials were found (the caller may still read public links).
    """
    global _current
    with _current_lock:
        if _usable(_current, None) and _current is not None:
            return _current
        _current = _sign_in("/content/drive", service_account=None, endpoint=None,
                            interactive=False, force_remount=False, timeout_ms=120_000)
        logger.info("signed in to Drive implicitly (%s at %s)", _current.method, _current.endpoint)
        return _current


def current_session() -> DriveSession | None:
    """The session ``mount()`` made, if any."""
    return _current


def reset() -> None:
    """Forget the current session (tests, and ``%drive_mount --force``)."""
    global _current
    with _current_lock:
        _current = None
