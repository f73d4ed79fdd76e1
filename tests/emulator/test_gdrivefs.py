"""gdrive:// semantics on the Drive emulator: what fsspec's reference filesystems do, plus Drive's
own cases (duplicate titles, the trash, Drive-side copies, ids, shared drives, pickling)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import subprocess
import sys
import uuid
from datetime import datetime, timezone

import fsspec
import pytest

from colabmodels.errors import (
    AlreadyExistsError,
    AmbiguousPathError,
    AuthError,
    IsAFolderError,
    NotDownloadableError,
    NotFoundError,
    OptionError,
)
from colabmodels.gdrivefs import GDriveFileSystem
from colabmodels.testing import FakeDrive

pytestmark = pytest.mark.emulator


@pytest.fixture(scope="module")
def fd(tmp_path_factory):
    with FakeDrive() as drive:
        drive.key_file = tmp_path_factory.mktemp("gdrive-key") / "key.json"
        drive.write_service_account(drive.key_file)
        yield drive


@pytest.fixture
def fs(fd):
    return GDriveFileSystem(service_account=str(fd.key_file), endpoint=fd.url,
                            skip_instance_cache=True)


@pytest.fixture
def root(fd):
    """A fresh folder in My Drive for one test."""
    path = f"MyDrive/t-{uuid.uuid4().hex[:8]}"
    fd.mkdir(path)
    return path


def _media(fd, since: int) -> list:
    return [r for r in fd.requests[since:] if r.query.get("alt") == "media"]


def _sent(fd, since: int) -> int:
    return sum(r.bytes or 0 for r in _media(fd, since))


# -- the protocol -------------------------------------------------------------------------------

def test_fsspec_finds_gdrive_in_a_fresh_interpreter(fd, tmp_path):
    """The entry point registers the protocol; the credentials chain of cm.mount() signs in."""
    fd.put("MyDrive/entry/x.csv", b"a,b\n1,2\n")
    code = (
        "import sys, fsspec\n"
        "assert 'colabmodels' not in sys.modules\n"
        "with fsspec.open('gdrive://MyDrive/entry/x.csv', 'rt') as f:\n"
        "    print(f.read(), end='')\n"
        "print(type(fsspec.filesystem('gdrive')).__module__)\n"
    )
    env = {**os.environ, "GOOGLE_APPLICATION_CREDENTIALS": str(fd.key_file),
           "COLABMODELS_DRIVE_ENDPOINT": fd.url, "COLABMODELS_CONFIG_DIR": str(tmp_path / "cfg"),
           "COLABMODELS_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "a,b\n1,2\ncolabmodels.gdrivefs\n"


def test_public_name_and_url_forms(fs, fd, root):
    import colabmodels as cm

    assert cm.GDriveFileSystem is GDriveFileSystem
    fd.put(f"{root}/a.txt", b"abc")
    for form in (f"gdrive://{root}/a.txt", f"{root}/a.txt", f"/{root}/a.txt",
                 f"/content/drive/{root}/a.txt", f"gdrive://My Drive/{root[8:]}/a.txt"):
        assert fs.cat_file(form) == b"abc", form
    assert fs.unstrip_protocol(f"{root}/a.txt") == f"gdrive://{root}/a.txt"


# -- listing and metadata ------------------------------------------------------------------------

def test_ls_info_exists_isdir_isfile(fs, fd, root):
    data = b"some bytes"
    fd.put(f"{root}/d/a.bin", data)
    fd.put(f"{root}/d/sub/b.bin", b"bb")
    assert fs.ls(f"{root}/d", detail=False) == [f"{root}/d/a.bin", f"{root}/d/sub"]
    by_name = {e["name"]: e for e in fs.ls(f"gdrive://{root}/d")}
    a = by_name[f"{root}/d/a.bin"]
    assert (a["type"], a["size"], a["md5Checksum"]) == ("file", len(data), hashlib.md5(data).hexdigest())
    assert by_name[f"{root}/d/sub"]["type"] == "directory"
    assert fs.info(f"{root}/d/a.bin") == a
    assert fs.ls(f"{root}/d/a.bin", detail=False) == [f"{root}/d/a.bin"]  # ls of a file
    assert fs.exists(f"{root}/d/a.bin") and not fs.exists(f"{root}/d/nope")
    assert fs.isdir(f"{root}/d/sub") and not fs.isfile(f"{root}/d/sub")
    assert fs.isfile(f"{root}/d/a.bin") and not fs.isdir(f"{root}/d/a.bin")
    assert fs.isdir("MyDrive") and fs.isdir("")
    with pytest.raises(FileNotFoundError) as info:
        fs.info(f"{root}/d/nope")
    assert isinstance(info.value, NotFoundError)
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{root}/nope")
    with pytest.raises(FileNotFoundError, match="MyDrive/"):
        fs.info("Elsewhere/x")


def test_find_glob_du_walk(fs, fd, root):
    for rel, n in [("a.csv", 1), ("b.csv", 2), ("x/c.csv", 3), ("x/y/d.txt", 4)]:
        fd.put(f"{root}/{rel}", b"z" * n)
    assert fs.find(root) == [f"{root}/a.csv", f"{root}/b.csv", f"{root}/x/c.csv", f"{root}/x/y/d.txt"]
    assert fs.find(root, maxdepth=1) == [f"{root}/a.csv", f"{root}/b.csv"]
    assert fs.find(root, withdirs=True, maxdepth=2) == [
        root, f"{root}/a.csv", f"{root}/b.csv", f"{root}/x", f"{root}/x/c.csv", f"{root}/x/y"]
    assert fs.find(f"{root}/a.csv") == [f"{root}/a.csv"]
    assert fs.find(f"{root}/nope") == []
    assert fs.glob(f"{root}/**/*.csv") == [f"{root}/a.csv", f"{root}/b.csv", f"{root}/x/c.csv"]
    assert fs.glob(f"gdrive://{root}/*.csv") == [f"{root}/a.csv", f"{root}/b.csv"]
    assert fs.du(root) == 10
    assert fs.du(root, total=False)[f"{root}/x/y/d.txt"] == 4
    walked = {d: sorted(files) for d, _, files in fs.walk(root)}
    assert walked[f"{root}/x/y"] == ["d.txt"]


def test_checksum_ukey_modified_created(fs, fd, root):
    data = b"checksummed"
    fd.put(f"{root}/c.bin", data)
    md5 = hashlib.md5(data).hexdigest()
    assert fs.ukey(f"{root}/c.bin") == md5
    assert fs.checksum(f"{root}/c.bin") == int(md5, 16)
    meta = fd.metadata(f"{root}/c.bin")
    modified, created = fs.modified(f"{root}/c.bin"), fs.created(f"{root}/c.bin")
    assert modified.tzinfo is not None and created.tzinfo is not None
    assert modified == datetime.fromisoformat(meta["modifiedDate"].replace("Z", "+00:00"))
    assert created == datetime.fromisoformat(meta["createdDate"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 600
    fs.pipe_file(f"{root}/c.bin", b"changed")
    assert fs.ukey(f"{root}/c.bin") == hashlib.md5(b"changed").hexdigest()


def test_listings_are_cached_and_our_writes_invalidate_them(fs, fd, root):
    fd.put(f"{root}/one.txt", b"1")
    assert fs.ls(root, detail=False) == [f"{root}/one.txt"]
    before = len(fd.requests)
    assert fs.ls(root, detail=False) == [f"{root}/one.txt"]
    assert fs.info(f"{root}/one.txt")["size"] == 1
    assert len(fd.requests) == before  # both answered from dircache
    fs.pipe_file(f"{root}/two.txt", b"22")  # our write drops the cached listing
    assert fs.ls(root, detail=False) == [f"{root}/one.txt", f"{root}/two.txt"]
    fd.put(f"{root}/three.txt", b"333")  # someone else's write: fsspec's cache keeps the listing
    assert f"{root}/three.txt" not in fs.ls(root, detail=False)
    assert f"{root}/three.txt" in fs.ls(root, detail=False, refresh=True)
    fs.rm(f"{root}/one.txt")
    assert fs.ls(root, detail=False) == [f"{root}/three.txt", f"{root}/two.txt"]


def test_big_folders_page_lazily(fs, fd, root):
    for i in range(2100):
        fd.put(f"{root}/big/f{i:05d}.bin", b"")
    fs.info(f"{root}/big")  # resolve the folder first
    start = len(fd.requests)
    pages = fs.ls_iter(f"{root}/big")
    first = next(pages)
    lists = [r for r in fd.requests[start:] if r.path.endswith("/files") and r.method == "GET"]
    assert first["name"].startswith(f"{root}/big/f") and len(lists) == 1  # one page so far
    rest = list(pages)
    assert len(rest) + 1 == 2100
    lists = [r for r in fd.requests[start:] if r.path.endswith("/files") and r.method == "GET"]
    assert len(lists) == 3  # 1000 + 1000 + 100
    assert len(fs.ls(f"{root}/big")) == 2100  # now from the cache
    start = len(fd.requests)
    assert fs.info(f"{root}/big/f00007.bin")["size"] == 0
    assert len(fd.requests) == start


# -- reading -------------------------------------------------------------------------------------

def test_open_rb_is_seekable_and_reads_ranges(fs, fd, root):
    data = random.Random(1).randbytes(3 * 1024 * 1024 + 17)
    fd.put(f"{root}/r.bin", data)
    with fs.open(f"{root}/r.bin", "rb") as f:
        assert f.seekable() and f.size == len(data)
        assert f.read(10) == data[:10]
        f.seek(2_000_000)
        assert f.read(5) == data[2_000_000:2_000_005]
        assert f.tell() == 2_000_005
        f.seek(-7, 2)
        assert f.read() == data[-7:]
        f.seek(100)
        assert f.read() == data[100:]
    assert fs.cat_file(f"{root}/r.bin", start=5, end=9) == data[5:9]
    assert fs.cat_file(f"{root}/r.bin", start=-4) == data[-4:]
    assert fs.cat_file(f"{root}/r.bin", start=10, end=-10) == data[10:-10]
    assert fs.cat(f"{root}/r.bin") == data
    assert fs.head(f"{root}/r.bin", 3) == data[:3] and fs.tail(f"{root}/r.bin", 3) == data[-3:]
    with fs.open(f"{root}/r.bin", "rb") as f:  # readline through the read-ahead
        assert f.readline() == data[: data.index(b"\n") + 1]


def test_random_reads_fetch_about_what_they_ask(fs, fd, root):
    data = random.Random(2).randbytes(16 * 1024 * 1024)
    fd.put(f"{root}/big.bin", data)
    rng = random.Random(3)
    start = len(fd.requests)
    asked = 0
    with fs.open(f"{root}/big.bin", "rb") as f:
        for _ in range(12):
            at = rng.randrange(0, len(data) - 256 * 1024)
            f.seek(at)
            assert f.read(256 * 1024) == data[at:at + 256 * 1024]
            asked += 256 * 1024
    assert _sent(fd, start) <= 2 * asked


def test_sequential_reads_read_ahead_and_big_reads_go_parallel(fd, root):
    fs = GDriveFileSystem(service_account=str(fd.key_file), endpoint=fd.url, connections=4,
                          parallel_min_bytes=2 * 1024 * 1024, skip_instance_cache=True)
    data = random.Random(4).randbytes(12 * 1024 * 1024)
    fd.put(f"{root}/seq.bin", data)
    start = len(fd.requests)
    with fs.open(f"{root}/seq.bin", "rb") as f:
        got = b"".join(iter(lambda: f.read(64 * 1024), b""))
    assert got == data
    media = _media(fd, start)
    assert len(media) <= 16  # 192 small reads became a few growing ranges (split over 4)
    assert _sent(fd, start) == len(data)
    start = len(fd.requests)
    assert fs.open(f"{root}/seq.bin", "rb").read() == data
    assert len(_media(fd, start)) == 4  # one read() split over the 4 connections


def test_get_uses_the_engine_and_verifies(fs, fd, root, tmp_path):
    data = random.Random(5).randbytes(3 * 1024 * 1024)
    fd.put(f"{root}/g/m.bin", data)
    fd.put(f"{root}/g/sub/n.txt", b"n")
    fs.get(f"{root}/g/m.bin", str(tmp_path / "m.bin"))
    assert (tmp_path / "m.bin").read_bytes() == data
    fs.get(f"{root}/g", str(tmp_path / "copy"), recursive=True)
    assert (tmp_path / "copy" / "sub" / "n.txt").read_bytes() == b"n"
    assert (tmp_path / "copy" / "m.bin").read_bytes() == data
    assert not [p for p in tmp_path.rglob("*") if "incomplete" in p.name]


def test_google_docs_are_listed_but_not_read(fs, fd, root):
    fd.put(f"{root}/notes", b"", mime_type="application/vnd.google-apps.document")
    assert fs.ls(root, detail=False) == [f"{root}/notes"]
    with pytest.raises(NotDownloadableError, match="Google Doc"):
        fs.cat_file(f"{root}/notes")


def test_opening_a_folder_or_a_missing_file(fs, fd, root):
    fd.mkdir(f"{root}/dir")
    with pytest.raises(IsADirectoryError) as info:
        fs.open(f"{root}/dir", "rb")
    assert isinstance(info.value, IsAFolderError)
    with pytest.raises(IsADirectoryError):
        fs.open(f"{root}/dir", "wb")
    with pytest.raises(FileNotFoundError):
        fs.open(f"{root}/missing.bin", "rb")


# -- writing -------------------------------------------------------------------------------------

def test_nothing_is_visible_before_close(fs, fd, root):
    path = f"{root}/new/w.bin"
    with fs.open(path, "wb") as f:
        f.write(b"x" * 3_000_000)
        f.write(b"y" * 10)
        assert not fd.exists(path)
        assert not fs.exists(path)
    assert fd.get(path) == b"x" * 3_000_000 + b"y" * 10
    assert fs.info(path)["size"] == 3_000_010  # created the missing parent folder too


def test_an_exception_in_the_with_block_leaves_no_file(fs, fd, root):
    fd.put(f"{root}/keep.bin", b"old")
    with pytest.raises(RuntimeError), fs.open(f"{root}/boom.bin", "wb") as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError), fs.open(f"{root}/keep.bin", "wb") as f:
        f.write(b"half of the new")
        raise RuntimeError("boom")
    assert not fs.exists(f"{root}/boom.bin") and not fd.exists(f"{root}/boom.bin")
    assert fs.cat_file(f"{root}/keep.bin") == b"old"


def test_overwrite_updates_the_file_in_place(fs, fd, root):
    fs.pipe_file(f"{root}/o.bin", b"first")
    first_id = fs.info(f"{root}/o.bin")["id"]
    start = len(fd.requests)
    with fs.open(f"{root}/o.bin", "wb") as f:
        f.write(b"second")
    assert next(r.method for r in fd.requests[start:] if r.path.startswith("/upload/")) == "PUT"
    assert fs.ls(root) == [fs.info(f"{root}/o.bin")]  # one file, the same one
    assert fs.info(f"{root}/o.bin")["id"] == first_id
    assert fs.cat_file(f"{root}/o.bin") == b"second" and fd.get(first_id) == b"second"
    assert fs.ukey(f"{root}/o.bin") == hashlib.md5(b"second").hexdigest()
    with pytest.raises(FileExistsError) as info:
        fs.open(f"{root}/o.bin", "xb")
    assert isinstance(info.value, AlreadyExistsError)
    with pytest.raises(FileExistsError):
        fs.pipe_file(f"{root}/o.bin", b"x", mode="create")
    with fs.open(f"{root}/o.bin", "ab") as f:
        f.write(b"+third")
    assert fs.cat_file(f"{root}/o.bin") == b"second+third"


def test_text_mode_and_put(fs, fd, root, tmp_path):
    with fs.open(f"{root}/t.txt", "w") as f:
        f.write("héllo\n")
    assert fd.get(f"{root}/t.txt") == "héllo\n".encode()
    (tmp_path / "up" / "in").mkdir(parents=True)
    (tmp_path / "up" / "a.bin").write_bytes(b"a" * 1000)
    (tmp_path / "up" / "in" / "b.bin").write_bytes(b"b")
    fs.put(str(tmp_path / "up"), f"{root}/up", recursive=True)
    assert fs.find(f"{root}/up") == [f"{root}/up/a.bin", f"{root}/up/in/b.bin"]
    assert fd.get(f"{root}/up/a.bin") == b"a" * 1000


def test_transactions_upload_on_commit_only(fs, fd, root):
    with fs.transaction:
        fs.pipe_file(f"{root}/pre.txt", b"pre")  # pipe is immediate
        with fs.open(f"{root}/tx.txt", "wb") as f:
            f.write(b"in a transaction")
        assert not fd.exists(f"{root}/tx.txt")
    assert fd.get(f"{root}/tx.txt") == b"in a transaction"


# -- Drive-side copy, move, remove, folders ----------------------------------------------------

def test_cp_is_a_drive_side_copy(fs, fd, root):
    data = random.Random(6).randbytes(2 * 1024 * 1024)
    fd.put(f"{root}/src/m.bin", data)
    fd.put(f"{root}/src/deep/n.bin", b"n")
    start = len(fd.requests)
    fs.cp(f"{root}/src/m.bin", f"{root}/dst/m2.bin")
    copies = [r for r in fd.requests[start:] if r.path.endswith("/copy")]
    assert len(copies) == 1
    assert not _media(fd, start)  # no bytes came down...
    assert not [r for r in fd.requests[start:] if r.path.startswith("/upload/")]  # ...or went up
    assert fd.get(f"{root}/dst/m2.bin") == data
    fs.cp(f"{root}/src", f"{root}/tree", recursive=True)
    assert fs.find(f"{root}/tree") == [f"{root}/tree/deep/n.bin", f"{root}/tree/m.bin"]
    fs.ls("")  # the root's listing names MyDrive without an id: a copy into MyDrive still works
    top = f"MyDrive/top-{uuid.uuid4().hex[:6]}.bin"
    fs.cp(f"{root}/src/deep/n.bin", top)
    assert fd.get(top) == b"n"


def test_mv_is_one_request_for_a_file_or_a_folder(fs, fd, root):
    fd.put(f"{root}/a/f.bin", b"f")
    fd.put(f"{root}/a/b/g.bin", b"g")
    folder_id = fs.info(f"{root}/a")["id"]
    start = len(fd.requests)
    fs.mv(f"{root}/a", f"{root}/moved")
    patches = [r for r in fd.requests[start:] if r.method in ("PATCH", "PUT")]
    assert len(patches) == 1
    assert fs.info(f"{root}/moved")["id"] == folder_id
    assert not fs.exists(f"{root}/a")
    assert fs.cat_file(f"{root}/moved/b/g.bin") == b"g"
    fs.mkdir(f"{root}/into")
    fs.mv(f"{root}/moved/f.bin", f"{root}/into")  # into an existing folder
    assert fs.ls(f"{root}/into", detail=False) == [f"{root}/into/f.bin"]
    fs.mv(f"{root}/into/f.bin", f"{root}/into/renamed.bin")
    assert fs.ls(f"{root}/into", detail=False) == [f"{root}/into/renamed.bin"]


def test_rm_trashes_and_a_folder_is_one_request(fs, fd, root):
    fd.put(f"{root}/r/a.bin", b"a")
    fd.put(f"{root}/r/s/b.bin", b"b")
    file_id = fs.info(f"{root}/r/a.bin")["id"]
    fs.rm(f"{root}/r/a.bin")
    assert fd.metadata(file_id)["labels"]["trashed"] is True
    folder_id = fs.info(f"{root}/r")["id"]
    with pytest.raises(IsADirectoryError, match="recursive=True"):
        fs.rm(f"{root}/r")
    start = len(fd.requests)
    fs.rm(f"{root}/r", recursive=True)
    assert [r.path for r in fd.requests[start:] if r.method != "GET"] == [
        f"/drive/v2/files/{folder_id}/trash"]
    assert not fs.exists(f"{root}/r")
    with pytest.raises(FileNotFoundError):
        fs.rm(f"{root}/r", recursive=True)
    forever = GDriveFileSystem(service_account=str(fd.key_file), endpoint=fd.url, trash=False,
                               skip_instance_cache=True)
    fd.put(f"{root}/gone.bin", b"x")
    gone_id = forever.info(f"{root}/gone.bin")["id"]
    forever.rm(f"{root}/gone.bin")
    assert not fd.exists(gone_id)
    with pytest.raises(ValueError, match="cannot be written or removed"):
        fs.rm("MyDrive", recursive=True)


def test_mkdir_makedirs_rmdir(fs, fd, root):
    fs.mkdir(f"{root}/m/n")  # parents created
    assert fs.isdir(f"{root}/m/n")
    with pytest.raises(FileExistsError):
        fs.mkdir(f"{root}/m/n")
    with pytest.raises(FileNotFoundError):
        fs.mkdir(f"{root}/no/such", create_parents=False)
    fs.makedirs(f"{root}/m/n", exist_ok=True)
    with pytest.raises(FileExistsError):
        fs.makedirs(f"{root}/m/n")
    fs.pipe_file(f"{root}/m/file", b"")
    with pytest.raises(FileExistsError):
        fs.makedirs(f"{root}/m/file", exist_ok=True)
    with pytest.raises(NotADirectoryError):
        fs.makedirs(f"{root}/m/file/below")
    with pytest.raises(OSError, match="not empty"):
        fs.rmdir(f"{root}/m")
    fs.rmdir(f"{root}/m/n")
    assert not fs.exists(f"{root}/m/n")


# -- Drive's own cases ----------------------------------------------------------------------

def test_two_items_with_one_title(fs, fd, root):
    first = fd.put(f"{root}/dup.csv", b"first")
    second = fd.put(f"{root}/dup.csv", b"second, newer")
    entries = fs.ls(root)
    assert sorted(e["id"] for e in entries) == sorted([first, second])
    assert {e["name"] for e in entries} == {f"{root}/dup.csv"}
    for call in (fs.info, fs.cat_file, lambda p: fs.open(p, "rb"), lambda p: fs.pipe_file(p, b"x"),
                 fs.rm):
        fs.invalidate_cache()
        with pytest.raises(AmbiguousPathError) as info:
            call(f"{root}/dup.csv")
        assert isinstance(info.value, FileNotFoundError)
        assert first in str(info.value) and second in str(info.value) and "gdrive://ID" in str(info.value)
        assert sorted(info.value.ids) == sorted([first, second])
    fs.ls(root)
    with pytest.raises(AmbiguousPathError):  # from the cached listing too
        fs.info(f"{root}/dup.csv")
    assert fs.exists(f"{root}/dup.csv")
    assert fs.cat_file(f"gdrive://{second}") == b"second, newer"  # one of them, by id


def test_paths_by_id(fs, fd, root):
    fd.put(f"{root}/byid/x/y.txt", b"why")
    folder = fd.resolve(f"{root}/byid")
    assert fs.ls(folder, detail=False) == [f"{folder}/x"]
    assert fs.cat_file(f"gdrive://{folder}/x/y.txt") == b"why"
    assert fs.find(folder) == [f"{folder}/x/y.txt"]
    with pytest.raises(ValueError, match="for reading"):
        fs.pipe_file(f"{folder}/new.txt", b"no")


def test_shared_drives_and_shared_with_me(fs, fd):
    fd.put("Shareddrives/Team/data/x.bin", b"team")
    assert "Shareddrives/Team" in fs.ls("Shareddrives", detail=False)
    assert fs.cat_file("gdrive://Shareddrives/Team/data/x.bin") == b"team"
    fs.pipe_file("Shareddrives/Team/data/y.bin", b"written")
    assert fs.find("Shareddrives/Team") == ["Shareddrives/Team/data/x.bin",
                                            "Shareddrives/Team/data/y.bin"]
    fd.put("MyDrive/for-you/z.txt", b"shared", owner="alice")
    fd.share(fd.resolve("MyDrive/for-you", owner="alice"), readers=[fd.default_user])
    assert "SharedWithMe/for-you" in fs.ls("SharedWithMe", detail=False)
    assert fs.cat_file("SharedWithMe/for-you/z.txt") == b"shared"
    assert fs.ls("", detail=False) == ["MyDrive", "SharedWithMe", "Shareddrives"]


def test_files_of_others_are_not_found(fs, fd):
    fd.put("MyDrive/private/p.bin", b"p", owner="bob")
    with pytest.raises(FileNotFoundError):
        fs.cat_file(fd.resolve("MyDrive/private/p.bin", owner="bob"))


# -- signing in and pickling ----------------------------------------------------------------

def test_pickle_carries_how_to_sign_in_never_a_secret(fs, fd, root, tmp_path):
    fd.put(f"{root}/p.txt", b"pickled")
    assert fs.cat_file(f"{root}/p.txt") == b"pickled"  # signed in: a token exists now
    blob = pickle.dumps(fs)
    key = json.loads(fd.key_file.read_text())
    token = fs.session().access_token()
    for secret in (key["private_key"], key["private_key"].splitlines()[1], token):
        assert secret.encode() not in blob
    again = pickle.loads(blob)
    assert again.cat_file(f"{root}/p.txt") == b"pickled"
    # a worker process with no credentials in its environment signs in from the pickle alone
    code = ("import pickle, sys\nfs = pickle.loads(sys.stdin.buffer.read())\n"
            f"sys.stdout.write(fs.cat_file({root + '/p.txt'!r}).decode())\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "COLABMODELS_DRIVE_ENDPOINT")}
    env["COLABMODELS_CONFIG_DIR"] = str(tmp_path / "cfg")
    out = subprocess.run([sys.executable, "-c", code], input=blob, env=env, capture_output=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b"pickled"


def test_a_forked_worker_signs_in_afresh(fs, fd, root):
    """A DataLoader-style forked worker must not share the parent's connections."""
    import multiprocessing

    fd.put(f"{root}/fork.txt", b"forked")
    assert fs.cat_file(f"{root}/fork.txt") == b"forked"
    parent_session = fs.session()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def work() -> None:
        queue.put((fs.cat_file(f"{root}/fork.txt"), fs.session() is parent_session))

    child = ctx.Process(target=work)
    child.start()
    got = queue.get(timeout=120)
    child.join(60)
    assert got == (b"forked", False)
    assert fs.session() is parent_session and fs.cat_file(f"{root}/fork.txt") == b"forked"


def test_secrets_are_refused_as_options(fd):
    with pytest.raises(OptionError, match="never carries a token"):
        GDriveFileSystem(endpoint=fd.url, token="ya29.secret", skip_instance_cache=True)
    key = json.loads(fd.key_file.read_text())
    with pytest.raises(OptionError, match=r"service_account='path/to/key\.json'"):
        GDriveFileSystem(service_account=key, endpoint=fd.url, skip_instance_cache=True)


def test_an_unknown_key_is_a_permission_error(fd, tmp_path):
    other = FakeDrive()
    with other:
        other.write_service_account(tmp_path / "other.json")
    fs = GDriveFileSystem(service_account=str(tmp_path / "other.json"), endpoint=fd.url,
                          skip_instance_cache=True)
    with pytest.raises(PermissionError) as info:
        fs.ls("MyDrive")
    assert isinstance(info.value, AuthError)


def test_credentials_go_only_where_they_were_issued(fd, tmp_path):
    key = json.loads(fd.key_file.read_text())
    key["token_uri"] = "https://oauth2.googleapis.com/token"  # a key Google issued...
    google_key = tmp_path / "google-key.json"
    google_key.write_text(json.dumps(key))
    fs = GDriveFileSystem(service_account=str(google_key), endpoint=fd.url,  # ...to the emulator
                          skip_instance_cache=True)
    before = len(fd.requests)
    with pytest.raises(PermissionError, match="refused"):
        fs.ls("MyDrive")
    assert len(fd.requests) == before  # refused before anything was sent


def test_fsspec_open_with_storage_options(fd, root):
    fd.put(f"{root}/so.txt", b"storage options")
    with fsspec.open(f"gdrive://{root}/so.txt", "rb", service_account=str(fd.key_file),
                     endpoint=fd.url) as f:
        assert f.read() == b"storage options"
