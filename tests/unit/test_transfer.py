"""The transfer engine on local files: part sizes, verification, resume records."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from colabmodels import transfer
from colabmodels.errors import AuthError, IntegrityError, TransferError
from colabmodels.refs import Ref
from colabmodels.storage.base import RemoteStat
from colabmodels.storage.local import LocalBackend

MiB = 1024 * 1024


@pytest.mark.parametrize("size, connections, expected", [
    (256 * MiB, 8, 8 * MiB),    # large: the configured chunk
    (16 * MiB, 8, 2 * MiB),     # smaller: every connection gets a part
    (100, 8, 1 * MiB),          # tiny: one part of the minimum size
])
def test_part_size_keeps_connections_busy(size, connections, expected, monkeypatch):
    monkeypatch.delenv("COLABMODELS_CHUNK_BYTES", raising=False)
    assert transfer.part_size(size, connections) == expected


def _source(tmp_path, data, checksum=None):
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    ref = Ref("local", path=str(src))
    return LocalBackend(), RemoteStat(ref=ref, name="src.bin", size=len(data), identity="id-1",
                                      checksum=checksum)


def test_md5_is_computed_while_downloading_and_checked(tmp_path):
    data = bytes(range(256)) * 40_000
    backend, stat = _source(tmp_path, data, "md5:" + hashlib.md5(data).hexdigest())
    dest = tmp_path / "out.incomplete"
    transfer.download_to(backend, stat, dest, part_bytes=MiB, connections=4)
    assert dest.read_bytes() == data
    assert not transfer.state_path(dest).exists()


def test_wrong_md5_discards_the_file(tmp_path):
    data = b"x" * (3 * MiB)
    backend, stat = _source(tmp_path, data, "md5:" + "0" * 32)
    dest = tmp_path / "out.incomplete"
    with pytest.raises(IntegrityError, match="md5"):
        transfer.download_to(backend, stat, dest, part_bytes=MiB, connections=3)
    assert not dest.exists() and not transfer.state_path(dest).exists()


def test_resume_record_from_another_part_size_is_kept(tmp_path):
    data = bytes(range(256)) * 16_384  # 4 MiB
    backend, stat = _source(tmp_path, data, "md5:" + hashlib.md5(data).hexdigest())
    dest = tmp_path / "out.incomplete"
    dest.write_bytes(data[: 2 * MiB] + b"\0" * (2 * MiB))  # first two 1 MiB parts done earlier
    transfer.state_path(dest).write_text(json.dumps(
        {"identity": "id-1", "size": len(data), "part_bytes": MiB, "done": [0, 1], "offsets": {}}))
    served = []
    original = backend.open_range

    def spy(ref, start, end):
        served.append((start, end))
        return original(ref, start, end)

    backend.open_range = spy  # type: ignore[method-assign]
    transfer.download_to(backend, stat, dest, part_bytes=4 * MiB, connections=2)
    assert dest.read_bytes() == data
    assert all(start >= 2 * MiB for start, _ in served)


class _SlowLocal(LocalBackend):
    """Local bytes in 64 KiB blocks, a little at a time, counting what it served."""

    def __init__(self):
        super().__init__()
        self.served = 0
        self.lock = threading.Lock()

    def open_range(self, ref, start, end):
        for block in super().open_range(ref, start, end):
            for i in range(0, len(block), 64 * 1024):
                time.sleep(0.002)
                piece = block[i:i + 64 * 1024]
                with self.lock:
                    self.served += len(piece)
                yield piece


def test_cancel_stops_every_part_keeps_the_record_and_resumes(tmp_path):
    data = bytes(range(256)) * 32_768  # 8 MiB
    _, stat = _source(tmp_path, data, "md5:" + hashlib.md5(data).hexdigest())
    backend = _SlowLocal()
    dest = tmp_path / "out.incomplete"
    cancel = threading.Event()
    arrived = [0]

    def progress(n):
        arrived[0] += n
        if arrived[0] >= MiB:
            cancel.set()

    with pytest.raises(TransferError, match="cancelled"):
        transfer.download_to(backend, stat, dest, part_bytes=MiB, connections=4,
                             progress=progress, cancel=cancel)
    served_before = backend.served
    assert served_before < len(data) // 2, "the workers stopped with the flag"
    assert transfer.state_path(dest).exists(), "what arrived is recorded for a resume"
    backend.served = 0
    transfer.download_to(backend, stat, dest, part_bytes=MiB, connections=4)
    assert dest.read_bytes() == data
    assert backend.served < len(data), "the second call fetched only what was missing"


def test_a_failing_part_stops_the_others(tmp_path):
    data = b"q" * (8 * MiB)
    _, stat = _source(tmp_path, data)

    class Failing(_SlowLocal):
        def open_range(self, ref, start, end):
            if start == MiB:  # part 1 fails while 0, 2 and 3 are under way
                raise AuthError("no access")
            return super().open_range(ref, start, end)

    backend = Failing()
    with pytest.raises(AuthError):
        transfer.download_to(backend, stat, tmp_path / "x.incomplete", part_bytes=MiB,
                             connections=4)
    assert backend.served < 3 * MiB, "the other parts stopped; no part after them started"
