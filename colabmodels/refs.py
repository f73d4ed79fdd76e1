"""Parse what a user typed into a ``Ref``.

``parse_ref`` is the single place that turns a string (a pasted share link, a Colab path,
``gs://...``, a local file) into a ``Ref``. It never touches the network; the only file
system access is ``os.path.exists`` for the ambiguity rules below.

Accepted shapes
---------------
Drive links (``http://``, ``https://`` or no scheme; host ``drive.google.com``,
``docs.google.com``, ``drive.usercontent.google.com``; ``/u/N`` and ``/a/DOMAIN`` segments are
ignored wherever they appear)::

    /file/d/ID[/view|/edit|/preview|...]        /file/u/N/d/ID/view
    /document|spreadsheets|presentation|drawings|forms/d/ID/...
    /open?id=ID   /uc?id=ID&export=download   /download?id=ID (usercontent)
    /drive/folders/ID   /drive/u/N/folders/ID   /drive/mobile/folders/ID   (folder=True)
    /embeddedfolderview?id=ID   /folderview?id=ID   /drive/#folders/ID    (folder=True)
    /drive/my-drive                                                         (path "MyDrive")
    https://www.googleapis.com/drive/v2|v3/files/ID[?alt=media]
    ?resourcekey=RK anywhere in the query -> Ref.resource_key
    An id inside a link must be 10..128 characters of ``[A-Za-z0-9_-]``. A Drive host with any
    other path (``/drive/shared-with-me``, the home page) is a RefError, not a web download.

Drive ids:
    a bare id (see ``is_drive_id``), or ``drive-id:ID`` (what ``str(Ref)`` prints for an
    id-only ref; it accepts any id of 10..128 characters of ``[A-Za-z0-9_-]``).

Drive paths (always Drive, even when the same path also exists locally; write
``./MyDrive/...`` for a local folder that happens to be called ``MyDrive``)::

    MyDrive[/...]            My Drive[/...]            -> "MyDrive/..."
    Shareddrives/NAME/...    Shared drives/NAME/...    -> "Shareddrives/NAME/..."
    SharedWithMe/NAME/...    Shared with me/NAME/...   -> "SharedWithMe/NAME/..." (API only)
    Othercomputers/NAME/...                            -> "Othercomputers/NAME/..."
    .shortcut-targets-by-id/ID/NAME/...                -> kept as is (Colab's path of a shortcut)
    /content/drive/<any of the above>                  -> the same, prefix dropped

    ``//`` is collapsed, ``.`` components dropped, a trailing ``/`` stripped (it sets nothing),
    ``..`` raises RefError. ``/content/drive`` alone, or an unknown first folder under it, is
    rejected unless it exists locally (it is the mount point, not a Drive item).
    ``SharedWithMe/NAME`` is the session's lookup of a shared item by name; Colab's mount does
    not have it (``Ref.mount_path`` gives None). ``Othercomputers/...`` and
    ``.shortcut-targets-by-id/...`` are accepted because Colab's mount serves them; the API
    session may not resolve them by name.

Others::

    gs://bucket[/path]   gcs://bucket[/path]    -> source "gcs", path "bucket/path"
    s3://bucket[/key]                           -> source "s3",  path "bucket/key"
    http(s)://host/...   (any non-Drive host)   -> source "http", path = the URL as typed
    file:///abs/path   file://localhost/abs/path   (percent-decoded)
    /abs/path   rel/path   ~/path               -> source "local", absolute normalised path

    Object keys are kept byte for byte (``//``, ``?`` and ``#`` are legal in keys) except that a
    trailing ``/`` is stripped and ``..`` components are rejected. Local paths are made absolute
    against ``cwd`` (default ``os.getcwd()``) with ``~`` expanded and ``..`` resolved lexically
    (symlinks are not followed). A local path that lands under ``/content/drive/<Drive root>``
    becomes a Drive path ref (use ``Ref.mount_path`` to get back to the mount).

Version suffix:
    ``REF@vN`` (N >= 1, leading zeros dropped, ``@V3`` -> ``"v3"``), ``REF@latest`` or ``REF@best``
    (the best checkpoint by its monitored metric, see ``colabmodels.checkpoint``) at the very
    end of the string, on any source, right after a name (``dir/@v2`` names an entry called
    ``@v2``; a bare ``@v2`` is an error). An ``@`` that is part of a URL's authority
    (``https://user@host``) is never a version, and ``@anything-else`` stays part of the name.
    A local name that literally ends in ``@v2`` and exists is taken as that file. Trailing
    ``/`` after the suffix are ignored (``MyDrive/m/vgg@v2/``) except in http(s) URLs.

Ambiguity rules (strings without a scheme):
    1. Drive path shapes (above) are Drive.
    2. Otherwise, if the string exists as a local path, it is local (an id-shaped file name, a
       ``drive.google.com`` folder saved by ``wget -r``...).
    3. Otherwise ``drive.google.com/...`` (no scheme) is a Drive link, an id-shaped string is a Drive id.
    4. Everything else is a local path, existing or not (``model.pth`` -> ``<cwd>/model.pth``;
       the loader raises NotFoundError). Host-like strings such as ``example.com/x.bin`` are
       local too: write the scheme for web URLs.

Rejected with ``RefError``: empty/whitespace strings, control
characters (NUL, an inner newline; surrounding whitespace is stripped), lone surrogates, other
URL schemes (``ftp://``, ``hf://``...), ``http:``/``gs:``/``s3:`` without ``//``, Drive links
without an id, ``gs://``/``s3://`` without a bucket, ``file://`` URLs on another host, ``@v0``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from .errors import RefError

__all__ = ["ACCEPTED_SHAPES", "CONTENT_DRIVE", "Ref", "is_drive_id", "parse_ref", "strip_signing",
           "strip_signing_in", "version_number"]

Source = Literal["drive", "gcs", "s3", "http", "local"]

#: Where Colab mounts Google Drive; paths below it are parsed as Drive paths.
CONTENT_DRIVE = "/content/drive"

ACCEPTED_SHAPES = """\
Accepted references:
  Drive links   https://drive.google.com/file/d/ID/view (or /edit, /preview), .../open?id=ID,
                .../uc?id=ID&export=download, .../drive/folders/ID, drive.usercontent.google.com/download?id=ID
  Drive ids     1AbC...(25-60 of A-Z a-z 0-9 _ -, with upper case, lower case and a digit) or drive-id:ID
  Drive paths   MyDrive/models/x.pth, /content/drive/MyDrive/..., Shareddrives/NAME/..., SharedWithMe/NAME/...,
                Othercomputers/NAME/...
  Cloud         gs://bucket/path, s3://bucket/key
  Web           http://... or https://...
  Local         /abs/path, relative/path, ~/path, file:///abs/path
  Versions      append @v3, @latest or @best (the best checkpoint) to any of these"""


@dataclass(frozen=True)
class Ref:
    """A parsed reference to a file or folder.

    Attributes:
        source: ``"drive"``, ``"gcs"``, ``"s3"``, ``"http"`` or ``"local"``.
        path: drive: ``"MyDrive/models/x.pth"`` / ``"Shareddrives/Team/x"`` (None when only an id
            is known); gcs/s3: ``"bucket/key"``; http: the full URL; local: an absolute path.
        id: a Drive file or folder id when the user gave one.
        version: ``"v3"``, ``"latest"``, ``"best"`` or None (from a ``@v3`` / ``@latest`` /
            ``@best`` suffix).
        resource_key: the ``resourcekey`` of an older Drive share link.
        folder: True when the link says it is a folder (``/drive/folders/ID``).
        raw: the string as typed.
    """

    source: Source
    path: str | None = None
    id: str | None = None
    version: str | None = None
    resource_key: str | None = None
    folder: bool = False
    raw: str = ""

    def unversioned(self) -> Ref:
        return replace(self, version=None)

    def child(self, name: str) -> Ref:
        """The reference of ``name`` inside this folder (path-based sources and Drive paths)."""
        if self.path is None:
            raise RefError(f"{self.raw!r} has no path to append {name!r} to")
        sep = "" if self.path.endswith("/") else "/"
        path = f"{self.path}{sep}{name}"
        # the constructor, not ``replace``: a tree walk makes one per file (thousands)
        return Ref(source=self.source, path=path, resource_key=self.resource_key, raw=path)

    def mount_path(self, mountpoint: str = CONTENT_DRIVE) -> str | None:
        """Where a path-based Drive ref appears under a Colab-style mount, else None.

        ``MyDrive/models/x.pth`` -> ``/content/drive/MyDrive/models/x.pth``. Id-only Drive refs,
        ``SharedWithMe/...`` (Colab's mount has no such folder) and other sources give None. The version suffix is *not* applied (``@latest`` needs a
        listing); resolve versions first and call this on the resolved ref. Whether the mount
        really exists is for the caller to check.
        """
        if self.source != "drive" or self.path is None:
            return None
        if self.path.split("/", 1)[0] not in _MOUNTED_ROOTS:
            return None  # SharedWithMe/... is not in the mount
        return f"{mountpoint.rstrip('/') or ''}/{self.path}"

    def __str__(self) -> str:
        prefix = {"gcs": "gs://", "s3": "s3://", "drive": "", "http": "", "local": ""}[self.source]
        body = self.path if self.path is not None else f"drive-id:{self.id}"
        return f"{prefix}{body}" + (f"@{self.version}" if self.version else "")


# --------------------------------------------------------------------------------------------
# Drive ids

_ID_CHARS = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_BARE_ID = re.compile(r"[A-Za-z0-9_-]{25,60}", re.ASCII)
_LINK_ID = re.compile(r"[A-Za-z0-9_-]{10,128}", re.ASCII)


def is_drive_id(text: str) -> bool:
    """Whether a bare string is shaped like a Drive file/folder id.

    The rule: 25 to 60 characters of ``[A-Za-z0-9_-]`` containing at least one upper-case
    letter, one lower-case letter and one digit.

    Why: current ids are 33 characters starting with ``1``, old ones 28 starting with ``0B``,
    Docs ids 44 starting with ``1``, so a digit is always there; the rest is random base64url,
    so the chance that a real id lacks either letter case is about ``2 * (38/64)**32`` ~ 1e-7.
    Requiring both cases keeps ordinary names out: words and snake_case
    (``resnet50_finetuned_on_imagenet_epoch10``), hex digests (an md5 is 32 lower-case
    hex characters), and anything with a ``.`` or ``/`` (``model.pth``). An id that fails the
    rule can still be given as ``drive-id:ID`` or in a link.
    """
    return (
        _BARE_ID.fullmatch(text) is not None
        and any(c.isdigit() for c in text)
        and any("a" <= c <= "z" for c in text)
        and any("A" <= c <= "Z" for c in text)
    )


# --------------------------------------------------------------------------------------------
# helpers

_QUOTE_PAIRS = {('"', '"'), ("'", "'"), ("<", ">"), ("`", "`"), ("\u201c", "\u201d"),
                ("\u2018", "\u2019"), ("\u00ab", "\u00bb")}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_VERSION = re.compile(r"@(?:[vV]([0-9]+)|(?i:(latest|best)))\Z")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(//)?")
_DRIVE_HOSTS = {"drive.google.com", "www.drive.google.com", "docs.google.com",
                "drive.usercontent.google.com"}
_API_HOSTS = {"www.googleapis.com", "googleapis.com"}
_SCHEMELESS_DRIVE = re.compile(
    r"(?:(?:www\.)?drive\.google\.com|docs\.google\.com|drive\.usercontent\.google\.com"
    r"|(?:www\.)?googleapis\.com(?=/drive/))(?=[/?#]|\Z)", re.IGNORECASE)
_BUCKET = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)
_DOC_KINDS = {"file", "document", "spreadsheets", "presentation", "drawings", "forms"}
_QUERY_ID_PAGES = {"open": False, "uc": False, "download": False,
                   "embeddedfolderview": True, "folderview": True}
_DRIVE_ROOTS = {"MyDrive": "MyDrive", "My Drive": "MyDrive",
                "Shareddrives": "Shareddrives", "Shared drives": "Shareddrives",
                "SharedWithMe": "SharedWithMe", "Shared with me": "SharedWithMe",
                "Othercomputers": "Othercomputers", ".shortcut-targets-by-id": ".shortcut-targets-by-id"}
#: Roots that Colab's mount shows (SharedWithMe exists only for the Drive API).
_MOUNTED_ROOTS = {"MyDrive", "Shareddrives", "Othercomputers", ".shortcut-targets-by-id"}


def _fail(reason: str, raw: object) -> RefError:
    shown = repr(raw)
    if len(shown) > 200:
        shown = shown[:197] + "..."
    return RefError(f"{reason}: {shown}\n{ACCEPTED_SHAPES}")


def _clean(text: str, raw: object) -> str:
    s = text.strip()
    while len(s) >= 2 and (s[0], s[-1]) in _QUOTE_PAIRS:
        s = s[1:-1].strip()
    if not s:
        raise _fail("empty reference", raw)
    if _CONTROL.search(s):
        raise _fail("reference contains a control character (newline, NUL, ...)", raw)
    try:
        s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise _fail("reference contains an unpaired surrogate", raw) from None
    return s


def _split_version(s: str, raw: object) -> tuple[str, str | None]:
    """Split a trailing ``@vN`` / ``@latest`` / ``@best``; leave URL authorities (``user@host``) alone.

    Except in http(s)-style URLs (whose paths are opaque), trailing ``/`` after the suffix are
    ignored (``MyDrive/m/vgg@v2/``), because paths drop trailing slashes anyway.
    """
    sm = _SCHEME.match(s)
    url = bool(sm and sm.group(2) and len(sm.group(1)) > 1
               and sm.group(1).lower() not in ("gs", "gcs", "s3", "file"))
    t = s if url else (s.rstrip("/") or s)
    m = _VERSION.search(t)
    if m is None:
        return s, None
    body = t[: m.start()]
    if body and body.rsplit("/", 1)[-1] in ("", ".", ".."):
        return s, None  # '.../@v2' and './@v2' name an entry called '@v2'
    if url and sm is not None and not any(c in body[sm.end():] for c in "/?#"):
        # the '@' is inside the authority: https://user@latest is a host, not a version
        return s, None
    if not body:
        raise _fail("nothing before the version suffix", raw)
    digits = m.group(1)
    if digits is None:
        return body, m.group(2).lower()
    n = digits.lstrip("0")
    if not n:
        raise _fail("versions start at v1", raw)
    return body, f"v{n}"


def version_number(value: int | str) -> int:
    """The N of a version tag, read as the ``@vN`` suffix is: ``3``, ``"3"``, ``"v3"``, ``"V03"`` -> 3.

    The one parser of version tags outside a reference (``save_model(version=...)``,
    ``%save_model --version``), so they accept what ``REF@vN`` accepts.

    Raises:
        RefError: not a version number, or below 1.
    """
    text = str(value).strip() if not isinstance(value, bool) else ""
    m = _VERSION.fullmatch("@" + (text if text[:1] in ("v", "V") else f"v{text}"))
    if m is None or m.group(1) is None:
        raise RefError(f"{value!r} is not a version number (examples: 3, v3)")
    if int(m.group(1)) < 1:
        raise RefError(f"versions start at v1, not {value!r}")
    return int(m.group(1))


def _exists(path: str) -> bool:
    try:
        return os.path.exists(path)
    except (OSError, ValueError):
        return False


def _base_dir(cwd: str | os.PathLike[str] | None, raw: object) -> str:
    try:
        if cwd is None:
            return os.getcwd()
        return os.path.abspath(os.path.expanduser(os.fspath(cwd)))
    except (OSError, ValueError, TypeError) as e:
        raise _fail(f"cannot resolve a relative path ({e})", raw) from None


def _joined(path: str, cwd: str | os.PathLike[str] | None, raw: object) -> str:
    """``path`` with ``~`` expanded, made absolute against ``cwd``; *not* normalised."""
    try:
        p = os.path.expanduser(path)
        if not os.path.isabs(p):
            p = os.path.join(_base_dir(cwd, raw), p)
    except (OSError, ValueError, TypeError) as e:
        if isinstance(e, RefError):
            raise
        raise _fail(f"cannot make an absolute path ({e})", raw) from None
    return p


def _normalised(p: str) -> str:
    p = os.path.normpath(p)
    if p.startswith("//"):  # POSIX normpath keeps a leading '//'
        p = "/" + p.lstrip("/")
    return p


def _absolute(path: str, cwd: str | os.PathLike[str] | None, raw: object) -> str:
    return _normalised(_joined(path, cwd, raw))


def _exists_locally(path: str, cwd: str | os.PathLike[str] | None, raw: object) -> bool:
    try:
        return _exists(_absolute(path, cwd, raw))
    except RefError:  # no usable cwd: nothing relative can exist
        return False


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


def _drive_root(comps: list[str]) -> str | None:
    return _DRIVE_ROOTS.get(comps[0]) if comps else None


def _content_drive_rel(path: str) -> str | None:
    """``/content/drive/X`` -> ``X`` (``""`` for the mount point itself), else None."""
    if not path.startswith("/"):
        return None
    collapsed = "/" + "/".join(c for c in path.split("/") if c)
    if collapsed == CONTENT_DRIVE:
        return ""
    if collapsed.startswith(CONTENT_DRIVE + "/"):
        return collapsed[len(CONTENT_DRIVE) + 1:]
    return None


def _drive_path(comps: list[str], version: str | None, raw: str) -> Ref:
    if ".." in comps:
        raise _fail("'..' is not allowed in a Drive path", raw)
    root = _DRIVE_ROOTS[comps[0]]
    rest = comps[1:]
    if root == ".shortcut-targets-by-id" and (not rest or _LINK_ID.fullmatch(rest[0]) is None):
        raise _fail(".shortcut-targets-by-id must be followed by a Drive id", raw)
    return Ref("drive", path="/".join([root, *rest]), version=version, raw=raw)


def _local(path: str, version: str | None, full: str | None,
           cwd: str | os.PathLike[str] | None, raw: str) -> Ref:
    """A local path; ``full`` is the same path with the version suffix still attached.

    Paths under the Colab mount point become Drive path refs: ``/content/drive/<root>/...``
    with a known root is Drive (``..`` rejected before normalising); anything else under the
    mount point must exist locally, else RefError.
    """
    if full is not None and version is not None and _exists(_absolute(full, cwd, raw)):
        path, version = full, None
    joined = _joined(path, cwd, raw)
    rel = _content_drive_rel(joined)
    if rel is not None and _drive_root(_components(rel)) is not None:
        return _drive_path(_components(rel), version, raw)
    p = _normalised(joined)
    rel = _content_drive_rel(p)
    if rel is not None:
        comps = _components(rel)
        if _drive_root(comps) is not None:
            return _drive_path(comps, version, raw)
        if not _exists(p):
            if not comps:
                raise _fail(f"{CONTENT_DRIVE} is the mount point; name a file under "
                            f"{CONTENT_DRIVE}/MyDrive or {CONTENT_DRIVE}/Shareddrives", raw)
            raise _fail(f"{comps[0]!r} is not a Drive root under {CONTENT_DRIVE} "
                        "(MyDrive, Shareddrives, Othercomputers, .shortcut-targets-by-id)", raw)
    _check_os_limits(p, raw)
    return Ref("local", path=p, version=version, raw=raw)


#: The POSIX limits of one path component (NAME_MAX) and of a whole path (PATH_MAX), in bytes.
NAME_MAX = 255
PATH_MAX = 4096


def _check_os_limits(path: str, raw: str) -> None:
    """RefError for a local path no operating system could hold (a pasted paragraph, a
    string of punctuation): a component over NAME_MAX bytes or a path over PATH_MAX."""
    encoded = path.encode("utf-8", "surrogateescape")
    if len(encoded) >= PATH_MAX:
        raise _fail(f"not a usable local path: {len(encoded)} bytes, more than the "
                    f"{PATH_MAX - 1} a path may have", raw)
    for comp in encoded.split(b"/"):
        if len(comp) > NAME_MAX:
            shown = comp[:40].decode("utf-8", "replace")
            raise _fail(f"not a usable local path: the name {shown!r}... is {len(comp)} bytes, "
                        f"more than the {NAME_MAX} a file name may have", raw)


def _object_store(source: Literal["gcs", "s3"], rest: str, version: str | None, raw: str) -> Ref:
    bucket, _, key = rest.partition("/")
    scheme = "gs" if source == "gcs" else "s3"
    if not bucket:
        raise _fail(f"{scheme}:// needs a bucket name ({scheme}://bucket/path)", raw)
    if _BUCKET.fullmatch(bucket) is None:
        raise _fail(f"not a valid bucket name {bucket!r}", raw)
    key = key.rstrip("/")
    if ".." in key.split("/"):
        raise _fail("'..' is not allowed in an object key", raw)
    return Ref(source, path=f"{bucket}/{key}" if key else bucket, version=version, raw=raw)


def _file_url(body: str, raw: str) -> str:
    """``file:///abs`` / ``file://localhost/abs`` / ``file:/abs`` -> ``/abs`` (percent-decoded)."""
    rest = body[len("file:"):]
    if rest.startswith("//"):
        host, slash, tail = rest[2:].partition("/")
        if host.lower() not in ("", "localhost"):
            raise _fail("file:// URLs must name a local path (file:///abs/path)", raw)
        rest = slash + tail
    if not rest.startswith("/"):
        raise _fail("file: URLs need an absolute path (file:///abs/path)", raw)
    path = unquote(rest, errors="surrogateescape")
    if _CONTROL.search(path):
        raise _fail("file: URL decodes to a path with a control character", raw)
    return path


def _drive_id(value: str | None, raw: str, what: str = "Drive link") -> str:
    if not value:
        raise _fail(f"{what} without a file or folder id", raw)
    if _LINK_ID.fullmatch(value) is None:
        raise _fail(f"{what} with an id that is not a Drive id ({value!r})", raw)
    return value


def _drive_link(url: str, host: str, version: str | None, raw: str) -> Ref:
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)

    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    rk = first("resourcekey")
    if rk is not None and _ID_CHARS.fullmatch(rk) is None:
        raise _fail("the resourcekey of this Drive link is malformed", raw)
    rk = rk or None

    segs = [unquote(s) for s in parts.path.split("/") if s]
    if len(segs) >= 2 and segs[0] == "a":  # Workspace links: /a/example.com/...
        segs = segs[2:]
    cleaned: list[str] = []
    i = 0
    while i < len(segs):  # drop account selectors /u/0/
        if segs[i] == "u" and i + 1 < len(segs) and segs[i + 1].isdigit():
            i += 2
            continue
        cleaned.append(segs[i])
        i += 1
    segs = cleaned

    def make(file_id: str | None, folder: bool) -> Ref:
        return Ref("drive", id=_drive_id(file_id, raw), version=version, resource_key=rk,
                   folder=folder, raw=raw)

    if host in _API_HOSTS:
        if len(segs) >= 3 and segs[0] == "drive" and re.fullmatch(r"v[0-9]+", segs[1]) \
                and segs[2] == "files":
            return make(segs[3] if len(segs) > 3 else None, False)
        raise _fail("not a Drive files URL", raw)
    # /file/d/ID/..., /document/d/ID/...
    if len(segs) >= 2 and segs[0] in _DOC_KINDS and segs[1] == "d":
        return make(segs[2] if len(segs) > 2 else None, False)
    # /drive/folders/ID, /drive/mobile/folders/ID, /drive/my-drive
    if segs and segs[0] == "drive":
        tail = segs[1:]
        if tail and tail[0] == "mobile":
            tail = tail[1:]
        if tail and tail[0] == "folders":
            return make(tail[1] if len(tail) > 1 else None, True)
        if tail and tail[0] == "my-drive" and len(tail) == 1:
            return Ref("drive", path="MyDrive", version=version, folder=True, raw=raw)
    # old-style /drive/#folders/ID and /#folders/ID
    if (not segs or segs == ["drive"]) and parts.fragment.startswith("folders/"):
        return make(parts.fragment.split("/")[1] or None, True)
    # /open?id=ID, /uc?id=ID, /download?id=ID, /embeddedfolderview?id=ID
    if len(segs) == 1 and segs[0] in _QUERY_ID_PAGES:
        return make(first("id"), _QUERY_ID_PAGES[segs[0]])
    raise _fail("a Google Drive URL that names no file or folder", raw)


def _http(url: str, version: str | None, raw: str) -> Ref:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as e:
        raise _fail(f"malformed URL ({e})", raw) from None
    if not host or any(c.isspace() for c in parts.netloc):
        raise _fail("URL without a host", raw)
    if host in _DRIVE_HOSTS or host in _API_HOSTS:
        return _drive_link(url, host, version, raw)
    scheme = parts.scheme.lower()
    return Ref("http", path=scheme + url[len(scheme):], version=version, raw=raw)


# --------------------------------------------------------------------------------------------


def parse_ref(text: str, *, cwd: str | os.PathLike[str] | None = None) -> Ref:
    """Turn what a user typed into a ``Ref`` (no network access).

    Args:
        text: a Drive link, Drive id, Drive/Colab path, ``gs://``/``s3://``/``http(s)://`` URL,
            ``file://`` URL or local path, optionally ending in ``@vN``, ``@latest`` or ``@best``.
            Surrounding whitespace and one or more pairs of quotes (``"…"``, ``'…'``, ``<…>``,
            backticks, typographic quotes) are stripped. A path-like object is accepted too.
        cwd: the directory relative local paths are resolved against (default: the process's
            current directory); also where the ambiguity rule looks for an existing file.

    Returns:
        The parsed ``Ref``; ``raw`` is ``text`` as given.

    Raises:
        RefError: the string matches none of the accepted shapes; the message lists them.

    See the module docstring for every accepted shape and the ambiguity rules.
    """
    raw = text
    if isinstance(text, os.PathLike):
        text = os.fspath(text)
    if not isinstance(text, str):
        raise _fail(f"a reference must be a string, not {type(text).__name__}", raw)
    raw = text
    s = _clean(text, raw)
    body, version = _split_version(s, raw)

    m = _SCHEME.match(body)
    if m is not None and len(m.group(1)) > 1:
        scheme, slashes = m.group(1).lower(), m.group(2)
        if scheme in ("gs", "gcs", "s3", "http", "https") and not slashes:
            raise _fail(f"{scheme}: must be followed by //", raw)
        if scheme in ("gs", "gcs"):
            return _object_store("gcs", body[m.end():], version, raw)
        if scheme == "s3":
            return _object_store("s3", body[m.end():], version, raw)
        if scheme in ("http", "https"):
            return _http(body, version, raw)
        if scheme == "file":
            path = _file_url(body, raw)
            full = _file_url(s, raw) if version is not None else None
            return _local(path, version, full, cwd, raw)
        if scheme == "drive-id" and not slashes:
            return Ref("drive", id=_drive_id(body[m.end():], raw, "drive-id:"),
                       version=version, raw=raw)
        if slashes:
            raise _fail(f"unsupported URL scheme {scheme!r}", raw)
        # 'name:with-colon.pth' without '//' falls through to a local path

    # 1. absolute paths are local (or Drive paths under /content/drive); Drive path shapes
    if body.startswith("/"):
        return _local(body, version, s, cwd, raw)
    if body.split("/")[0] in _DRIVE_ROOTS:
        return _drive_path(_components(body), version, raw)

    # 2. an existing local path wins over every other reading
    if _exists_locally(body, cwd, raw) or (version is not None and _exists_locally(s, cwd, raw)):
        return _local(body, version, s, cwd, raw)

    # 3. schemeless Drive links, bare ids
    if _SCHEMELESS_DRIVE.match(body):
        return _http("https://" + body, version, raw)
    if is_drive_id(body):
        return Ref("drive", id=body, version=version, raw=raw)
    # 4. anything else is a local path (the loader reports a missing file)
    return _local(body, version, s, cwd, raw)


# --------------------------------------------------------------------------------------------
# signed URLs

_SIGNING_PARAMS = frozenset({
    "signature", "googleaccessid", "expires", "key-pair-id", "policy",  # GCS v2, CloudFront
    "sig", "se", "sp", "sv", "sr", "st", "spr", "skoid", "sktid", "skt", "ske", "sks", "skv",  # Azure SAS
    "access_token", "token", "awsaccesskeyid", "security-token",
})


def strip_signing(url: str) -> str:
    """``url`` without its signing query: what the cache stores and shows for a signed URL.

    Removes S3 presigning (``X-Amz-*``, ``AWSAccessKeyId``/``Signature``/``Expires``), GCS
    signed URLs (``X-Goog-*``, ``GoogleAccessId``/``Signature``/``Expires``), CloudFront
    (``Policy``/``Key-Pair-Id``), Azure SAS (``sig``, ``se``...) and ``token``/``access_token``
    parameters, and any ``user:password@``; other query parameters stay in their order. A string
    that is not an http(s) URL is returned unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme.lower() not in ("http", "https"):
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith(("x-amz-", "x-goog-")) and k.lower() not in _SIGNING_PARAMS]
    if netloc == parts.netloc and len(kept) == len(parse_qsl(parts.query, keep_blank_values=True)):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept), parts.fragment))


_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)


def strip_signing_in(text: str) -> str:
    """``text`` with ``strip_signing`` applied to every http(s) URL inside it (cache
    identities and aliases embed URLs: ``http:https://host/k?X-Amz-Signature=...:etag``)."""
    return _URL_IN_TEXT.sub(lambda m: strip_signing(m.group(0)), text) if "://" in text else text
