"""Credentials: one chain, tried in order, ending in a clear error.

1. Colab: ``google.colab.auth.authenticate_user()`` then ``google.auth.default()``.
2. A service-account key: the ``service_account=`` argument or ``GOOGLE_APPLICATION_CREDENTIALS``.
3. A saved user login (refresh token) from an earlier interactive login, kept with mode 0600
   in ``config_dir()/user-login.json``.
4. An interactive login in a local Jupyter (the browser-redirect "installed app" flow; never
   the out-of-band copy-paste flow, which Google has shut down). It needs an OAuth client file
   (``client_secrets=`` or ``config_dir()/client_secrets.json``).

Everything speaks google-auth. PyDrive2 expects oauth2client-shaped credentials, so
``PyDrive2Credentials`` adapts: it authorizes httplib2 objects with
``google_auth_httplib2.AuthorizedHttp`` (which refreshes through google-auth and retries a
request that got 401), reports "not expired" because refresh happens on demand, and never
touches oauth2client's deprecated flows.

Credentials go only where they were issued (``check_destination``): Google's (Colab,
service accounts whose ``token_uri`` is Google's, saved logins) only to Google's hosts over
HTTPS; a custom endpoint (``COLABMODELS_DRIVE_ENDPOINT`` / ``endpoint=``, e.g. the emulator)
only gets credentials whose own ``token_uri`` names it; plain HTTP only to loopback. A key's
``token_uri`` is used as written, never rewritten to the endpoint. Anything else is refused
with ``AuthError`` before a request is made.

Tokens, refresh tokens, client secrets, private keys and URL signatures never appear in log
records or error messages: text that may carry them goes through ``redact``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import config
from .errors import AuthError, MissingDependencyError

__all__ = [
    "GOOGLE_TOKEN_URI",
    "SIGN_IN_AGAIN",
    "USER_LOGIN_FILE",
    "WAYS_TO_SIGN_IN",
    "PyDrive2Credentials",
    "SignIn",
    "bearer_token",
    "check_destination",
    "is_google_host",
    "is_loopback_host",
    "load_saved_login",
    "load_service_account",
    "redact",
    "refresh_credentials",
    "refused_sign_in",
    "save_login",
    "saved_login_path",
    "sign_in",
]

logger = logging.getLogger("colabmodels")

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"

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


# -- where credentials may go -------------------------------------------------------------------

_GOOGLE_DOMAINS = ("googleapis.com", "google.com")


def is_google_host(host: str | None) -> bool:
    """``host`` is Google's (``*.googleapis.com``, ``*.google.com``)."""
    host = (host or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in _GOOGLE_DOMAINS)


def is_loopback_host(host: str | None) -> bool:
    """``host`` is this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    host = (host or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, path) of ``url``; RefError-free (bad URLs give empty parts)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "", "", None, ""
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port if port is not None else default, parts.path


def check_destination(issuer: str | None, endpoint: str, *, method: str) -> None:
    """Refuse to send credentials issued by ``issuer`` (their ``token_uri``) to ``endpoint``.

    Args:
        issuer: the credentials' ``token_uri``; None for credentials only Google issues
            (Colab's, Compute Engine's).
        endpoint: the Drive endpoint the session would talk to.
        method: how they were found, for the message.

    Raises:
        AuthError: the endpoint is not where these credentials belong; the message says why
            and what to do.
    """
    e_scheme, e_host, e_port, e_path = _origin(endpoint)
    shown = f"{e_scheme}://{e_host}" + (f":{e_port}" if e_port not in (80, 443, None) else "")
    if e_scheme not in ("http", "https") or not e_host:
        raise AuthError(f"refused: the Drive endpoint {shown or endpoint!r} is not an http(s) URL; "
                        "fix COLABMODELS_DRIVE_ENDPOINT or endpoint=")
    if e_scheme == "http" and not is_loopback_host(e_host):
        raise AuthError(
            f"refused to send {method} credentials to {shown}: plain HTTP is only allowed to this "
            "machine (localhost/127.0.0.1), because anyone on the way could read the token. "
            "Use an https:// endpoint, or unset COLABMODELS_DRIVE_ENDPOINT to use Google Drive."
        )
    endpoint_is_google = e_scheme == "https" and is_google_host(e_host)
    i_scheme, i_host, i_port, i_path = _origin(issuer or GOOGLE_TOKEN_URI)
    issued_by_google = i_scheme == "https" and is_google_host(i_host)
    if endpoint_is_google:
        if issued_by_google:
            return
        raise AuthError(
            f"refused: these {method} credentials were issued by {i_scheme}://{i_host} (their "
            "token_uri), not by Google, so they are not sent to Google Drive. Point "
            "COLABMODELS_DRIVE_ENDPOINT (or endpoint=) at the service that issued them, or use a "
            "key from the Google Cloud console."
        )
    if issued_by_google:
        raise AuthError(
            f"refused to send Google-issued {method} credentials to {shown}, which is not Google: "
            "a custom endpoint only gets credentials whose own token_uri names it (as the "
            "emulator's keys do). Unset COLABMODELS_DRIVE_ENDPOINT (or endpoint=) to use Google "
            "Drive, or sign in with a key issued by that endpoint."
        )
    same_origin = (i_scheme, i_host, i_port) == (e_scheme, e_host, e_port)
    if not same_origin or not (i_path or "/").startswith(e_path.rstrip("/") or "/"):
        raise AuthError(
            f"refused to send {method} credentials issued by {i_scheme}://{i_host}"
            + (f":{i_port}" if i_port not in (80, 443, None) else "")
            + f" to {shown}: a custom endpoint only gets credentials whose own token_uri names it. "
            "Use a key written by that endpoint (FakeDrive.write_service_account) or point "
            "COLABMODELS_DRIVE_ENDPOINT at the service that issued the key."
        )


def _issuer(credentials: Any) -> str | None:
    """The token endpoint of google-auth credentials (None: Google's own, e.g. Compute Engine)."""
    uri = getattr(credentials, "token_uri", None) or getattr(credentials, "_token_uri", None)
    return uri if isinstance(uri, str) and uri else None


def _checked(signin: SignIn, endpoint: str | None) -> SignIn:
    check_destination(_issuer(signin.credentials),
                      endpoint or config.drive_endpoint(), method=signin.method.replace("_", " "))
    return signin


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
        return _checked(_colab(mountpoint, force_remount=force_remount, timeout_ms=timeout_ms),
                        endpoint)
    key = service_account or config.service_account_file()
    if key:
        return _checked(SignIn(load_service_account(key), "service_account"), endpoint)
    saved = load_saved_login()
    if saved is not None:
        return _checked(SignIn(saved, "saved_login"), endpoint)
    if interactive is None:
        interactive = _looks_interactive()
    secrets = Path(client_secrets) if client_secrets else config.config_dir() / "client_secrets.json"
    if interactive and secrets.exists():
        check_destination(GOOGLE_TOKEN_URI, endpoint or config.drive_endpoint(),
                          method="interactive login")
        return _checked(SignIn(_interactive_login(secrets), "interactive"), endpoint)
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

    The key's own ``token_uri`` is kept (Google's when it names none). ``endpoint`` is
    accepted for compatibility and not used: where the credentials may go is checked by
    ``sign_in`` (``check_destination``).

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
    if not isinstance(info.get("token_uri"), str) or not info.get("token_uri"):
        info["token_uri"] = GOOGLE_TOKEN_URI
    try:
        return sa.Credentials.from_service_account_info(info, scopes=_drive_scopes())
    except (ValueError, KeyError, TypeError) as e:
        raise AuthError(f"service-account key {os.fspath(path)!r} is invalid: "
                        f"{redact(str(e))}") from None


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
        return Credentials(
            None,
            refresh_token=data["refresh_token"],
            token_uri=data.get("token_uri") or GOOGLE_TOKEN_URI,
            client_id=data["client_id"],
            client_secret=data["client_secret"],
            scopes=data.get("scopes") or _drive_scopes(),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise AuthError(f"saved login {path} is unreadable or damaged ({type(e).__name__}); "
                        "delete it and sign in again") from None


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


SIGN_IN_AGAIN = ("Sign in again without restarting: run %drive_mount --force (or "
                 "cm.mount(force_remount=True)), then run the cell again.")


def refused_sign_in(what: str, exc: BaseException) -> AuthError:
    """The error for a token refresh that was refused. An expired or revoked grant
    (``invalid_grant``: a password change, a revoked app, a sign-in too old) says how to sign
    in again in the running notebook; anything else says what the token endpoint said."""
    detail = redact(str(exc))
    if "invalid_grant" in detail:
        return AuthError(f"{what}: your Drive sign-in has expired or was revoked (invalid_grant). "
                         f"{SIGN_IN_AGAIN}")
    return AuthError(f"{what}: the sign-in was refused: {detail}")


def refresh_credentials(credentials: Any) -> None:
    """Refresh google-auth credentials, translating failures to ``AuthError``."""
    import google.auth.exceptions
    import google.auth.transport.requests as gtr

    try:
        credentials.refresh(gtr.Request())
    except google.auth.exceptions.RefreshError as e:
        raise refused_sign_in("could not refresh the sign-in", e) from None
    except google.auth.exceptions.TransportError as e:
        raise AuthError(f"could not reach the token endpoint: {redact(str(e))}") from None


def bearer_token(credentials: Any) -> str:
    """A currently valid access token (refreshing first when needed)."""
    if not credentials.valid:
        refresh_credentials(credentials)
    return credentials.token


# -- redaction ------------------------------------------------------------------------------------

_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)
_SECRET_FIELD = re.compile(
    r"""(?ix)
    (["']?(?:client_secret|private_key|private_key_id|refresh_token|access_token|id_token|
           assertion|password|secret)["']?\s*[:=]\s*)
    (?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s,&;}'"]+)""")
_SIGNING_PARAM = re.compile(
    r"""(?ix)
    ((?:^|[?&;\s"'])(?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature|
        X-Goog-Credential|Signature|GoogleAccessId|Key-Pair-Id|Policy|sig|token|access_token|
        refresh_token|client_secret)=)[^&\s"'#]*""")
_TOKENS = (
    (re.compile(r"\bya29\.[A-Za-z0-9._\-]+"), "ya29.<redacted>"),     # Google access tokens
    (re.compile(r"\b1//[A-Za-z0-9._\-]+"), "<redacted refresh token>"),  # Google refresh tokens
    (re.compile(r"\beyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*\.?[A-Za-z0-9_\-]*"), "<redacted JWT>"),
    (re.compile(r"(?i)(\bBearer\s+)[A-Za-z0-9._~+/\-]+=*"), r"\1<redacted>"),
)


def redact(text: str) -> str:
    """``text`` with secrets replaced: access tokens (``ya29.``), refresh tokens (``1//``, all
    of it), JWTs, bearer tokens, ``client_secret``/``private_key``/token fields, PEM private
    keys, and URL signing parameters (S3 ``X-Amz-Signature``/``-Credential``/``-Security-Token``,
    GCS ``X-Goog-Signature``/``-Credential``, ``Signature=``, ``GoogleAccessId``...)."""
    if not text:
        return text
    out = _PRIVATE_KEY.sub("<redacted private key>", str(text))
    out = _SECRET_FIELD.sub(r"\1<redacted>", out)
    out = _SIGNING_PARAM.sub(r"\1<redacted>", out)
    for pattern, replacement in _TOKENS:
        out = pattern.sub(replacement, out)
    return out
