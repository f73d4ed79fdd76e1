"""Drive's thumbnails (``thumbnailLink``): the one way colabmodels fetches them.

A thumbnail link of a private file needs the session's bearer token, but a link is data Drive
(or whoever answered as Drive) handed us, so the token goes only where it belongs
(``may_send_token``): to Google's own hosts over HTTPS, or to the endpoint the session
talks to (the emulator), and over plain HTTP only to this machine. Anywhere else the link is
fetched without it.

The request goes through a plain HTTP client, not the session's authorised ``http``: PyDrive2's
authorised object adds the token to every request it sends, whatever the host. Redirects are
followed by hand (at most ``MAX_REDIRECTS``), and the rule is applied again at each hop.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

from ..auth import is_google_host, is_loopback_host

__all__ = ["MAX_REDIRECTS", "ThumbnailBytes", "fetch_thumbnail", "may_send_token", "sized_link"]

logger = logging.getLogger("colabmodels.drive")

MAX_REDIRECTS = 3
TIMEOUT_S = 20.0
_SIZE_SUFFIX = re.compile(r"=(?:s\d+|w\d+(?:-h\d+)?|h\d+)(?:-[a-z0-9-]*)?$")
_POOL: Any = None
_POOL_LOCK = threading.Lock()


class SignedIn(Protocol):
    """What a thumbnail fetch needs of a session: where it talks to, and its token."""

    endpoint: str

    def access_token(self) -> str: ...


@dataclass(frozen=True)
class ThumbnailBytes:
    """A thumbnail's bytes and format (``"png"``, ``"jpeg"``...), or why there are none."""

    data: bytes | None
    format: str = "png"
    problem: str | None = None


def sized_link(link: str, size: int | None) -> str:
    """Drive's thumbnail link asking for a ``size``-pixel box (``=s220`` -> ``=s128``)."""
    if size is None:
        return link
    if _SIZE_SUFFIX.search(link):
        return _SIZE_SUFFIX.sub(f"=s{int(size)}", link)
    return link


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "", "", None
    scheme = parts.scheme.lower()
    default = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port if port is not None else default


def may_send_token(link: str, endpoint: str) -> bool:
    """Whether the session's bearer token may go with a request to ``link``.

    Yes for Google's own hosts (``*.google.com``, ``*.googleapis.com``,
    ``*.googleusercontent.com``) over HTTPS, and for the session's own endpoint (same scheme,
    host and port) when that is HTTPS or on this machine. No for anything else.
    """
    scheme, host, port = _origin(link)
    if scheme not in ("http", "https") or not host:
        return False
    if scheme == "http" and not is_loopback_host(host):
        return False
    if (scheme, host, port) == _origin(endpoint):
        return True
    return scheme == "https" and (is_google_host(host) or host == "googleusercontent.com"
                                  or host.endswith(".googleusercontent.com"))


def _pool() -> Any:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            import urllib3

            _POOL = urllib3.PoolManager(num_pools=8, maxsize=16, retries=False)
        return _POOL


def fetch_thumbnail(session: SignedIn, link: str, *, size: int | None = None) -> ThumbnailBytes:
    """The thumbnail at ``link`` (one small request; never a file's content).

    Args:
        session: the Drive session that listed the file (its endpoint and token).
        link: Drive's ``thumbnailLink``.
        size: the box in pixels Drive scales the thumbnail into (None: as the link says).

    Returns:
        the bytes, or ``data=None`` with ``problem`` saying why: a preview is optional, so
        errors are reported, not raised.
    """
    url = sized_link(link, size)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"Accept": "image/*"}
            if may_send_token(url, session.endpoint):
                headers["Authorization"] = f"Bearer {session.access_token()}"
            resp = _pool().request("GET", url, headers=headers, redirect=False,
                                   timeout=TIMEOUT_S, preload_content=True)
            if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                url = urljoin(url, resp.headers["Location"])
                continue
            break
        else:
            return ThumbnailBytes(None, problem="too many redirects")
    except Exception as e:  # a preview is optional; the caller shows the rest
        logger.info("thumbnail %s: %s", _shown(link), e)
        return ThumbnailBytes(None, problem=f"{type(e).__name__}: {e}")
    if resp.status != 200:
        logger.info("thumbnail %s: HTTP %s", _shown(link), resp.status)
        return ThumbnailBytes(None, problem=f"Drive made no thumbnail (HTTP {resp.status})")
    ctype = str(resp.headers.get("Content-Type", "image/png")).split(";")[0]
    return ThumbnailBytes(bytes(resp.data), ctype.partition("/")[2] or "png")


def _shown(link: str) -> str:
    scheme, host, port = _origin(link)
    return f"{scheme}://{host}:{port}/..." if host else "<thumbnail link>"
