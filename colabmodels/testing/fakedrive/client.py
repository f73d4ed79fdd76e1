"""Build real Drive clients (google-api-python-client, PyDrive2) that talk to an emulator.

The trick is the one the design describes: build the ``drive v2`` service from
the discovery document bundled with google-api-python-client, with ``rootUrl``
(and the absolute URLs derived from it) replaced by the emulator's address.
Nothing is fetched from the network::

    gauth = pydrive2_auth(fd, "key.json")          # service-account login via fd's /token
    drive = pydrive2.drive.GoogleDrive(gauth)      # or: pydrive2_drive(fd, "key.json")
    fs = pydrive2.fs.GDriveFileSystem("root", google_auth=gauth)

    creds = service_account_credentials("key.json")
    service = drive_service(fd, creds)             # googleapiclient Resource

``endpoint`` arguments accept a ``FakeDrive`` or its
URL (``http://127.0.0.1:PORT/``), so product code can point at any
Drive-compatible endpoint the same way.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import FakeDrive

__all__ = [
    "DRIVE_SCOPES",
    "build_http",
    "discovery_document",
    "drive_service",
    "oauth_credentials",
    "pydrive2_auth",
    "pydrive2_drive",
    "service_account_credentials",
]

DRIVE_SCOPES = ["https://www.googleapis.com/auth/drive"]


def _root_url(endpoint: FakeDrive | str) -> str:
    url = endpoint if isinstance(endpoint, str) else endpoint.url
    return url if url.endswith("/") else url + "/"


def discovery_document(endpoint: FakeDrive | str) -> dict[str, Any]:
    """The bundled Drive v2 discovery document, re-rooted at ``endpoint``."""
    from googleapiclient.discovery_cache import get_static_doc

    text = get_static_doc("drive", "v2")
    if text is None:  # pragma: no cover - every googleapiclient 2.x ships it
        raise RuntimeError("google-api-python-client does not bundle the drive v2 discovery document")
    doc = json.loads(text)
    root = _root_url(endpoint)
    doc["rootUrl"] = root
    doc["mtlsRootUrl"] = root
    doc["baseUrl"] = root + doc.get("servicePath", "drive/v2/")
    doc["batchPath"] = "batch/drive/v2"
    return doc


def build_http(timeout: float | None = 60) -> Any:
    """An ``httplib2.Http`` that, like googleapiclient's, does not follow 308s."""
    import httplib2

    http = httplib2.Http(timeout=timeout)
    http.redirect_codes = http.redirect_codes - {308}
    return http


def drive_service(
    endpoint: FakeDrive | str,
    credentials: Any = None,
    *,
    http: Any = None,
) -> Any:
    """A googleapiclient ``drive v2`` Resource for ``endpoint``.

    Args:
        endpoint: a FakeDrive or its URL.
        credentials: google-auth credentials (wrapped in an authorized http);
            ignored when ``http`` is given.
        http: an already-authorized ``httplib2.Http`` (e.g. PyDrive2's).
    """
    from googleapiclient.discovery import build_from_document

    doc = discovery_document(endpoint)
    if http is not None:
        return build_from_document(doc, http=http)
    if credentials is not None:
        import google_auth_httplib2

        return build_from_document(doc, http=google_auth_httplib2.AuthorizedHttp(credentials, http=build_http()))
    return build_from_document(doc, http=build_http())


def service_account_credentials(keyfile: str | os.PathLike, scopes: list[str] | None = None) -> Any:
    """google-auth service-account credentials from a key file (honours its ``token_uri``)."""
    from google.oauth2 import service_account

    return service_account.Credentials.from_service_account_file(os.fspath(keyfile), scopes=scopes or DRIVE_SCOPES)


def oauth_credentials(fd: FakeDrive, user: str | None = None) -> Any:
    """google-auth user credentials with a refresh token issued by ``fd``."""
    from google.oauth2.credentials import Credentials

    client_id, client_secret, refresh_token = fd.issue_refresh_token(user)
    return Credentials(
        None,
        refresh_token=refresh_token,
        token_uri=fd.token_uri,
        client_id=client_id,
        client_secret=client_secret,
        scopes=DRIVE_SCOPES,
    )


def pydrive2_auth(
    endpoint: FakeDrive | str,
    keyfile: str | os.PathLike,
    *,
    http_timeout: float | None = 60,
    scopes: list[str] | None = None,
) -> Any:
    """A PyDrive2 ``GoogleAuth`` signed in with a service-account key, serving ``endpoint``.

    PyDrive2 does the login itself (oauth2client posts a signed JWT to the
    key's ``token_uri``); then its ``service`` is replaced by one built from the
    re-rooted discovery document over PyDrive2's own authorized http, so
    ``GoogleDrive(gauth)`` and ``GDriveFileSystem(..., google_auth=gauth)`` use
    the emulator.
    """
    from pydrive2.auth import GoogleAuth

    settings = {
        "client_config_backend": "service",
        "service_config": {"client_json_file_path": os.fspath(keyfile), "client_user_email": None},
        "oauth_scope": scopes or DRIVE_SCOPES,
        "save_credentials": False,
    }
    gauth = GoogleAuth(settings=settings, http_timeout=http_timeout)
    gauth.ServiceAuth()
    gauth.service = drive_service(endpoint, http=gauth.http)
    return gauth


def pydrive2_drive(endpoint: FakeDrive | str, keyfile: str | os.PathLike, **kwargs: Any) -> Any:
    """A PyDrive2 ``GoogleDrive`` for ``endpoint`` (see ``pydrive2_auth``)."""
    from pydrive2.drive import GoogleDrive

    return GoogleDrive(pydrive2_auth(endpoint, keyfile, **kwargs))
