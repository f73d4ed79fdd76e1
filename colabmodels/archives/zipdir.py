"""A zip's central directory, read by byte ranges: at most three requests.

A zip keeps its table of contents at its end: the *end of central directory* record (EOCD, 22
bytes plus a comment of up to 64 KiB), for zip64 archives a *locator* (20 bytes, just before the
EOCD) pointing at the *zip64 EOCD* record, and before those the *central directory*: one record
per member with its name, sizes, CRC-32, compression method, flags and the offset of its local
header. ``read_directory`` reads

1. the last ``TAIL_BYTES`` of the archive (EOCD, locator and usually the zip64 record; for
   small archives the whole central directory as well);
2. the zip64 EOCD record, only when it is not in that tail;
3. the part of the central directory not already in the tail.

Nothing else is read: a member's data is found from its local header offset, and read later by
range (``colabmodels.archives.members``).
"""

from __future__ import annotations

import stat as statmod
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import IntegrityError, UnknownFormatError

__all__ = ["TAIL_BYTES", "ZipDirectory", "ZipMember", "parse_directory", "read_directory"]

TAIL_BYTES = 256 * 1024
"""The first request: EOCD + its longest comment + zip64 records, and small directories whole."""

_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD_SIG = b"PK\x05\x06"
_LOC64 = struct.Struct("<4sIQI")
_LOC64_SIG = b"PK\x06\x07"
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_EOCD64_SIG = b"PK\x06\x06"
_CDH = struct.Struct("<4sHHHHHHIIIHHHHHII")
_CDH_SIG = b"PK\x01\x02"
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
LOCAL_SIG = b"PK\x03\x04"

STORED, DEFLATED = 0, 8
METHOD_NAMES = {0: "stored", 8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd",
                95: "xz", 98: "ppmd", 99: "AES-encrypted"}


@dataclass(frozen=True)
class ZipMember:
    """One central-directory record.

    Attributes:
        name: the name as the archive has it (``/`` separated; UTF-8 or CP437 decoded).
        header_offset: where its local header starts in the archive (absolute).
        span_end: where the next member (or the central directory) starts: the bytes
            ``[header_offset, span_end)`` hold its local header, data and data descriptor.
        compressed_size, size: bytes stored and bytes once decompressed (declared).
        crc: the CRC-32 of the decompressed bytes.
        method: the compression method (0 stored, 8 deflate).
        flags: the general-purpose flags (bit 0: encrypted).
        mode: the Unix mode from the external attributes, when the archive was made on Unix.
    """

    name: str
    header_offset: int
    span_end: int
    compressed_size: int
    size: int
    crc: int
    method: int
    flags: int
    mode: int | None = None

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") or (self.mode is not None and statmod.S_ISDIR(self.mode))

    @property
    def is_symlink(self) -> bool:
        return self.mode is not None and statmod.S_ISLNK(self.mode)

    @property
    def is_special(self) -> bool:
        """A device, FIFO or socket entry (never written out)."""
        return self.mode is not None and statmod.S_IFMT(self.mode) not in (
            0, statmod.S_IFREG, statmod.S_IFDIR, statmod.S_IFLNK)

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & 0x1) or self.method == 99

    @property
    def supported(self) -> bool:
        return self.method in (STORED, DEFLATED)

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get(self.method, f"method {self.method}")


@dataclass(frozen=True)
class ZipDirectory:
    """A parsed central directory: the members in directory order and what it cost to read.

    Attributes:
        members: every record, in central-directory order.
        archive_size: the archive's size in bytes.
        cd_offset, cd_size: where the central directory sits (absolute) and its length.
        requests: ranged requests made to read it (0 when parsed from cached bytes).
        bytes_read: bytes those requests returned.
    """

    members: list[ZipMember]
    archive_size: int
    cd_offset: int
    cd_size: int
    requests: int = 0
    bytes_read: int = 0
    shift: int = 0


def _decode_name(raw: bytes, flags: int) -> str:
    if flags & 0x800:
        return raw.decode("utf-8", "replace")
    return raw.decode("cp437")


def read_directory(read: Callable[[int, int], bytes], size: int, *, where: str) -> tuple[ZipDirectory, bytes]:
    """Read and parse the central directory of an archive of ``size`` bytes.

    Args:
        read: ``read(start, end)`` returns the bytes ``[start, end)`` (one ranged request).
        size: the archive's size.
        where: how to name the archive in errors.

    Returns:
        ``(directory, raw)``: the parsed directory and the raw bytes from the central
        directory's start to the archive's end (what ``parse_directory`` needs again).

    Raises:
        UnknownFormatError: not a zip archive (no end-of-central-directory record).
        IntegrityError: a truncated or corrupt directory.
    """
    if size < _EOCD.size:
        raise UnknownFormatError(f"{where} is not a zip archive ({size} bytes: too short)")
    requests, got = 0, 0
    tail_start = max(0, size - TAIL_BYTES)
    tail = read(tail_start, size)
    requests, got = 1, len(tail)
    if len(tail) != size - tail_start:
        raise IntegrityError(f"{where}: asked for {size - tail_start} bytes of its end, got "
                             f"{len(tail)}: the archive is truncated or changed while read")
    eocd_pos, cd_offset, cd_size, entries, zip64_at = _find_eocd(tail, tail_start, where)
    if zip64_at is not None:
        if zip64_at >= tail_start:
            rec = tail[zip64_at - tail_start:zip64_at - tail_start + _EOCD64.size]
        else:
            rec = read(zip64_at, zip64_at + _EOCD64.size)
            requests, got = requests + 1, got + len(rec)
        if len(rec) < _EOCD64.size or rec[:4] != _EOCD64_SIG:
            raise IntegrityError(f"{where}: the zip64 end-of-directory record is missing or damaged")
        (_, _, _, _, _, _, _, entries, cd_size, cd_offset) = _EOCD64.unpack(rec)
        cd_end = zip64_at
    else:
        cd_end = eocd_pos
    # Data prepended to the archive (self-extractors) shifts every offset by the same amount.
    shift = cd_end - cd_size - cd_offset
    cd_start = cd_offset + shift
    if cd_start < 0 or cd_size < 0 or shift < 0:
        raise IntegrityError(f"{where}: the central directory's offsets are outside the archive; "
                             "the archive is truncated or corrupt")
    if cd_start >= tail_start:
        raw = tail[cd_start - tail_start:]
    else:
        head = read(cd_start, tail_start)
        requests, got = requests + 1, got + len(head)
        if len(head) != tail_start - cd_start:
            raise IntegrityError(f"{where}: the central directory is truncated")
        raw = head + tail
    directory = parse_directory(raw, size=size, cd_start=cd_start, cd_size=cd_size,
                                entries=entries, shift=shift, where=where)
    return (ZipDirectory(directory.members, size, cd_start, cd_size, requests, got, shift), raw)


def _find_eocd(tail: bytes, tail_start: int, where: str) -> tuple[int, int, int, int, int | None]:
    """``(eocd position, cd offset, cd size, entries, zip64 record position or None)``."""
    pos = len(tail) - _EOCD.size
    found = False
    while pos >= 0:
        pos = tail.rfind(_EOCD_SIG, 0, pos + 4)
        if pos < 0:
            break
        (_, disk, cd_disk, _, entries, cd_size, cd_offset, comment_len) = _EOCD.unpack_from(tail, pos)
        if pos + _EOCD.size + comment_len <= len(tail):
            found = True
            break
        pos -= 1
    if not found:
        raise UnknownFormatError(
            f"{where} is not a zip archive (no end-of-central-directory record in its last "
            f"{len(tail)} bytes). If it is a tar or tar.gz, use cm.fetch(..., extract=True).")
    if disk not in (0, 0xFFFF) or cd_disk not in (0, 0xFFFF):
        raise UnknownFormatError(f"{where} is one part of a multi-part (spanned) zip, which cannot "
                                 "be read; join the parts into one archive first")
    zip64_at: int | None = None
    loc = pos - _LOC64.size
    if loc >= 0 and tail[loc:loc + 4] == _LOC64_SIG:
        _, _, zip64_at, _ = _LOC64.unpack_from(tail, loc)
        right_before = loc - _EOCD64.size  # where it is unless data was prepended or extended
        if right_before >= 0 and tail[right_before:right_before + 4] == _EOCD64_SIG:
            zip64_at = tail_start + right_before
    elif 0xFFFFFFFF in (cd_size, cd_offset) or entries == 0xFFFF:
        raise IntegrityError(f"{where}: a zip64 archive without its zip64 locator: it is corrupt")
    return tail_start + pos, cd_offset, cd_size, entries, zip64_at


def parse_directory(raw: bytes, *, size: int, cd_start: int, cd_size: int, entries: int,
                    shift: int, where: str) -> ZipDirectory:
    """The members described by ``raw`` (the central directory's bytes, and what follows)."""
    members: list[tuple[str, int, int, int, int, int, int, int | None]] = []
    pos = 0
    end = min(cd_size, len(raw))
    while pos < end:
        if raw[pos:pos + 4] != _CDH_SIG:
            break
        if pos + _CDH.size > len(raw):
            raise IntegrityError(f"{where}: the central directory is truncated")
        (_, made_by, _, flags, method, _, _, crc, csize, usize, n_name, n_extra, n_comment,
         _, _, ext_attr, offset) = _CDH.unpack_from(raw, pos)
        start = pos + _CDH.size
        name_raw = raw[start:start + n_name]
        extra = raw[start + n_name:start + n_name + n_extra]
        if start + n_name + n_extra + n_comment > len(raw):
            raise IntegrityError(f"{where}: the central directory is truncated")
        usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
        mode = (ext_attr >> 16) & 0xFFFF if made_by >> 8 == 3 and ext_attr >> 16 else None
        members.append((_decode_name(name_raw, flags), offset + shift, csize, usize, crc, method,
                        flags, mode))
        pos = start + n_name + n_extra + n_comment
    if entries != len(members) and entries != 0xFFFF and entries != len(members) & 0xFFFF:
        raise IntegrityError(f"{where}: its directory announces {entries} members but holds "
                             f"{len(members)}: the archive is truncated or corrupt")
    ends = sorted({m[1] for m in members} | {cd_start})
    out = []
    import bisect

    for name, offset, csize, usize, crc, method, flags, mode in members:
        if offset < 0 or offset + LOCAL_HEADER.size > cd_start:
            raise IntegrityError(f"{where}: member {name!r} points outside the archive's data; "
                                 "the archive is truncated or corrupt")
        nxt = ends[bisect.bisect_right(ends, offset)]
        if offset + LOCAL_HEADER.size + csize > nxt:
            from ..errors import UnsafeArchiveError

            raise UnsafeArchiveError(
                f"{where}: member {name!r} claims {csize} bytes of data, more than lie before "
                "the next member: members overlap (a zip-bomb trick) or the archive is corrupt; "
                "refusing it")
        out.append(ZipMember(name=name, header_offset=offset, span_end=nxt, compressed_size=csize,
                             size=usize, crc=crc, method=method, flags=flags, mode=mode))
    return ZipDirectory(out, size, cd_start, cd_size, shift=shift)


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset from the zip64 extra field (0x0001) where the 32-bit ones are maxed."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4:pos + 4 + length]
        if tag == 0x0001:
            vals = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            if usize == 0xFFFFFFFF and vals:
                usize = vals.pop(0)
            if csize == 0xFFFFFFFF and vals:
                csize = vals.pop(0)
            if offset == 0xFFFFFFFF and vals:
                offset = vals.pop(0)
            break
        pos += 4 + length
    return usize, csize, offset
