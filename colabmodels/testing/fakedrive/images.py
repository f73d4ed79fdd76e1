"""Image facts for ``imageMediaMetadata`` and thumbnails, without heavy imports.

``probe_image`` reads only the header of a PNG, GIF, JPEG, BMP or WebP
file (JPEG: the SOF marker, and the EXIF orientation for ``rotation``).
``make_thumbnail`` scales an image to fit a square box: with Pillow when it
is installed (a real scaled JPEG or PNG; None for an image Pillow cannot
decode), else a flat grey PNG of the scaled size written with ``zlib``
(still a valid image of the right shape).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

__all__ = ["make_thumbnail", "probe_image"]

# EXIF orientation -> Drive's rotation (clockwise quarter turns).
_ORIENTATION_ROTATION = {1: 0, 2: 0, 3: 2, 4: 2, 5: 1, 6: 1, 7: 3, 8: 3}


def probe_image(path: str | Path) -> dict[str, int] | None:
    """``{"width", "height", "rotation"}`` of an image file, or None if not recognised."""
    try:
        with open(path, "rb") as f:
            return _probe(f)
    except (OSError, struct.error, ValueError):
        return None


def _probe(f: BinaryIO) -> dict[str, int] | None:
    head = f.read(32)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return {"width": w, "height": h, "rotation": 0}
    if head[:6] in (b"GIF87a", b"GIF89a"):
        w, h = struct.unpack("<HH", head[6:10])
        return {"width": w, "height": h, "rotation": 0}
    if head[:2] == b"BM" and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])
        return {"width": abs(w), "height": abs(h), "rotation": 0}
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _probe_webp(head)
    if head[:2] == b"\xff\xd8":
        f.seek(2)
        return _probe_jpeg(f)
    return None


def _probe_webp(head: bytes) -> dict[str, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return {"width": w & 0x3FFF, "height": h & 0x3FFF, "rotation": 0}
    if chunk == b"VP8L":
        b = head[21:25]
        bits = int.from_bytes(b, "little")
        return {"width": (bits & 0x3FFF) + 1, "height": ((bits >> 14) & 0x3FFF) + 1, "rotation": 0}
    if chunk == b"VP8X":
        w = int.from_bytes(head[24:27], "little") + 1
        h = int.from_bytes(head[27:30], "little") + 1
        return {"width": w, "height": h, "rotation": 0}
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _probe_jpeg(f: BinaryIO) -> dict[str, int] | None:
    rotation = 0
    for _ in range(10_000):
        byte = f.read(1)
        while byte and byte != b"\xff":
            byte = f.read(1)
        while byte == b"\xff":
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker == 0xD9:
            return None
        raw = f.read(2)
        if len(raw) < 2:
            return None
        (length,) = struct.unpack(">H", raw)
        if marker == 0xE1:
            segment = f.read(length - 2)
            rotation = _exif_rotation(segment)
            continue
        if marker in _SOF:
            data = f.read(5)
            h, w = struct.unpack(">HH", data[1:5])
            return {"width": w, "height": h, "rotation": rotation}
        f.seek(length - 2, io.SEEK_CUR)
    return None


def _exif_rotation(segment: bytes) -> int:
    if not segment.startswith(b"Exif\x00\x00"):
        return 0
    tiff = segment[6:]
    if tiff[:2] == b"II":
        endian = "<"
    elif tiff[:2] == b"MM":
        endian = ">"
    else:
        return 0
    try:
        (ifd,) = struct.unpack(endian + "I", tiff[4:8])
        (count,) = struct.unpack(endian + "H", tiff[ifd : ifd + 2])
        for i in range(count):
            entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
            tag, _type, _n = struct.unpack(endian + "HHI", entry[:8])
            if tag == 0x0112:
                (value,) = struct.unpack(endian + "H", entry[8:10])
                return _ORIENTATION_ROTATION.get(value, 0)
    except struct.error:
        return 0
    return 0


def _fit(width: int, height: int, box: int) -> tuple[int, int]:
    if width <= box and height <= box:
        return max(1, width), max(1, height)
    scale = box / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _grey_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = (b"\x00" + b"\x9e" * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_thumbnail(path: str | Path, box: int = 220) -> tuple[bytes, str] | None:
    """``(bytes, mime type)`` of a thumbnail that fits ``box`` x ``box``, or None if not an image."""
    try:
        from PIL import Image, ImageOps  # optional
    except ImportError:
        Image = None  # type: ignore[assignment]
    if Image is not None:
        try:
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                im.thumbnail((box, box))
                out = io.BytesIO()
                if im.mode in ("RGBA", "LA", "P"):
                    im.save(out, "PNG")
                    return out.getvalue(), "image/png"
                im.convert("RGB").save(out, "JPEG", quality=80)
                return out.getvalue(), "image/jpeg"
        except Exception:
            return None
    info = probe_image(path)
    if info is None:
        return None
    w, h = info["width"], info["height"]
    if info["rotation"] % 2:
        w, h = h, w
    return _grey_png(*_fit(w, h, box)), "image/png"
