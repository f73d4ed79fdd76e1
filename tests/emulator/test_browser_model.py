"""The Drive browser's model (no widgets) against the Drive emulator: paging, search, sort,
roots, the model filter, details and errors. Core dependencies only, so it also runs on Colab's
versions (`.venv-colab`)."""

from __future__ import annotations

import threading

import pytest

from colabmodels import browse
from colabmodels.widgets.browser_model import BrowserModel, model_variables, variable_name_for

pytestmark = [pytest.mark.colab, pytest.mark.timeout(300)]

BIG = 20_000


@pytest.fixture(scope="module")
def big_drive(tmp_path_factory):
    """One emulator for the module with MyDrive/big holding 20,000 files (populated once)."""
    from colabmodels.testing import FakeDrive

    with FakeDrive() as fd:
        fd.mkdir("MyDrive/big")
        for i in range(BIG):
            fd.put(f"MyDrive/big/img_{i:05d}.jpg", b"\xff\xd8\xff" + i.to_bytes(4, "little"))
        fd.put("MyDrive/readme.txt", b"hello")
        fd.key_path = tmp_path_factory.mktemp("big-key") / "key.json"
        fd.write_service_account(fd.key_path)
        yield fd


@pytest.fixture
def big_env(isolated, big_drive, monkeypatch):
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", big_drive.url)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(big_drive.key_path))
    big_drive.latency_ms = 0
    return big_drive


def _lists(fd):
    return [r for r in fd.requests if r.method == "GET" and r.path == "/drive/v2/files"]


def _ready(model: BrowserModel) -> BrowserModel:
    assert model.wait(60), "the model did not finish its background work"
    assert model.error is None, model.error
    return model


def test_first_screen_of_a_20000_file_folder_is_one_list_request(big_env):
    model = _ready(BrowserModel("MyDrive"))
    big = next(i for i in model.rows if i.name == "big")
    big_env.reset_requests()
    model.open(big)
    _ready(model)
    requests = list(big_env.requests)
    assert len(requests) == 1, [(r.path, r.query) for r in requests]
    assert requests[0].path == "/drive/v2/files"
    assert f"'{big.id}' in parents" in requests[0].query["q"]
    assert len(model.rows) == model.page_size == 100
    assert model.rows[0].name == "img_00000.jpg" and model.rows[-1].name == "img_00099.jpg"
    assert not model.complete and model.next_token

    big_env.reset_requests()
    assert model.more()
    _ready(model)
    assert len(_lists(big_env)) == 1 and len(big_env.requests) == 1
    assert [i.name for i in model.rows[99:101]] == ["img_00099.jpg", "img_00100.jpg"]
    # pages grow: 100, then 200, 400 ... up to Drive's 1000, so big folders take few presses
    assert _lists(big_env)[0].query["maxResults"] == "200"
    assert len({i.id for i in model.rows}) == 300
    assert model.next_page_size == 400
    assert model.more()
    _ready(model)
    assert len({i.id for i in model.rows}) == 700 and model.next_page_size == 800
    assert [t.title for t in model.trail] == ["My Drive", "big"]


def test_listing_runs_in_the_background_and_the_caller_is_free(big_env):
    model = _ready(BrowserModel("MyDrive/big"))
    big_env.latency_ms = 400
    model.set_sort("modified")  # returns at once; the page comes later
    returned_busy, rows_then = model.busy, list(model.rows)
    # the calling thread can do other work meanwhile
    other = threading.Thread(target=lambda: None)
    other.start()
    other.join()
    _ready(model)
    assert returned_busy and rows_then == []
    assert len(model.rows) == 100


def test_search_is_a_drive_query_debounced_while_typing(big_env):
    model = _ready(BrowserModel("MyDrive/big"))
    big_env.reset_requests()
    for text in ("i", "img_0", "img_0123", "img_01234"):
        model.search_soon(text)  # typed quickly: only the last one runs
    _ready(model)
    lists = _lists(big_env)
    assert len(lists) == 1, [r.query.get("q") for r in lists]
    assert "title contains 'img_01234'" in lists[0].query["q"]
    assert [i.name for i in model.rows] == ["img_01234.jpg"]
    assert model.complete

    model.set_search("")
    _ready(model)
    assert len(model.rows) == 100


def test_search_everywhere_finds_files_outside_the_folder(big_env):
    model = _ready(BrowserModel("MyDrive/big"))
    model.set_search("readme", everywhere=True)
    _ready(model)
    assert [i.name for i in model.rows] == ["readme.txt"]
    model.set_search("readme", everywhere=False)
    _ready(model)
    assert model.rows == []


def test_sort_by_column_asks_drive_and_keeps_folders_first(drive_env):
    fd = drive_env
    fd.put("MyDrive/s/b_big.bin", b"x" * 300, modified=1_700_000_300)
    fd.put("MyDrive/s/a_small.bin", b"x" * 10, modified=1_700_000_900)
    fd.put("MyDrive/s/c_mid.bin", b"x" * 100, modified=1_700_000_100)
    fd.mkdir("MyDrive/s/zfolder")
    model = _ready(BrowserModel("MyDrive/s"))
    assert [i.name for i in model.rows] == ["zfolder", "a_small.bin", "b_big.bin", "c_mid.bin"]

    fd.reset_requests()
    model.set_sort("size")
    _ready(model)
    assert [i.name for i in model.rows] == ["zfolder", "b_big.bin", "c_mid.bin", "a_small.bin"]
    assert _lists(fd)[-1].query["orderBy"] == "folder,quotaBytesUsed desc,title"
    model.set_sort("size")  # the same column again: the other way round
    _ready(model)
    assert [i.name for i in model.rows] == ["zfolder", "a_small.bin", "c_mid.bin", "b_big.bin"]
    model.set_sort("modified", descending=False)
    _ready(model)
    assert [i.name for i in model.rows] == ["zfolder", "c_mid.bin", "b_big.bin", "a_small.bin"]
    model.set_sort("name", descending=True)
    _ready(model)
    assert [i.name for i in model.rows] == ["zfolder", "c_mid.bin", "b_big.bin", "a_small.bin"]
    with pytest.raises(ValueError, match="cannot sort by"):
        model.set_sort("colour")


def test_roots_my_drive_and_shared_with_me(drive_env):
    fd = drive_env
    fd.put("MyDrive/mine.pth", b"m")
    fd.put("MyDrive/theirs/net.pth", b"t", owner="bob")
    fd.share("MyDrive/theirs", readers=[fd.default_user], owner="bob")
    fd.put("MyDrive/private.pth", b"p", owner="carol")
    model = _ready(BrowserModel("MyDrive"))
    assert [i.name for i in model.rows] == ["mine.pth"]
    model.go_root("shared")
    _ready(model)
    names = [i.name for i in model.rows]
    # Drive lists what was shared with the user itself, not the contents of a shared folder
    assert names == ["theirs"]
    theirs = next(i for i in model.rows if i.name == "theirs")
    assert theirs.path == "SharedWithMe/theirs" and theirs.owner
    model.open(theirs)
    _ready(model)
    assert [(i.name, i.path) for i in model.rows] == [("net.pth", "SharedWithMe/theirs/net.pth")]
    assert [t.title for t in model.trail] == ["Shared with me", "theirs"]
    model.go(0)
    _ready(model)
    assert [t.kind for t in model.trail] == ["shared"]
    model.go_root("drives")
    _ready(model)
    assert model.error is None  # no shared drives is an empty list, not an error


def test_shared_drives_root_listing_search_and_start_path(drive_env):
    fd = drive_env
    if not hasattr(fd, "add_shared_drive"):
        pytest.skip("this emulator has no shared drives")
    team = fd.add_shared_drive("Team", members={fd.default_user: "writer"})
    fd.put("Shareddrives/Team/models/resnet.pth", b"r")
    fd.put("Shareddrives/Team/models/vit.safetensors", b"v")
    fd.add_shared_drive("Other", creator="bob")  # the user is no member: not shown
    model = _ready(BrowserModel("MyDrive"))
    model.go_root("drives")
    _ready(model)
    assert [(i.name, i.shared_drive, i.path) for i in model.rows] == [
        ("Team", True, "Shareddrives/Team")]
    model.open(model.rows[0])
    _ready(model)
    assert [i.name for i in model.rows] == ["models"]
    assert model.place.drive_id == team
    fd.reset_requests()
    model.open(model.rows[0])
    _ready(model)
    assert [(i.name, i.path) for i in model.rows] == [
        ("resnet.pth", "Shareddrives/Team/models/resnet.pth"),
        ("vit.safetensors", "Shareddrives/Team/models/vit.safetensors")]
    [listing] = _lists(fd)
    assert listing.query["corpora"] == "drive" and listing.query["driveId"] == team
    assert [t.title for t in model.trail] == ["Shared drives", "Team", "models"]
    model.go(1)
    _ready(model)
    model.set_search("vit", everywhere=True)  # the whole shared drive
    _ready(model)
    assert [i.name for i in model.rows] == ["vit.safetensors"]
    started = _ready(BrowserModel("Shareddrives/Team/models"))
    assert [t.path for t in started.trail] == ["Shareddrives", "Shareddrives/Team",
                                                "Shareddrives/Team/models"]
    assert [i.name for i in started.rows] == ["resnet.pth", "vit.safetensors"]


def test_shortcuts_open_and_load_their_targets(drive_env):
    fd = drive_env
    if not hasattr(fd, "put_shortcut"):
        pytest.skip("this emulator has no shortcuts")
    target = fd.put("MyDrive/real/weights.pth", b"w")
    fd.mkdir("MyDrive/links")
    fd.put_shortcut("MyDrive/links/weights-link", target)
    fd.put_shortcut("MyDrive/links/real-folder", "MyDrive/real")
    model = _ready(BrowserModel("MyDrive/links"))
    rows = {i.name: i for i in model.rows}
    assert rows["weights-link"].shortcut and rows["weights-link"].id == target
    assert rows["weights-link"].load_ref == target
    assert rows["real-folder"].is_folder
    model.open(rows["real-folder"])
    _ready(model)
    assert [(i.name, i.path) for i in model.rows] == [("weights.pth", None)]  # by id below a shortcut
    model.select(model.rows[0])
    assert model.reference() == target


def test_start_paths_and_breadcrumbs(drive_env):
    fd = drive_env
    fd.put("MyDrive/a/b/c/x.pth", b"x")
    model = _ready(BrowserModel("/content/drive/MyDrive/a/b"))
    assert [t.path for t in model.trail] == ["MyDrive", "MyDrive/a", "MyDrive/a/b"]
    assert [i.name for i in model.rows] == ["c"]
    model.open_selected()  # nothing selected: nothing happens
    model.select(model.rows[0])
    assert model.open_selected()
    _ready(model)
    assert [i.path for i in model.rows] == ["MyDrive/a/b/c/x.pth"]
    model.up()
    _ready(model)
    assert model.place.path == "MyDrive/a/b"
    model.go(1)
    _ready(model)
    assert [i.name for i in model.rows] == ["b"]
    by_link = _ready(BrowserModel(f"https://drive.google.com/drive/folders/{fd.resolve('MyDrive/a/b/c')}"))
    assert [i.name for i in by_link.rows] == ["x.pth"]


def test_model_filter_keeps_folders_and_recognises_model_folders(drive_env):
    fd = drive_env
    fd.put("MyDrive/m/net.safetensors", b"s")
    fd.put("MyDrive/m/photo.jpg", b"\xff\xd8\xff")
    fd.put("MyDrive/m/notes.txt", b"n")
    fd.put("MyDrive/m/exported/saved_model.pb", b"pb")
    fd.put("MyDrive/m/exported/variables/variables.index", b"i")
    fd.put("MyDrive/m/resnet/v1/manifest.json", b"{}")
    fd.put("MyDrive/m/plain/readme.md", b"r")
    model = _ready(BrowserModel("MyDrive/m"))
    assert len(model.rows) == 6
    fd.reset_requests()
    model.set_models_only(True)
    _ready(model)
    kinds = {i.name: i.model_kind for i in model.rows}
    assert kinds == {"exported": "savedmodel", "plain": None, "resnet": "versions",
                     "net.safetensors": "file"}
    assert len(_lists(fd)) == 1  # one query recognises every folder of the page
    resnet = next(i for i in model.rows if i.name == "resnet")
    assert resnet.load_ref == "MyDrive/m/resnet@latest"
    assert "models only" not in model.status() and "4 of 6 loaded" in model.status()


def test_details_owner_description_thumbnail_and_versions(drive_env):
    fd = drive_env
    fd.put("MyDrive/d/weights.pth", b"w" * 2048, description="fine-tuned on flowers")
    png = _png(64, 48)
    fd.put("MyDrive/d/cat.png", png)
    model = _ready(BrowserModel("MyDrive/d"))
    rows = {i.name: i for i in model.rows}
    model.select(rows["weights.pth"])
    _ready(model)
    d = model.details
    assert d is not None and d.item.size == 2048 and d.item.description == "fine-tuned on flowers"
    assert d.item.owner and d.item.modified and d.thumbnail is None
    model.select(rows["cat.png"])
    _ready(model)
    d = model.details
    if d.item.thumbnail_link is None:
        pytest.skip("this emulator has no thumbnailLink yet")
    assert d.thumbnail is not None
    assert d.thumbnail.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))
    assert d.item.image_size == (64, 48)


def test_reference_and_variable_names(drive_env):
    fid = drive_env.put("MyDrive/r/resnet-18 v2.pth", b"w")
    model = _ready(BrowserModel("MyDrive/r"))
    model.select(model.rows[0])
    assert model.reference() == "MyDrive/r/resnet-18 v2.pth"  # the reference only
    assert model.selected[0].link == f"https://drive.google.com/file/d/{fid}/view"
    assert variable_name_for("resnet-18 v2.pth") == "resnet_18_v2"
    assert variable_name_for("2024.ckpt") == "model_2024"
    assert variable_name_for("class.pt") == "model_class"
    assert model_variables({"a": 1, "_b": {}, "d": {"k": "v"}}) == []
    with pytest.raises(ValueError, match="one item"):
        model.select(model.rows * 2)


def test_select_mode_takes_several(drive_env):
    drive_env.put("MyDrive/sel/a.pth", b"a")
    drive_env.put("MyDrive/sel/b.pth", b"b")
    model = _ready(BrowserModel("MyDrive/sel", mode="select"))
    model.select(model.rows)
    assert [i.name for i in model.selected] == ["a.pth", "b.pth"]
    with pytest.raises(ValueError, match="mode must be"):
        BrowserModel("MyDrive", mode="pick")  # type: ignore[arg-type]


# -- errors -----------------------------------------------------------------------------------

def test_not_signed_in_is_an_error_with_what_to_do(isolated):
    model = BrowserModel("MyDrive")
    assert model.wait(60)
    assert model.error is not None and model.error.kind == "not_signed_in"
    assert "%drive_mount" in model.error.advice
    assert model.rows == []


def test_offline_setting_is_reported(drive_env, monkeypatch):
    monkeypatch.setenv("COLABMODELS_OFFLINE", "1")
    model = BrowserModel("MyDrive")
    assert model.wait(60)
    assert model.error is not None and model.error.kind == "offline"
    assert "COLABMODELS_OFFLINE" in model.error.advice


def test_unreachable_drive_is_offline_then_refresh_recovers(drive_env, monkeypatch):
    drive_env.put("MyDrive/o/a.pth", b"a")
    monkeypatch.setenv("COLABMODELS_MAX_RETRIES", "1")
    model = _ready(BrowserModel("MyDrive/o"))
    drive_env.stop()
    model.refresh()
    assert model.wait(60)
    assert model.error is not None and model.error.kind == "offline", model.error
    assert "press Refresh" in model.error.advice
    drive_env.start()  # same port
    model.refresh()
    _ready(model)
    assert [i.name for i in model.rows] == ["a.pth"]


def test_deleted_meanwhile(drive_env):
    fd = drive_env
    fd.put("MyDrive/gone/a.pth", b"a")
    fd.put("MyDrive/gone/sub/b.pth", b"b")
    model = _ready(BrowserModel("MyDrive/gone"))
    rows = {i.name: i for i in model.rows}
    fd.delete("MyDrive/gone/a.pth")
    model.select(rows["a.pth"])
    assert model.wait(60)
    assert model.error is not None and model.error.kind == "not_found"
    assert "Refresh" in model.error.advice
    fd.trash("MyDrive/gone/sub")
    model.open(rows["sub"])
    assert model.wait(60)
    assert model.error is not None and model.error.kind == "not_found"


def test_trouble_kinds():
    from colabmodels.errors import AuthError, NotFoundError, QuotaError, TransferError

    assert browse.trouble(AuthError("403 insufficientFilePermissions")).kind == "no_permission"
    assert browse.trouble(NotFoundError("x")).kind == "not_found"
    assert browse.trouble(QuotaError("q")).kind == "quota"
    assert browse.trouble(TransferError("listing x: connection problem: refused")).kind == "offline"
    assert browse.trouble(RuntimeError("boom")).kind == "error"


def _png(width: int, height: int) -> bytes:
    import struct
    import zlib

    raw = b"".join(b"\x00" + b"".join(bytes([x * 4 % 256, y * 5 % 256, 90]) for x in range(width))
                   for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))

