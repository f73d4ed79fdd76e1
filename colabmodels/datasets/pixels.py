"""How many pixels an image file declares, read from its header, and the limit they must stay under.

A decompression bomb is a small file that declares a huge image (a 40,000 x 40,000 PNG of
zeros is a few hundred KB): whatever decodes it allocates width x height x channels bytes
before it notices anything. PIL refuses such files on open (``DecompressionBombError``, above
twice ``PIL.Image.MAX_IMAGE_PIXELS``); TensorFlow's decoders have no limit at all. So every
image a dataset hands to a decoder is first checked here, by its header alone (a few hundred
bytes read, no decoding, no PIL needed), against the same limit PIL applies: a user who
raises ``PIL.Image.MAX_IMAGE_PIXELS`` (or sets it to None) raises it for colabmodels too.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from ..transfer import O_BINARY, pread_at

PIL_DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
"""PIL's default ``Image.MAX_IMAGE_PIXELS`` (used when PIL is not installed)."""

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_MAX_SEGMENTS = 64


def pixel_limit() -> int | None:
    """The most pixels an image may declare: twice ``PIL.Image.MAX_IMAGE_PIXELS`` (where PIL
    itself refuses), read at call time; None when the user turned PIL's check off."""
    try:
        from PIL import Image
    except ImportError:
        return 2 * PIL_DEFAULT_MAX_IMAGE_PIXELS
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


_HEAD_BYTES = 512
"""Read at once: every header but a JPEG's (whose segments are then walked by length)."""


def declared_size(path: str) -> tuple[int, int] | None:
    """``(width, height)`` that the PNG, GIF, BMP, WebP or JPEG file at ``path`` declares, or
    None for other formats and headers that cannot be read. One ``pread`` for most files."""
    try:
        fd = os.open(path, os.O_RDONLY | O_BINARY)
    except OSError:
        return None
    try:
        head = pread_at(fd, _HEAD_BYTES, 0)
        return size_in_header(head, lambda pos, n: pread_at(fd, n, pos))
    except OSError:
        return None
    finally:
        os.close(fd)


def declared_size_of_bytes(data: bytes) -> tuple[int, int] | None:
    """``declared_size`` for an image held in memory (a zip member, a tar sample)."""
    return size_in_header(data, lambda pos, n: data[pos:pos + n])


def size_in_header(head: bytes, read: Callable[[int, int], bytes]) -> tuple[int, int] | None:
    """``(width, height)`` from an image's first bytes ``head``; ``read(pos, n)`` gives bytes
    past them (a JPEG's segments are walked by their lengths up to its frame header)."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return w, h
        if head[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", head[6:10])
            return w, h
        if head[:2] == b"BM" and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26])
            return abs(w), abs(h)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_size(head)
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(head, read)
    except struct.error:
        return None
    return None


def markers_complete(head: bytes, tail: bytes) -> bool:
    """True when an image's first bytes ``head`` and last bytes ``tail`` are those of a
    complete JPEG, PNG or GIF. A JPEG passes only when it *ends* with its end-of-image marker
    (trailing zero or blank padding aside): a truncated JPEG may well hold those two bytes
    earlier (in an EXIF thumbnail, an ICC profile or a comment)."""
    if head.startswith(b"\xff\xd8\xff"):
        return tail.rstrip(b"\x00 \t\r\n").endswith(b"\xff\xd9")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return tail.endswith(b"IEND\xaeB`\x82")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return tail.endswith(b";")
    return False


def _webp_size(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8X":
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return w, h
    if kind == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _jpeg_size(head: bytes, read_past: Callable[[int, int], bytes]) -> tuple[int, int] | None:
    """Walk a JPEG's segments (their lengths only) up to its frame header."""
    def read(pos: int, n: int) -> bytes:
        return head[pos:pos + n] if pos + n <= len(head) else read_past(pos, n)

    pos = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        marker = read(pos, 2)
        while len(marker) == 2 and marker == b"\xff\xff":  # fill bytes
            pos += 1
            marker = read(pos, 2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        length_bytes = read(pos + 2, 2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if marker[1] in _JPEG_SOF:
            frame = read(pos + 4, 5)
            if len(frame) < 5:
                return None
            h, w = struct.unpack(">HH", frame[1:5])
            return w, h
        if length < 2:
            return None
        pos += 2 + length
    return None


def bomb_problem(path: str) -> str | None:
    """Why the image at ``path`` must not be decoded (it declares too many pixels), or None."""
    return size_problem(declared_size(path))


def size_problem(size: tuple[int, int] | None) -> str | None:
    """``bomb_problem`` for an image whose header declared ``size`` (None: not known)."""
    limit = pixel_limit()
    if size is None or limit is None or size[0] * size[1] <= limit:
        return None
    return bomb_message(size[0] * size[1], limit, f"{size[0]}x{size[1]}")


def bomb_message(pixels: int, limit: int, dims: str = "") -> str:
    what = f"{dims} = {pixels:,} pixels" if dims else f"{pixels:,} pixels"
    return (f"a possible decompression bomb: it declares {what}, more than the {limit:,} "
            "allowed (twice PIL.Image.MAX_IMAGE_PIXELS; raise that if you trust the file)")
