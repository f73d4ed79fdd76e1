"""Credentials: one chain, tried in order, ending in a clear error.

1. Colab: ``google.colab.auth.authenticate_user()`` then ``google.auth.default()``.
2. A service-account key: the ``service_account=`` argument or ``GOOGLE_APPLICATION_CREDENTIALS``.
3. A saved user login (refresh token) from an earlier interactive login, kept with mode 0600
   in ``config_dir()/user-login.json``.
4. An interactive login in a local Jupyter (the browser-redirect "installed app" flow; never
   the out-of-band copy-paste flow, which Google has shut down). It needs an OAuth client file
   (``client_secrets=`` or ``config_dir()/client_secrets.json``).

Everything speaks google-auth. PyDrive2 expects oauth2client-shaped credentials, so
:class:`PyDrive2Credentials` adapts: it authorizes httplib2 objects with
``google_auth_httplib2.AuthorizedHttp`` (which refreshes through google-auth and retries a
request that got 401), reports "not expired" because refresh happens on demand, and never
touches oauth2client's deprecated flows.

Tokens never appear in log records or error messages.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config
from .errors import AuthError, MissingDependencyError

logger = logging.getLogger("colabmodels")

USER_LOGIN_FILE = "user-login.json"

WAYS_TO_SIGN_IN = """\
Ways to sign in:
  - in Colab: cm.mount() (or %drive_mount) signs in with your Google account;
  - a service-account key: cm.mount(service_account="key.json") or set GOOGLE_APPLICATION_CREDENTIALS;
  - a user login: run cm.mount(interactive=True) once in a local Jupyter with an OAuth client
    file at {client_secrets}; the login is saved for next time;
  - files shared "anyone with the link" load without signing in."""


@dataclass
class SignIn:
    """The credentials found and how (``method``: colab, service_account, saved_login, interactive)."""

    credentials: Any  # google.auth.credentials.Credentials
    method: str
    mounted_at: str | None = None


def _drive_scopes() -> list[str]:
    return list(config.DRIVE_SCOPES)


def token_uri(default: str | None = None, endpoint: str | None = None) -> str:
    """Where tokens come from: the endpoint's ``/token`` when it is not Google's."""
    endpoint = endpoint or config.drive_endpoint()
    if endpoint != config.GOOGLE_DRIVE_ENDPOINT:
        return endpoint + "token"
    return default or "https://oauth2.googleapis.com/token"


def sign_in(*, service_account: str | os.PathLike[str] | None = None,
            interactive: bool | None = None, mountpoint: str = "/content/drive",
            force_remount: bool = False, timeout_ms: int = 120_000,
            client_secrets: str | os.PathLike[str] | None = None,
            endpoint: str | None = None) -> SignIn:
    """Find credentials by the chain above.

    Raises:
        AuthError: nothing worked; the message lists the ways to sign in.
    """
    if service_account is None and config.in_colab():
        return _colab(mountpoint, force_remount=force_remount, timeout_ms=timeout_ms)
    key = service_account or config.service_account_file()
    if key:
        return SignIn(load_service_account(key, endpoint=endpoint), "service_account")
    saved = load_saved_login(endpoint=endpoint)
    if saved is not None:
        return SignIn(saved, "saved_login")
    if interactive is None:
        interactive = _looks_interactive()
    secrets = Path(client_secrets) if client_secrets else config.config_dir() / "client_secrets.json"
    if interactive and secrets.exists():
        return SignIn(_interactive_login(secrets), "interactive")
    raise AuthError("Not signed in to Google Drive.\n" + WAYS_TO_SIGN_IN.format(client_secrets=secrets))


def _colab(mountpoint: str, *, force_remount: bool, timeout_ms: int) -> SignIn:
    import google.auth
    from google.colab import auth as colab_auth  # type: ignore[import-not-found]
    from google.colab import drive as colab_drive  # type: ignore[import-not-found]

    colab_auth.authenticate_user()
    credentials, _ = google.auth.default(scopes=_drive_scopes())
    colab_drive.mount(mountpoint, force_remount=force_remount, timeout_ms=timeout_ms)
    return SignIn(credentials, "colab", mounted_at=mountpoint)


def load_service_account(path: str | os.PathLike[str], *, endpoint: str | None = None) -> Any:
    """google-auth service-account credentials from a key file.

    Raises:
        AuthError: the file is missing or is not a service-account key.
    """
    from google.oauth2 import service_account as sa

    try:
        info = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AuthError(f"service-account key {os.fspath(path)!r} does not exist") from None
    except (OSError, ValueError) as e:
        raise AuthError(f"{os.fspath(path)!r} is not a readable JSON key file: {e}") from None
    if info.get("type") != "service_account":
        raise AuthError(
            f"{os.fspath(path)!r} is not a service-account key (type={info.get('type')!r}); "
            "download a key from the Cloud console under IAM > Service accounts > Keys."
        )
    info["token_uri"] = token_uri(info.get("token_uri"), endpoint)
    try:
        return sa.Credentials.from_service_account_info(info, scopes=_drive_scopes())
    except (ValueError, KeyError) as e:
        raise AuthError(f"service-account key {os.fspath(path)!r} is invalid: {e}") from None


def saved_login_path() -> Path:
    return config.config_dir() / USER_LOGIN_FILE


def save_login(credentials: Any) -> Path:
    """Store a user login's refresh token with mode 0600 (created so, never widened)."""
    path = saved_login_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "refresh_token": credentials.refresh_token,
        "token_uri": credentials.token_uri,
        "scopes": list(credentials.scopes or _drive_scopes()),
    }
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def load_saved_login(*, endpoint: str | None = None) -> Any | None:
    """The saved user login, or None. Refuses a file others can read."""
    from google.oauth2.credentials import Credentials

    path = saved_login_path()
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise AuthError(
            f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` "
            "or delete it and sign in again."
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AuthError(f"saved login {path} is unreadable ({e}); delete it and sign in again") from None
    return Credentials(
        None,
        refresh_token=data["refresh_token"],
        token_uri=token_uri(data.get("token_uri"), endpoint),
        client_id=data["client_id"],
        client_secret=data["client_secret"],
        scopes=data.get("scopes") or _drive_scopes(),
    )


def _interactive_login(secrets: Path) -> Any:
    try:
        from google_auth_oauthlib.flow import InstalledAppFlow
    except ImportError as e:
        raise MissingDependencyError(
            'interactive login needs google-auth-oauthlib: pip install google-auth-oauthlib'
        ) from e
    flow = InstalledAppFlow.from_client_secrets_file(str(secrets), scopes=_drive_scopes())
    credentials = flow.run_local_server(port=0, open_browser=True)
    save_login(credentials)
    return credentials


def _looks_interactive() -> bool:
    if os.environ.get("CI"):
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
        return True
    return sys.stdin is not None and sys.stdin.isatty()


class PyDrive2Credentials:
    """oauth2client-shaped view of google-auth credentials, for PyDrive2.

    PyDrive2 asks ``access_token_expired`` before each call and ``authorize(http)`` for each
    thread's HTTP object. Refresh happens inside ``AuthorizedHttp`` (on expiry, and once more
    when a request comes back 401), so this always answers "not expired".
    """

    def __init__(self, credentials: Any) -> None:
        self.google_credentials = credentials

    access_token_expired = False
    refresh_token = None
    store = None

    def authorize(self, http: Any) -> Any:
        import google_auth_httplib2

        return google_auth_httplib2.AuthorizedHttp(self.google_credentials, http=http)

    def refresh(self, http: Any) -> None:
        refresh_credentials(self.google_credentials)

    def set_store(self, store: Any) -> None:
        self.store = store

    def __repr__(self) -> str:  # never show a token
        return f"<PyDrive2Credentials for {type(self.google_credentials).__name__}>"


def refresh_credentials(credentials: Any) -> None:
    """Refresh google-auth credentials, translating failures to :class:`AuthError`."""
    import google.auth.exceptions
    import google.auth.transport.requests as gtr

    try:
        credentials.refresh(gtr.Request())
    except google.auth.exceptions.RefreshError as e:
        raise AuthError(f"could not refresh the sign-in: {_redact(str(e))}") from None
    except google.auth.exceptions.TransportError as e:
        raise AuthError(f"could not reach the token endpoint: {_redact(str(e))}") from None


def bearer_token(credentials: Any) -> str:
    """A currently valid access token (refreshing first when needed)."""
    if not credentials.valid:
        refresh_credentials(credentials)
    return credentials.token


def _redact(text: str) -> str:
    import re

    return re.sub(r"(ya29\.|eyJ|token\"?\s*[:=]\s*\"?)[A-Za-z0-9._\-]+", r"\1<redacted>", text)
