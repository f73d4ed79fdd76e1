"""gensim: ``.save()`` pickles with their sidecar arrays, and word2vec vector files.

``SaveLoad.save(fname)`` pickles the model after moving large numpy arrays (at least
``sep_limit`` elements, 10 million by default) out into sidecar files named
``FNAME.ATTR.npy`` — nested objects add their attribute path, e.g. ``FNAME.wv.vectors.npy`` —
and records which attributes it moved in the pickled ``__numpys`` / ``__scipys`` /
``__recursive_saveloads`` attributes. Sniffing reads those lists with
``inert_unpickle`` (nothing of gensim is imported or run), so
``FormatInfo`` can list the sidecars the pickle needs, those present
and those missing. Loading unpickles (``trust=True`` needed) and memory-maps the sidecars.

word2vec files hold only vectors, no code: text (``N D`` header line, then ``word v1 .. vD``
per line; or the same without header, GloVe style) and the C tool's binary layout (header
line, then ``word`` + space + ``D`` little-endian float32 per entry).
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import re
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, UnknownFormatError
from .dependencies import require
from .info import FormatInfo, SavedFiles
from .names import DisplayNames
from .paths import files_under, linked_files
from .safety import InertObject, PickleScan, inert_unpickle, scan_pickle, significant_globals

__all__ = [
    "inspect_gensim_pickle",
    "load_gensim",
    "load_word2vec",
    "required_sidecars",
    "save_gensim",
    "sniff_word2vec",
]

logger = logging.getLogger("colabmodels")

MAX_STRUCTURE_BYTES = 512 * 1024**2
"""Larger pickles are not inspected for sidecar names (a missing one then surfaces on load)."""
_HEADER = re.compile(rb"^\s*(\d+)\s+(\d+)\s*$")


# --------------------------------------------------------------------------- gensim pickles


_MAX_SIDECARS = 10_000


def _needed_sidecars(
    obj: Any, prefix: str = "", depth: int = 0, seen: set[int] | None = None
) -> list[str]:
    """Sidecar name suffixes (after ``FNAME.``) that a gensim object's pickle refers to.

    Each object is visited once (a crafted pickle can make its objects refer to each other
    many times over), at most 20 levels deep, naming at most ``_MAX_SIDECARS`` files.
    """
    seen = set() if seen is None else seen
    if not isinstance(obj, InertObject) or depth > 20 or id(obj) in seen:
        return []
    seen.add(id(obj))
    attrs = obj.attributes()
    needed: list[str] = []

    def names(key: str) -> list[str]:
        # attribute names only: a crafted pickle must not smuggle '/' or '..' into file names
        values = attrs.get(key, None) or []
        return list(dict.fromkeys(v for v in values if isinstance(v, str) and v.isidentifier()))

    for attr in names("__recursive_saveloads"):
        needed += _needed_sidecars(attrs.get(attr), f"{prefix}{attr}.", depth + 1, seen)
    for attr in names("__numpys"):
        needed.append(f"{prefix}{attr}.npy")
    for attr in names("__scipys"):
        needed += [f"{prefix}{attr}.npy"] + [
            f"{prefix}{attr}.{part}.npy" for part in ("data", "indptr", "indices")
        ]
    if len(needed) > _MAX_SIDECARS:
        raise ValueError(f"the pickle names more than {_MAX_SIDECARS} sidecar files")
    return needed


def _read_structure(path: Path) -> tuple[str | None, list[str] | None]:
    """The root class and the sidecar suffixes of a gensim pickle, read inertly.

    Returns ``(None, None)`` when the pickle is larger than ``MAX_STRUCTURE_BYTES`` or
    malformed. The bytes are read into memory first: the unpickler then checks every length
    against what is really there instead of asking the file for it.
    """
    if path.stat().st_size > MAX_STRUCTURE_BYTES:
        logger.debug("%s is too large to inspect for gensim sidecars", path)
        return None, None
    try:
        root = inert_unpickle(io.BytesIO(path.read_bytes()))
        if not isinstance(root, InertObject):
            return None, None
        return root.class_name(), _needed_sidecars(root)
    except Exception as e:  # malformed pickle: report what the opcode scan saw
        logger.debug("cannot read the structure of %s: %s", path, e)
        return None, None


def inspect_gensim_pickle(path: Path, scan: PickleScan) -> FormatInfo:
    """Describe a gensim ``.save()`` pickle: its class and its sidecar files.

    Details: ``class`` (e.g. ``gensim.models.doc2vec.Doc2Vec``), ``needed_sidecars`` (file
    names, None when the pickle was too large to inspect), ``sidecars`` (files named
    ``NAME.*`` beside it), ``missing_sidecars``, ``sidecar_suffixes`` (what follows
    ``NAME.`` in each needed sidecar), ``sidecar_prefix`` (the name the sidecars were saved
    under, when it is not this file's name), ``globals`` (every global the pickle names) and
    ``would_run`` (those that matter: its classes and functions, not numpy's array helpers).
    """
    root_class = next((g for g in scan.globals if g.startswith("gensim.")), None)
    found_class, suffixes = _read_structure(path)
    root_class = found_class or root_class
    folder = path.parent
    present = sorted(
        p.name for p in folder.iterdir() if p.name.startswith(path.name + ".") and p.is_file()
    )
    details: dict[str, Any] = {
        "class": root_class,
        "sidecars": present,
        "needed_sidecars": None,
        "missing_sidecars": [],
        "sidecar_suffixes": suffixes,
        "sidecar_prefix": None,
        "globals": list(scan.globals),
        "would_run": significant_globals(scan.globals),
    }
    if suffixes is not None:
        needed = [f"{path.name}.{s}" for s in suffixes]
        missing = [n for n in needed if not (folder / n).is_file()]
        if missing and suffixes:
            # The pickle may have been renamed: look for one other name that has them all.
            prefixes = None
            for s in suffixes:
                have = {p.name[: -len(s) - 1] for p in folder.glob(f"*.{s}") if p.is_file()}
                prefixes = have if prefixes is None else prefixes & have
            if prefixes and len(prefixes) == 1:
                other = prefixes.pop()
                details["sidecar_prefix"] = other
                needed = [f"{other}.{s}" for s in suffixes]
                missing = []
        details["needed_sidecars"] = needed
        details["missing_sidecars"] = missing
    return FormatInfo("gensim", "gensim", True, details)


def required_sidecars(path: str | Path, *, name: str | None = None) -> list[str]:
    """The sidecar files a gensim ``.save()`` pickle needs beside it, read without running it.

    ``SaveLoad.save(fname)`` moves large arrays into ``fname.ATTR.npy`` files; the pickle
    records which. This names them after ``name`` (the main file's name where it is stored,
    e.g. ``d2v.model`` on Drive), so a caller holding only the main file can fetch them from
    the same folder and load with ``linked_files``.

    Args:
        path: the local main file (a cache copy may have any name).
        name: the main file's name at its source; default ``path``'s own name.

    Returns:
        Sidecar file names, sorted; empty when the model keeps every array inside the pickle,
        or when the pickle is too large to inspect (a missing sidecar then surfaces on load).

    Raises:
        UnknownFormatError: ``path`` is not a gensim pickle.
        NotFoundError: ``path`` does not exist.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{p} does not exist")
    with open(p, "rb") as f:
        scan = scan_pickle(f)
    if not any(g.startswith("gensim.") for g in scan.globals):
        raise UnknownFormatError(f"{p} is not a gensim .save() pickle")
    _cls, suffixes = _read_structure(p)
    stem = name or p.name
    return sorted(f"{stem}.{s}" for s in suffixes or [])


def _import_gensim_class(name: str | None) -> Any:
    gensim_utils = require("gensim.utils", purpose="load gensim models")
    if name and name.startswith("gensim."):
        module, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr)
            if isinstance(cls, type) and hasattr(cls, "load"):
                return cls
        except (ImportError, AttributeError):
            logger.debug("cannot import %s; loading through gensim.utils.SaveLoad", name)
    return gensim_utils.SaveLoad


def _source_stem(path: Path, source: str | None) -> str:
    """The main file's name at its source (``MyDrive/m/d2v.model`` -> ``d2v.model``), which
    is what its sidecars are named after; the local name when the source is a link or id."""
    if source and "://" not in source and "/" in source.strip("/"):
        return source.rstrip("/").rsplit("/", 1)[-1]
    return path.name


def load_gensim(
    path: Path, info: FormatInfo, *, source: str | None = None, **loader_kwargs: Any
) -> Any:
    """Load a gensim pickle with its sidecars (the caller has checked ``trust``).

    Arrays are memory-mapped read-only by default (``mmap="r"``; pass ``mmap=None`` to read
    them into memory).

    Args:
        path: the main file.
        info: what ``sniff_format`` found.
        source: how to name the model in messages (the link or path the user passed).
        **loader_kwargs: ``mmap``.

    Raises:
        NotFoundError: sidecar files the pickle needs are not beside it.
        MissingDependencyError: gensim is not installed.
    """
    missing = info.details.get("missing_sidecars") or []
    if missing:
        stem = _source_stem(path, source)
        wanted = [f"{stem}.{m[len(path.name) + 1 :]}" for m in missing]
        shown = DisplayNames(path, source)(path)
        raise NotFoundError(
            f"the gensim model {shown} needs these files beside it, which are missing: "
            + ", ".join(wanted)
            + ". They are written next to the model by gensim's save(); load the whole folder "
            "the model was saved in, or put them beside the model file."
        )
    cls = _import_gensim_class(info.details.get("class"))
    mmap = loader_kwargs.get("mmap", "r")
    other = info.details.get("sidecar_prefix")
    try:
        if not other:
            return cls.load(str(path), mmap=mmap)
        names = {other: path}
        for n in info.details.get("needed_sidecars") or []:
            names[n] = path.parent / n
        with linked_files(names) as tmp:
            return cls.load(str(tmp / other), mmap=mmap)
    except FileNotFoundError as e:
        raise NotFoundError(
            f"the gensim model {DisplayNames(path, source)(path)} needs "
            f"{Path(e.filename).name if e.filename else 'a file'} beside it: {e}"
        ) from e


def save_gensim(
    obj: Any, dest_dir: Path, name: str, fmt: str | None, **save_kwargs: Any
) -> SavedFiles:
    """Save a gensim model.

    ``gensim`` (default): ``obj.save()`` into a folder ``NAME/`` as ``NAME/NAME.model`` plus
    every sidecar gensim writes (``save_kwargs`` such as ``sep_limit`` are passed on).
    ``word2vec-text`` / ``word2vec-binary``: the (model's) KeyedVectors as ``NAME.txt`` /
    ``NAME.bin``.

    Raises:
        UnknownFormatError: another format, or word2vec for an object without vectors.
    """
    gensim = require("gensim", purpose="save gensim models")
    fmt = fmt or "gensim"
    extra: dict[str, Any] = {"class": f"{type(obj).__module__}.{type(obj).__qualname__}"}
    if fmt == "gensim":
        folder = dest_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        obj.save(str(folder / f"{name}.model"), **save_kwargs)
        return SavedFiles(
            fmt, "gensim", gensim.__version__, files_under(dest_dir, folder), extra, Path(name)
        )
    if fmt in ("word2vec-text", "word2vec-binary"):
        kv = obj if hasattr(obj, "save_word2vec_format") else getattr(obj, "wv", None)
        if kv is None or not hasattr(kv, "save_word2vec_format"):
            raise UnknownFormatError(f"{type(obj).__name__} has no word vectors to save as {fmt}")
        binary = fmt == "word2vec-binary"
        target = dest_dir / f"{name}.{'bin' if binary else 'txt'}"
        kv.save_word2vec_format(str(target), binary=binary, **save_kwargs)
        return SavedFiles(fmt, "gensim", gensim.__version__, [target.relative_to(dest_dir)], extra)
    raise UnknownFormatError(
        f"gensim models save as gensim, word2vec-text or word2vec-binary, not {fmt!r}"
    )


# --------------------------------------------------------------------------- word2vec


def _floats(parts: list[bytes]) -> bool:
    try:
        for p in parts:
            float(p)
    except ValueError:
        return False
    return True


def sniff_word2vec(path: Path, size: int) -> FormatInfo | None:
    """Recognise word2vec text (with or without header) or binary vectors; None otherwise."""
    with open(path, "rb") as f:
        head = f.read(min(size, 1024 * 1024))
    newline = head.find(b"\n")
    if newline < 0 and size > len(head):
        return None
    first = head[: newline if newline >= 0 else len(head)]
    m = _HEADER.match(first)
    if m:
        count, dim = int(m.group(1)), int(m.group(2))
        if count <= 0 or not 0 < dim <= 100_000:
            return None
        body = head[newline + 1 :]
        if _text_records_ok(body, dim, min(count, 3), complete=size <= len(head)):
            return FormatInfo("word2vec-text", "gensim", False, {"count": count, "dim": dim})
        if _binary_records_ok(path, newline + 1, size, count, dim):
            return FormatInfo("word2vec-binary", "gensim", False, {"count": count, "dim": dim})
        return None
    # no header (GloVe style): at least two lines with the same number (>= 3) of tokens
    lines = head.split(b"\n")
    if size > len(head):
        lines = lines[:-1]  # the last one may be cut off
    lines = [ln for ln in lines if ln.strip()][:5]
    if len(lines) < 2:
        return None
    widths = {len(ln.rstrip().split(b" ")) for ln in lines}
    if len(widths) != 1:
        return None
    width = widths.pop()
    if width < 3:
        return None
    if all(_floats(ln.rstrip().split(b" ")[1:]) for ln in lines) and all(_utf8(ln) for ln in lines):
        return FormatInfo("word2vec-text", "gensim", False, {"dim": width - 1, "no_header": True})
    return None


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text_records_ok(body: bytes, dim: int, want: int, *, complete: bool) -> bool:
    lines = body.split(b"\n")
    if not complete:
        lines = lines[:-1]
    lines = [ln for ln in lines if ln.strip()][:want]
    if len(lines) < want:
        return False
    for ln in lines:
        if not _utf8(ln):
            return False
        parts = ln.rstrip().split(b" ")
        if len(parts) != dim + 1 or not _floats(parts[1:]):
            return False
    return True


def _binary_records_ok(path: Path, start: int, size: int, count: int, dim: int) -> bool:
    if size < start + count * (4 * dim + 2):
        return False
    with open(path, "rb") as f:
        f.seek(start)
        for _ in range(min(count, 3)):
            chunk = f.read(1024)
            skip = len(chunk) - len(chunk.lstrip(b"\n"))
            space = chunk.find(b" ", skip)
            if space <= skip:
                return False
            word = chunk[skip:space]
            if b"\n" in word or not _utf8_prefix(word):
                return False
            f.seek(f.tell() - len(chunk) + space + 1 + 4 * dim)
            if f.tell() > size:
                return False
    return True


def _utf8_prefix(word: bytes) -> bool:
    # word2vec binary files may cut a multi-byte character; accept a truncated tail
    try:
        word.decode("utf-8")
        return True
    except UnicodeDecodeError as e:
        return e.start >= len(word) - 3


def load_word2vec(path: Path, info: FormatInfo, **loader_kwargs: Any) -> Any:
    """Load word2vec vectors as ``gensim.models.KeyedVectors`` (no code runs).

    ``loader_kwargs`` (``limit``, ``encoding``, ``unicode_errors``, ``datatype``...) go to
    ``KeyedVectors.load_word2vec_format``.

    Raises:
        MissingDependencyError: gensim is not installed.
    """
    models = require("gensim.models", purpose="load word2vec vectors")
    kwargs = dict(loader_kwargs)
    kwargs.setdefault("binary", info.name == "word2vec-binary")
    if info.details.get("no_header"):
        kwargs.setdefault("no_header", True)
    return models.KeyedVectors.load_word2vec_format(os.fspath(path), **kwargs)
