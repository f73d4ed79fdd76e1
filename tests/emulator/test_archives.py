"""Archives in Drive (the emulator): a zip listed and read by ranges, extracted by cm.fetch,
hostile and broken archives refused with our errors. Archives are built here with zipfile/tarfile.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import tarfile
import time
import zipfile

import pytest


def _zip(files: dict[str, bytes], *, deflate_every: int = 2, top: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (name, data) in enumerate(files.items()):
            method = zipfile.ZIP_DEFLATED if deflate_every and i % deflate_every else zipfile.ZIP_STORED
            zf.writestr(top + name, data, compress_type=method)
    return buf.getvalue()


def _media(requests) -> list:
    return [r for r in requests if (r.query or {}).get("alt") == "media"]


def _range(r) -> tuple[int, int]:
    spec = r.range or ""
    assert spec.startswith("bytes=") and "," not in spec, spec  # one range per request
    a, b = spec[len("bytes="):].split("-")
    return int(a), int(b)


@pytest.fixture(scope="module")
def zdrive(tmp_path_factory):
    """One emulator for the module; each test puts its own archives."""
    from colabmodels.testing import FakeDrive

    with FakeDrive() as fd:
        fd.write_service_account(tmp_path_factory.mktemp("zip-key") / "key.json")  # fd.key_path
        yield fd


@pytest.fixture
def zenv(isolated, zdrive, monkeypatch):
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", zdrive.url)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(zdrive.key_path))
    zdrive.latency_ms = 0
    zdrive.reset_requests()
    return zdrive


def _told_while_waiting(ask, stop) -> list[BaseException]:
    """``ask()`` on a thread of its own (its block waits behind the one being read), then
    ``stop()``: what the asker was told. The asker must end within 10 s."""
    import threading

    errors: list[BaseException] = []

    def asker() -> None:
        try:
            ask()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=asker)
    thread.start()
    time.sleep(0.15)
    stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    return errors


def _open(ref: str):
    import colabmodels as cm
    from colabmodels.archives import ZipArchive
    from colabmodels.storage import backend_for

    parsed = cm.parse_ref(ref)
    backend = backend_for(parsed)
    return ZipArchive.open(backend, backend.stat(parsed))


def test_listing_costs_at_most_three_ranged_requests_then_none(zenv):
    fd = zenv
    # 6,000 members with long names: a central directory far larger than the first tail read
    files = {f"class_{i % 5}/{'long-name-' * 4}{i:05d}.jpg": bytes([i % 251]) * (200 + i % 7)
             for i in range(6000)}
    data = _zip(files, deflate_every=0)
    fd.put("MyDrive/arch/big.zip", data)
    fd.reset_requests()
    archive = _open("MyDrive/arch/big.zip")
    media = _media(fd.requests)
    assert archive.directory.cd_size > 256 * 1024
    assert 1 <= len(media) <= 3
    for r in media:
        _range(r)
    sent = sum(r.bytes for r in media)
    assert sent <= archive.directory.cd_size + 256 * 1024 + 1024
    assert sent < len(data) / 2
    assert [m.name for m in archive.members] == list(files)
    # a new "kernel": the directory comes from the cache, no media request at all
    fd.reset_requests()
    again = _open("MyDrive/arch/big.zip")
    assert not _media(fd.requests)
    assert again.members == archive.members


def test_few_members_read_little_full_epoch_coalesced_second_epoch_local(zenv):
    from colabmodels.archives import MemberFetcher

    fd = zenv
    files = {f"c{i % 3}/{i:04d}.bin": os.urandom(2000 + i) for i in range(600)}
    data = _zip(files)
    fd.put("MyDrive/arch/epoch.zip", data)
    archive = _open("MyDrive/arch/epoch.zip")
    members = {m.name: m for m in archive.members}
    # a few members: little more than those members is sent
    few = [members["c0/0000.bin"], members["c1/0301.bin"], members["c2/0599.bin"]]
    fd.reset_requests()
    fetcher = MemberFetcher(archive, few)
    for m in few:
        assert fetcher.path(m).read_bytes() == files[m.name]
    fetcher.close()
    media = _media(fd.requests)
    assert len(media) == 3
    assert sum(r.bytes for r in media) <= sum(m.span_end - m.header_offset for m in few)
    # a full epoch: neighbours coalesced into a few large single-range requests
    fd.reset_requests()
    fetcher = MemberFetcher(archive, archive.members)
    fetcher.want(archive.members)
    for m in archive.members:
        assert fetcher.path(m).read_bytes() == files[m.name]
    fetcher.close()
    media = _media(fd.requests)
    assert 1 <= len(media) <= -(-len(data) // (4 * 1024 * 1024)) + 2
    covered = sorted(_range(r) for r in media)
    assert all(b - a + 1 > 100_000 for a, b in covered[:-1])
    # second epoch (and a new fetcher, as in a new kernel): local disk, no request
    fd.reset_requests()
    fetcher = MemberFetcher(archive, archive.members)
    for m in archive.members:
        assert fetcher.path(m).read_bytes() == files[m.name]
    assert not _media(fd.requests)


def test_fetch_extract_zip_cached_second_call_sends_no_media(zenv):
    import colabmodels as cm
    from colabmodels.cachestore import cache

    fd = zenv
    files = {"ds/cats/a.jpg": b"cat" * 100, "ds/.ipynb_checkpoints/x.jpg": b"hidden",
             "ds/dogs/": b"", "__MACOSX/ds/._a.jpg": b"resource fork", ".env": b"dot at top"}
    fd.put("MyDrive/arch/x.zip", _zip(files))
    fd.reset_requests()
    root = cm.fetch("MyDrive/arch/x.zip", extract=True, progress=False)
    assert (root / "ds/cats/a.jpg").read_bytes() == b"cat" * 100
    assert (root / "ds/.ipynb_checkpoints/x.jpg").read_bytes() == b"hidden"  # leading dot kept
    assert (root / ".env").read_bytes() == b"dot at top"
    assert (root / "ds/dogs").is_dir()
    assert not (root / "__MACOSX").exists()
    # cache metadata lives beside the extraction root, never inside it
    assert sorted(p.name for p in root.rglob("*") if p.name == "meta.json") == []
    assert (root.parent.parent / "meta.json").is_file()
    assert _media(fd.requests)
    fd.reset_requests()
    again = cm.fetch("MyDrive/arch/x.zip", extract=True, progress=False)
    assert again == root
    assert not _media(fd.requests)
    entry = next(e for e in cache.entries() if e.path == root)
    assert entry.extra["macosx_left_out"] == 1
    fd.reset_requests()  # offline: the remembered entry, no request at all
    assert cm.fetch("MyDrive/arch/x.zip", extract=True, offline=True, progress=False) == root
    assert not fd.requests


def _hostile_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok/good.txt", b"good")
        for name in ("../evil.txt", "/abs.txt", "C:/win.txt", "ok/../../up.txt", "..\\back.txt"):
            info = zipfile.ZipInfo("placeholder")
            info.filename = name  # ZipInfo's constructor would clean it; a hostile tool does not
            zf.writestr(info, b"evil")
        link = zipfile.ZipInfo("ok/link")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        dev = zipfile.ZipInfo("ok/dev")
        dev.create_system = 3
        dev.external_attr = (stat.S_IFCHR | 0o600) << 16
        zf.writestr(dev, b"")
    return buf.getvalue()


def test_hostile_zip_names_never_escape(zenv, caplog, tmp_path):
    import colabmodels as cm

    fd = zenv
    fd.put("MyDrive/arch/hostile.zip", _hostile_zip())
    with caplog.at_level(logging.WARNING, logger="colabmodels"):
        root = cm.fetch("MyDrive/arch/hostile.zip", extract=True, progress=False)
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert written == ["ok", "ok/good.txt"]
    base = root.parent
    assert sorted(p.name for p in base.iterdir()) == [root.name]  # nothing beside the root
    for name in ("../evil.txt", "/abs.txt", "C:/win.txt", "ok/../../up.txt", "..\\\\back.txt",
                 "ok/link", "ok/dev"):
        assert name in caplog.text, name
    assert not any(p.name in ("evil.txt", "up.txt", "back.txt", "abs.txt")
                   for p in base.parent.parent.rglob("*"))


def _patch_cd(data: bytes, name: bytes, *, flags: int | None = None, size: int | None = None,
              csize: int | None = None) -> bytes:
    """Change one member's central-directory record (what a hostile or broken tool writes)."""
    out = bytearray(data)
    pos = 0
    while True:
        pos = out.find(b"PK\x01\x02", pos)
        assert pos >= 0, name
        n = struct.unpack_from("<H", out, pos + 28)[0]
        if bytes(out[pos + 46:pos + 46 + n]) == name:
            break
        pos += 4
    if flags is not None:
        struct.pack_into("<H", out, pos + 8, flags)
    if csize is not None:
        struct.pack_into("<I", out, pos + 20, csize)
    if size is not None:
        struct.pack_into("<I", out, pos + 24, size)
    return bytes(out)


def test_encrypted_member_refused_when_the_dataset_is_made(zenv):
    import colabmodels as cm
    from colabmodels.errors import UnknownFormatError

    torch = pytest.importorskip("torch")  # noqa: F841 - DriveImageFolder is torch's
    fd = zenv
    data = _zip({"d/a/1.jpg": b"\xff\xd8\xff" + b"1" * 50, "d/b/2.jpg": b"\xff\xd8\xff" + b"2" * 50})
    fd.put("MyDrive/arch/secret.zip", _patch_cd(data, b"d/b/2.jpg", flags=0x1))
    fd.reset_requests()
    with pytest.raises(UnknownFormatError) as err:
        cm.DriveImageFolder("MyDrive/arch/secret.zip")
    assert "MyDrive/arch/secret.zip" in str(err.value) and "d/b/2.jpg" in str(err.value)
    assert "encrypted" in str(err.value)
    assert len(_media(fd.requests)) <= 3  # the directory only: no member was read


def test_folder_from_zip_constructor_reads_only_the_directory(zenv):
    import colabmodels as cm

    pytest.importorskip("torch")
    fd = zenv
    from PIL import Image

    files = {}
    for i in range(12):
        b = io.BytesIO()
        Image.new("RGB", (8 + i, 8), (i * 20, 0, 0)).save(b, "PNG")
        files[f"flowers/{['a', 'b', 'c'][i % 3]}/{i}.png"] = b.getvalue()
    data = _zip(files)
    fd.put("MyDrive/arch/flowers.zip", data)
    fd.reset_requests()
    folder = cm.DriveImageFolder("MyDrive/arch/flowers.zip")
    media = _media(fd.requests)
    assert len(media) <= 3 and sum(r.bytes for r in media) <= len(data)
    assert folder.classes == ["a", "b", "c"]  # the single top folder was descended into
    assert folder.samples[0][0] == "MyDrive/arch/flowers.zip/flowers/a/0.png"
    img, target = folder[4]
    assert folder.samples[4][0].endswith("/b/1.png")  # Keras' order: "1" < "10" < "4"
    assert img.size == (9, 8) and target == 1


def test_corrupt_member_names_archive_and_member_and_leaves_no_entry(zenv):
    from colabmodels.archives import MemberFetcher
    from colabmodels.cachestore import cache
    from colabmodels.errors import IntegrityError

    fd = zenv
    payload = os.urandom(5000)
    data = bytearray(_zip({"a.bin": payload, "b.bin": b"fine" * 10}, deflate_every=0))
    at = data.find(payload[:64])
    data[at + 100] ^= 0xFF  # one flipped byte inside a stored member: only the CRC can tell
    fd.put("MyDrive/arch/corrupt.zip", bytes(data))
    archive = _open("MyDrive/arch/corrupt.zip")
    before = {e.key for e in cache.entries()}
    fetcher = MemberFetcher(archive, archive.members)
    with pytest.raises(IntegrityError) as err:
        fetcher.path(archive.members[0])
    assert "MyDrive/arch/corrupt.zip" in str(err.value) and "'a.bin'" in str(err.value)
    assert "CRC-32" in str(err.value)
    assert fetcher.path(archive.members[1]).read_bytes() == b"fine" * 10
    new = [f["path"] for e in cache.entries() if e.key not in before for f in e.files]
    assert new == [f"{archive.members[1].header_offset}-b.bin"]  # nothing of the corrupt member
    import colabmodels as cm

    with pytest.raises(IntegrityError):
        cm.fetch("MyDrive/arch/corrupt.zip", extract=True, progress=False)
    assert not [e for e in cache.entries() if e.identity.startswith("extracted:")]


def test_truncated_archive_and_lying_sizes(zenv):
    import colabmodels as cm
    from colabmodels.errors import IntegrityError, UnknownFormatError, UnsafeArchiveError

    fd = zenv
    data = _zip({"x/a.txt": b"a" * 3000, "x/b.txt": b"b" * 3000})
    fd.put("MyDrive/arch/cut.zip", data[: len(data) // 2])
    with pytest.raises(UnknownFormatError, match=r"cut\.zip"):
        cm.fetch("MyDrive/arch/cut.zip", extract=True, progress=False)
    # a member that inflates past its declared size stops at that size and raises
    fd.put("MyDrive/arch/liar.zip", _patch_cd(data, b"x/b.txt", size=100))
    with pytest.raises(UnsafeArchiveError, match=r"x/b\.txt.*declared 100 bytes"):
        cm.fetch("MyDrive/arch/liar.zip", extract=True, progress=False)
    # declared 640 MiB from a few KiB (past the 256 MiB free allowance, above 100:1): refused
    # before a single byte is written (today's check_zip would let 157:1 through)
    fd.put("MyDrive/arch/bomb.zip", _patch_cd(data, b"x/a.txt", size=640 * 1024 * 1024))
    with pytest.raises(UnsafeArchiveError, match="bomb"):
        cm.fetch("MyDrive/arch/bomb.zip", extract=True, progress=False)
    with pytest.raises(IntegrityError):
        data2 = bytearray(data)
        data2[-10] ^= 0xFF  # a damaged end record: offsets outside the archive
        fd.put("MyDrive/arch/damaged.zip", bytes(data2[:-22] + b"PK\x05\x06" + b"\0" * 4
                                                   + struct.pack("<HHII", 2, 2, 999999, 999999)
                                                   + b"\0\0"))
        _open("MyDrive/arch/damaged.zip")


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _ti(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def test_fetch_extract_tar_gz_streams_once_and_refuses_hostile_members(zenv, caplog):
    import colabmodels as cm

    fd = zenv
    data = _tar([_ti("pkg/a.txt", b"alpha"), _ti("pkg/.hidden", b"dot"),
                 _ti("../escape.txt", b"x"), _ti("/abs.txt", b"x"),
                 _ti("pkg/link", kind=tarfile.SYMTYPE, link="/etc/passwd"),
                 _ti("pkg/hard", kind=tarfile.LNKTYPE, link="pkg/a.txt"),
                 _ti("pkg/dev", kind=tarfile.CHRTYPE), _ti("pkg/fifo", kind=tarfile.FIFOTYPE)])
    fd.put("MyDrive/arch/pkg.tar.gz", data)
    fd.reset_requests()
    with caplog.at_level(logging.WARNING, logger="colabmodels"):
        root = cm.fetch("MyDrive/arch/pkg.tar.gz", extract=True, progress=False)
    assert root.name == "pkg"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "pkg", "pkg/.hidden", "pkg/a.txt"]
    for name in ("../escape.txt", "/abs.txt", "pkg/link", "pkg/hard", "pkg/dev", "pkg/fifo"):
        assert name in caplog.text
    media = _media(fd.requests)
    assert len(media) == 2  # a 512-byte sniff, then the archive streamed once
    assert media[1].bytes == len(data)
    fd.reset_requests()
    assert cm.fetch("MyDrive/arch/pkg.tar.gz", extract=True, progress=False) == root
    assert not _media(fd.requests)


def test_panel_on_a_zip_counts_classes_and_decodes_a_few_members(zenv):
    pytest.importorskip("ipywidgets")
    from PIL import Image

    from colabmodels import DatasetPanel

    fd = zenv
    files = {}
    for i in range(30):
        b = io.BytesIO()
        Image.new("RGB", (40, 30), (i * 8, 100, 0)).save(b, "JPEG")
        files[f"pets/{['cats', 'dogs'][i % 3 == 0]}/{i:02d}.jpg"] = b.getvalue()
    files["__MACOSX/pets/._00.jpg"] = b"\x00\x05\x16\x07"
    files["pets/.ipynb_checkpoints/x.jpg"] = files["pets/cats/01.jpg"]
    data = _zip(files)
    fd.put("MyDrive/arch/pets.zip", data)
    fd.reset_requests()
    panel = DatasetPanel("MyDrive/arch/pets.zip", namespace={}, per_class=3)
    assert panel.wait(120)
    summary = panel.summary
    assert summary is not None and summary.complete
    assert summary.class_names == ["cats", "dogs"] and summary.counts == {"cats": 20, "dogs": 10}
    kinds = [w.kind for w in summary.warnings]
    assert "zip_preview" in kinds and "macosx" in kinds
    assert "a few KiB per image" in summary.warning("zip_preview").message
    assert "__MACOSX/" in summary.warning("macosx").message
    names = sorted(p.rsplit("/", 1)[-1] for p in panel._images)
    assert names == ["00.jpg", "01.jpg", "02.jpg", "03.jpg", "04.jpg", "06.jpg"]
    for image in panel._images.values():
        assert bytes(image.value).startswith(b"\x89PNG\r\n\x1a\n")
    media = _media(fd.requests)
    previews = [r for r in media if _range(r)[1] < archive_cd_start(data)]  # not the directory
    assert len(previews) == 6  # one ranged request per preview, nothing else of the members
    assert sum(r.bytes for r in previews) < 6 * 2000


def archive_cd_start(data: bytes) -> int:
    pos = data.rfind(b"PK\x05\x06")
    return struct.unpack_from("<I", data, pos + 16)[0]


def test_zip64_archive_listed_in_at_most_three_requests_and_read(zenv):
    from colabmodels.archives import MemberFetcher

    fd = zenv
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # more than 65,535 members: zip64 end records
        for i in range(65_600):
            zf.writestr(f"d/{i}", b"")
        with zf.open("d/big.bin", "w", force_zip64=True) as fh:  # zip64 extra fields too
            fh.write(b"z" * 10_000)
    data = buf.getvalue()
    assert b"PK\x06\x06" in data[-200:] and b"PK\x06\x07" in data[-200:]
    fd.put("MyDrive/arch/zip64.zip", data)
    fd.reset_requests()
    archive = _open("MyDrive/arch/zip64.zip")
    assert len(_media(fd.requests)) <= 3
    assert len(archive.members) == 65_601
    big = archive.members[-1]
    assert big.name == "d/big.bin" and big.size == 10_000
    assert MemberFetcher(archive, [big]).path(big).read_bytes() == b"z" * 10_000


def test_local_tar_gz_bomb_refused_while_streaming(isolated, tmp_path, monkeypatch):
    import colabmodels as cm
    from colabmodels.archives import limits
    from colabmodels.cachestore import cache
    from colabmodels.errors import IntegrityError, UnsafeArchiveError

    # the rule's numbers scaled down (1 MiB free, then 100:1) so a small archive can break it
    monkeypatch.setattr(limits, "FREE_EXPANSION", 1024 * 1024)
    archive = tmp_path / "bomb.tgz"
    archive.write_bytes(_tar([_ti("ok.txt", b"fine"), _ti("zeros.bin", b"\0" * (3 * 1024 * 1024))]))
    assert archive.stat().st_size < 20_000  # 3 MiB of zeros: far past 100:1
    with pytest.raises(UnsafeArchiveError, match=r"zeros\.bin"):
        cm.fetch(archive, extract=True, progress=False)
    assert not [e for e in cache.entries() if e.identity.startswith("extracted:")]
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(_tar([_ti("a.bin", os.urandom(50_000))])[:30_000])
    with pytest.raises(IntegrityError, match=r"cut\.tar\.gz"):
        cm.fetch(cut, extract=True, progress=False)
    assert not [e for e in cache.entries() if e.identity.startswith("extracted:")]


def test_folder_from_zip_pickles_without_connections_and_reads_after(zenv):
    import pickle

    import colabmodels as cm

    pytest.importorskip("torch")
    from PIL import Image

    fd = zenv
    files = {}
    for i in range(6):
        b = io.BytesIO()
        Image.new("RGB", (10 + i, 6), (0, i * 30, 0)).save(b, "PNG")
        files[f"set/{'xy'[i % 2]}/{i}.png"] = b.getvalue()
    fd.put("MyDrive/arch/pickled.zip", _zip(files))
    folder = cm.DriveImageFolder("MyDrive/arch/pickled.zip")
    blob = pickle.dumps(folder)  # what DataLoader workers get under spawn
    assert b"BEGIN PRIVATE KEY" not in blob and b"access_token" not in blob
    fd.reset_requests()
    copy = pickle.loads(blob)
    img, target = copy[1]
    assert img.size == (12, 6) and target == 0  # x/ holds 0, 2, 4 (sorted as names)
    assert len(_media(fd.requests)) == 1  # one coalesced block, from the unpickled copy


def test_overlapping_members_refused_when_listed(isolated, tmp_path):
    from colabmodels.archives import ZipArchive
    from colabmodels.errors import UnsafeArchiveError
    from colabmodels.refs import Ref
    from colabmodels.storage import get_backend

    data = _zip({"a.bin": b"a" * 1000, "b.bin": b"b" * 1000}, deflate_every=0)
    # a.bin's directory record claims its data runs on through b.bin (overlapping members)
    path = tmp_path / "overlap.zip"
    path.write_bytes(_patch_cd(data, b"a.bin", csize=1800, size=1800))
    local = get_backend("local")
    with pytest.raises(UnsafeArchiveError, match=r"'a\.bin'.*overlap"):
        ZipArchive.open(local, local.stat(Ref("local", path=str(path))))


def test_a_closed_fetcher_fails_waiters_instead_of_hanging(zenv):
    from colabmodels.archives import MemberFetcher
    from colabmodels.errors import TransferError

    fd = zenv
    big = 600 * 1024  # each member its own block
    fd.put("MyDrive/arch/closed.zip", _zip({f"{i}.bin": os.urandom(big) for i in range(3)},
                                            deflate_every=0))
    archive = _open("MyDrive/arch/closed.zip")
    fetcher = MemberFetcher(archive, archive.members, workers=1)
    assert len(fetcher.blocks) == 3
    fd.latency_ms = 300
    fetcher.want(archive.members[:2])  # the one worker busy, the second block waiting
    fetcher.close()
    for m in archive.members[1:]:  # queued before the close, and asked for after it
        with pytest.raises(TransferError, match="stopped"):
            fetcher.future(m).result(timeout=10)


def test_zip_feeder_stops_like_a_folder_feeder_and_resumes(zenv):
    """The zip feeder shares the folder feeder's rules: stop() ends reading (waiters are told
    FetchStopped, not a broken-file error), asking again resumes, and a broken member is
    skipped once, by its path in the archive, never a cache path."""

    from PIL import Image

    import colabmodels as cm
    from colabmodels.datasets.feeder import FetchStopped
    from colabmodels.datasets.zipped import open_zip_dataset
    from colabmodels.storage import backend_for

    fd = zenv
    files = {}
    for i in range(4):  # noise does not compress: each image is its own ranged block
        noise = Image.frombytes("RGB", (450, 450), os.urandom(450 * 450 * 3))
        b = io.BytesIO()
        noise.save(b, "PNG")
        files[f"pics/{'ab'[i % 2]}/{i}.png"] = b.getvalue()
    files["pics/a/broken.png"] = b"\x89PNG\r\n\x1a\n not really"
    fd.put("MyDrive/arch/stoppable.zip", _zip(files, deflate_every=0))
    ref = cm.parse_ref("MyDrive/arch/stoppable.zip")
    backend = backend_for(ref)
    dataset = open_zip_dataset(backend, backend.stat(ref))
    files_in_order = dataset.index().stats.files
    skipped: list[str] = []
    feeder = dataset.feeder(files_in_order, on_error="skip", skipped=skipped, workers=1)
    fd.latency_ms = 400  # the one worker is still reading the first block when stop() comes
    feeder.prefetch([0])
    errors = _told_while_waiting(lambda: feeder.local(1), feeder.stop)
    assert errors and isinstance(errors[0], FetchStopped)
    assert not skipped  # a stop is no broken file
    fd.latency_ms = 0
    paths = feeder.fetch_all()  # asked again: resumes
    broken = [f.path for f, p in zip(files_in_order, paths, strict=True) if p is None]
    assert broken == skipped and len(skipped) == 1 and skipped[0].endswith("broken.png")
    assert all(os.path.exists(p) for p in paths if p is not None)


def test_blob_mode_reads_blocks_into_one_file_each_and_checks_crc_on_every_read(zenv):
    from colabmodels.archives import MemberFetcher
    from colabmodels.errors import IntegrityError

    fd = zenv
    files = {f"c{i % 2}/{i:04d}.bin": os.urandom(3000 + i) for i in range(300)}
    fd.put("MyDrive/arch/blobs.zip", _zip(files))
    archive = _open("MyDrive/arch/blobs.zip")
    fd.reset_requests()
    fetcher = MemberFetcher(archive, archive.members, blobs=True)
    fetcher.want(archive.members)
    blobs = {m: fetcher.blob(m) for m in archive.members}
    fetcher.close()
    for m, blob in blobs.items():
        assert archive.member_bytes(m, blob) == files[m.name]
    media = _media(fd.requests)
    assert len({path for path, _ in blobs.values()}) == len(media) < 10  # one file per block
    # a new archive object (a new kernel) finds the blocks without a request
    fd.reset_requests()
    again = _open("MyDrive/arch/blobs.zip")
    m = again.members[7]
    assert again.member_bytes(m, again.blob_of(m)) == files[m.name]
    assert not _media(fd.requests)
    # a damaged block file is caught by the member's CRC-32 when read
    path, start = blobs[m]
    raw = bytearray(path.read_bytes())
    raw[m.span_end - start - 10] ^= 0xFF
    path.chmod(0o600)
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="CRC"):
        again.member_bytes(m, again.blob_of(m))


def test_zip_bytes_reader_stops_on_interrupt_then_resumes(zenv):
    """The reader image_dataset_from_drive uses (member bytes from blocks) follows the same
    rules: interrupt() stops it (a waiter is told FetchStopped, nothing is skipped), it counts
    what is still pending for the interrupt watch, and reading again resumes."""

    from PIL import Image

    import colabmodels as cm
    from colabmodels.datasets.feeder import FetchStopped
    from colabmodels.datasets.zipped import open_zip_dataset
    from colabmodels.storage import backend_for

    fd = zenv
    files = {}
    for i in range(4):
        noise = Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3))
        b = io.BytesIO()
        noise.save(b, "PNG")
        files[f"pics/{'ab'[i % 2]}/{i}.png"] = b.getvalue()
    fd.put("MyDrive/arch/interruptible.zip", _zip(files, deflate_every=0))
    ref = cm.parse_ref("MyDrive/arch/interruptible.zip")
    backend = backend_for(ref)
    dataset = open_zip_dataset(backend, backend.stat(ref))
    order = dataset.index().stats.files
    skipped: list[str] = []
    feeder = dataset.feeder(order, on_error="skip", skipped=skipped, workers=1)
    feeder.blobs = True  # what to_dataset switches on
    assert feeder.pending()
    fd.latency_ms = 400  # the one worker is still reading the first block when the stop comes
    feeder.prefetch([0])
    errors = _told_while_waiting(lambda: feeder.member_bytes(1), feeder.interrupt)
    assert errors and isinstance(errors[0], FetchStopped) and not skipped
    fd.latency_ms = 0
    time.sleep(1.1)  # the interrupted readers' quiet time
    got = [feeder.member_bytes(i) for i in range(len(order))]
    assert got == [files[f.rel if f.rel in files else "pics/" + f.rel] for f in order]
    assert not feeder.pending()
