"""The Drive v2 wire: how colabmodels speaks to Drive, in one place.

- building the v2 service from the bundled discovery document, aimed at an endpoint;
- the ``q`` query language's string quoting (``quote_q``), the file fields we ask for and
  the MIME types Drive gives folders, shortcuts and Google Docs;
- ``translate_drive_error``: whatever googleapiclient, PyDrive2, httplib2 or google-auth
  raised, as the colabmodels error to raise (HTTP errors are classified by
  ``colabmodels.httpstatus.classify_response``, the one classifier of HTTP statuses);
- which files have no bytes to download (Google Docs, Sheets, Slides...).

The request shapes themselves (get, list, change feed, uploads...) are in
``colabmodels.drive.files``; this module imports ``config``, ``errors``, ``httpstatus``,
``retry`` and ``auth`` only.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .. import config
from ..auth import refused_sign_in
from ..errors import (
    AuthError,
    ColabModelsError,
    NotDownloadableError,
    RetryableError,
    TransferError,
)
from ..httpstatus import classify_response
from ..retry import network_down_error

__all__ = [
    "FILE_FIELDS",
    "FOLDER_MIME",
    "GOOGLE_APPS_PREFIX",
    "SHORTCUT_MIME",
    "build_drive_service",
    "check_downloadable",
    "is_google_doc",
    "quote_q",
    "translate_drive_error",
]

logger = logging.getLogger("colabmodels.drive")

FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"
GOOGLE_APPS_PREFIX = "application/vnd.google-apps."
FILE_FIELDS = ("id,title,mimeType,fileSize,md5Checksum,createdDate,modifiedDate,description,"
               "properties,labels,version,parents,shortcutDetails")
"""The fields of a file resource that stat, list and uploads ask for."""

_GOOGLE_APPS_KINDS = {
    "document": ("a Google Doc", ".docx, .pdf or .txt"),
    "spreadsheet": ("a Google Sheet", ".xlsx or .csv"),
    "presentation": ("a Google Slides presentation", ".pptx or .pdf"),
    "drawing": ("a Google Drawing", ".png, .svg or .pdf"),
    "form": ("a Google Form", None),
    "script": ("an Apps Script project", None),
    "site": ("a Google Site", None),
    "jam": ("a Jamboard", ".pdf"),
    "map": ("a My Maps map", ".kml"),
    "fusiontable": ("a Fusion Table", ".csv"),
}


# -- the service and queries -----------------------------------------------------------------

def build_drive_service(http: Any, endpoint: str | None = None) -> Any:
    """A Drive v2 service object from the bundled discovery document, aimed at ``endpoint``."""
    from googleapiclient.discovery import build_from_document
    from googleapiclient.discovery_cache import get_static_doc

    endpoint = endpoint or config.drive_endpoint()
    doc = json.loads(get_static_doc("drive", "v2"))
    if endpoint != config.GOOGLE_DRIVE_ENDPOINT:
        doc["rootUrl"] = endpoint
        doc["mtlsRootUrl"] = endpoint
        doc["baseUrl"] = endpoint + doc["servicePath"]
    return build_from_document(doc, http=http)


def quote_q(value: str) -> str:
    """A string literal for a Drive ``q`` query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_google_doc(mime: str | None) -> bool:
    """A Google Docs/Sheets/Slides... file: no bytes of its own, only exports (not a folder
    or a shortcut)."""
    return (mime is not None and mime.startswith(GOOGLE_APPS_PREFIX)
            and mime not in (FOLDER_MIME, SHORTCUT_MIME))


def check_downloadable(name: str, mime: str | None) -> None:
    """Raise when ``mime`` says the file has no bytes of its own (a Google Doc, Sheet...).

    Folders and shortcuts are not checked here (a folder is fetched as a tree, a shortcut
    stands for its target).

    Raises:
        NotDownloadableError: the message says what the file is and how to export it.
    """
    if not mime or not is_google_doc(mime):
        return
    kind, formats = _GOOGLE_APPS_KINDS.get(mime[len(GOOGLE_APPS_PREFIX):],
                                           (f"a Google Workspace file ({mime})", None))
    how = (f"Export it first (in Drive: File > Download, e.g. as {formats}), put the exported "
           "file in Drive and load that." if formats else
           "It cannot be exported as a file colabmodels could load.")
    raise NotDownloadableError(
        f"{name} is {kind}, not a file with bytes to download: Drive keeps it in Google's own "
        f"format. {how}")


# -- error responses -------------------------------------------------------------------------

_CONNECTION_TROUBLE = frozenset({"RedirectMissingLocation", "IncompleteRead",
                                 "RemoteDisconnected"})


def translate_drive_error(exc: BaseException, what: str) -> BaseException:
    """A googleapiclient / PyDrive2 / httplib2 / google-auth error as a colabmodels error.

    Transient trouble comes back as ``RetryableError``; a network that is down as
    ``NetworkDownError``.
    """
    if isinstance(exc, (ColabModelsError, RetryableError)):
        down = network_down_error(exc, what) if isinstance(exc, (AuthError, RetryableError)) else None
        return down or exc
    down = network_down_error(exc, what)
    if down is not None:
        return down
    if type(exc).__name__ == "RefreshError":  # google.auth.exceptions.RefreshError
        return refused_sign_in(what, exc)
    inner = getattr(exc, "error", None)  # pydrive2.files.ApiRequestError wraps HttpError
    http_error = inner if inner is not None and hasattr(inner, "resp") else exc
    resp = getattr(http_error, "resp", None)
    if resp is not None and hasattr(resp, "status"):
        content = getattr(http_error, "content", b"")
        error = classify_response(int(resp.status), dict(resp), content)
        if error is not None:
            if isinstance(error, RetryableError):
                return error
            error.args = (f"{what}: {error.args[0]}",)
            return error
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)) or type(exc).__name__ in _CONNECTION_TROUBLE:
        return RetryableError(f"{what}: connection problem: {exc}")
    return TransferError(f"{what}: {type(exc).__name__}: {exc}")
