"""Read protobuf wire format without the protobuf package: one varint reader, one field walker.

ONNX ``ModelProto`` files and TensorFlow ``saved_model.pb`` are protobuf messages. Sniffing only
needs their top-level fields (field number, wire type, where the payload sits), so this walks
the wire format over any buffer (``bytes``, or an ``mmap`` of a large file) without copying
payloads. Malformed input raises ``ValueError``, never anything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["FIXED32", "FIXED64", "LEN", "VARINT", "Field", "iter_fields", "read_varint"]

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10  # 64 bits, 7 per byte


class _Buffer(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> int: ...


def read_varint(buf: _Buffer, pos: int, end: int | None = None) -> tuple[int, int]:
    """Decode the base-128 varint at ``buf[pos]``.

    Args:
        buf: bytes, bytearray, memoryview or mmap.
        pos: where the varint starts.
        end: where the readable region ends (default: the end of ``buf``).

    Returns:
        ``(value, position after the varint)``.

    Raises:
        ValueError: the varint runs past ``end`` or is longer than 10 bytes.
    """
    limit = len(buf) if end is None else end
    result = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos >= limit:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return result, pos
    raise ValueError("varint longer than 10 bytes")


@dataclass(frozen=True)
class Field:
    """One field of a message.

    Attributes:
        number: the field number.
        wire: the wire type (``VARINT``, ``FIXED64``, ``LEN``, ``FIXED32``).
        value: the integer for varints, else the payload length.
        start: where the payload starts in the buffer (varints: where the value starts).
        end: where the field ends.
    """

    number: int
    wire: int
    value: int
    start: int
    end: int


def iter_fields(buf: _Buffer, start: int = 0, end: int | None = None) -> Iterator[Field]:
    """The fields of the message in ``buf[start:end]``, in order, without copying payloads.

    Raises:
        ValueError: a truncated field, a payload past ``end``, or an unsupported wire type
            (groups, 3/4, are long deprecated and appear in neither ONNX nor TensorFlow).
    """
    limit = len(buf) if end is None else end
    pos = start
    while pos < limit:
        key, pos = read_varint(buf, pos, limit)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        begin = pos
        if wire == VARINT:
            value, pos = read_varint(buf, pos, limit)
        elif wire == LEN:
            value, begin = read_varint(buf, pos, limit)
            pos = begin + value
        elif wire == FIXED64:
            value, pos = 8, pos + 8
        elif wire == FIXED32:
            value, pos = 4, pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > limit:
            raise ValueError(f"field {number} runs past the end of the message")
        yield Field(number, wire, value, begin, pos)
