"""The Drive browser widget driven like a user would, through its widgets' values and clicks,
against the Drive emulator. Core dependencies only: runs on ipywidgets 8 (`.venv`) and on
Colab's ipywidgets 7.7.1 (`.venv-colab`, `-m colab`). Loading real models is in
tests/frameworks/test_browser_load_save.py."""

from __future__ import annotations

import threading

import ipywidgets
import pytest

import colabmodels as cm
from colabmodels.browse import DriveItem
from colabmodels.widgets.browser import DriveBrowser, row_label
from colabmodels.widgets.capture import CallbackGuard
from colabmodels.widgets.progress import ProgressWidget

pytestmark = [pytest.mark.colab, pytest.mark.timeout(300)]


@pytest.fixture
def tree(drive_env):
    fd = drive_env
    fd.put("MyDrive/projects/vision/resnet.pth", b"\x80\x02not really a model", description="v1")
    fd.put("MyDrive/projects/vision/notes.txt", b"just text, not a model")
    fd.put("MyDrive/projects/vision/old/a.onnx", b"o")
    fd.put("MyDrive/projects/readme.md", b"r")
    fd.put("MyDrive/top.bin", b"t")
    return fd


def _shown(browser: DriveBrowser) -> list[str]:
    return [label for label, _ in browser.listing.options]


def _click_row(browser: DriveBrowser, name: str) -> None:
    """Select the row whose label shows ``name``, as a click in the list does."""
    for label, value in browser.listing.options:
        if f" {name}" in label:
            browser.listing.value = (value,) if browser.model.multiple else value
            return
    raise AssertionError(f"no row {name!r} in {_shown(browser)}")


def test_cm_drivebrowser_is_the_widget_and_lazy():
    assert cm.DriveBrowser is DriveBrowser


def test_navigate_by_clicks_select_and_reference(tree):
    picked = []
    browser = DriveBrowser("MyDrive", on_select=picked.append)
    assert browser.wait()
    assert browser.guard.last_trouble is None, browser.guard.text
    labels = _shown(browser)
    assert labels[0].startswith("\u25b8 projects/") and "top.bin" in labels[1]
    assert browser.roots.value == "mydrive"
    assert browser.headers["name"].description == "Name ▲"

    _click_row(browser, "projects/")
    browser.wait()
    assert not browser.open_button.disabled and browser.load_button.disabled
    assert "folder" in browser.details.value
    browser.open_button.click()
    browser.wait()
    assert _shown(browser)[0] == "\u2191 .."
    _click_row(browser, "vision/")
    browser.open_button.click()
    browser.wait()
    crumbs = [c.description for c in browser.crumbs.children if isinstance(c, ipywidgets.Button)]
    assert crumbs == ["My Drive", "projects", "vision"]
    assert [i.name for i in browser.model.rows] == ["old", "notes.txt", "resnet.pth"]

    _click_row(browser, "resnet.pth")
    browser.wait()
    assert isinstance(browser.value, DriveItem) and browser.value.name == "resnet.pth"
    assert [p.name for p in picked] == ["projects", "vision", "resnet.pth"]
    assert browser.variable.value == "resnet"
    assert not browser.load_button.disabled
    assert "v1" in browser.details.value and "MyDrive/projects/vision/resnet.pth" in browser.details.value
    browser.copy_button.click()
    assert browser.reference.value == "MyDrive/projects/vision/resnet.pth"

    # the "\u2191 .." row and the breadcrumbs go back up
    browser.listing.value = -1
    browser.wait()
    assert [t.title for t in browser.model.trail] == ["My Drive", "projects"]
    first = next(c for c in browser.crumbs.children if isinstance(c, ipywidgets.Button))
    first.click()
    browser.wait()
    assert [t.title for t in browser.model.trail] == ["My Drive"]
    browser.close()


def test_load_errors_show_in_the_widget_not_raised(tree):
    namespace: dict = {}
    browser = DriveBrowser("MyDrive/projects/vision", namespace=namespace)
    browser.wait()
    _click_row(browser, "notes.txt")
    browser.wait()
    browser.variable.value = "notes"
    browser.load_button.click()  # not a model: the error shows, nothing is raised
    assert "notes" not in namespace
    assert browser.guard.last_trouble is not None
    assert "UnknownFormatError" in browser.guard.text
    # the download itself went through the widget's progress bar; the load failed after it
    assert browser.progress.done == browser.progress.total == len(b"just text, not a model")
    assert browser.result.value == ""

    browser.variable.value = "not a name"
    browser.load_button.click()
    assert "not a Python variable name" in browser.guard.text

    tree.delete("MyDrive/projects/vision/resnet.pth")
    _click_row(browser, "resnet.pth")
    browser.wait()
    assert browser.guard.last_trouble is not None and browser.guard.last_trouble.kind == "not_found"
    assert "press Refresh" in browser.guard.text
    browser.refresh_button.click()
    browser.wait()
    assert browser.guard.last_trouble is None
    assert [i.name for i in browser.model.rows] == ["old", "notes.txt"]


def test_on_select_errors_are_captured(tree):
    def broken(_):
        raise RuntimeError("the user's callback is broken")

    browser = DriveBrowser("MyDrive", on_select=broken)
    browser.wait()
    _click_row(browser, "top.bin")  # must not raise out of the widget
    assert "the user's callback is broken" in browser.guard.text


def test_roots_search_sort_and_model_filter_widgets(tree):
    tree.put("MyDrive/shared-with-ada.pth", b"s", owner="bob")
    tree.share("MyDrive/shared-with-ada.pth", readers=[tree.default_user], owner="bob")
    browser = DriveBrowser("MyDrive/projects/vision")
    browser.wait()
    browser.roots.value = "shared"
    browser.wait()
    assert any("shared-with-ada.pth" in label for label in _shown(browser))
    assert [t.title for t in browser.model.trail] == ["Shared with me"]
    browser.roots.value = "mydrive"
    browser.wait()
    assert "top.bin" in " ".join(_shown(browser))

    browser.model.search_delay_s = 0.05
    browser.search.value = "top"  # search as you type
    browser.wait()
    assert [i.name for i in browser.model.rows] == ["top.bin"]
    assert "matching 'top'" in browser.status.value
    browser.search.value = ""
    browser.wait()

    browser.headers["size"].click()
    browser.wait()
    assert browser.headers["size"].description == "Size ▼"
    assert browser.model.sort == "size" and browser.model.descending

    browser.model.open(next(i for i in browser.model.rows if i.name == "projects"))
    browser.wait()
    browser.models_only.value = True
    browser.wait()
    assert [i.name for i in browser.model.rows] == ["vision"]  # readme.md hidden, folders kept
    browser.models_only.value = False
    assert [i.name for i in browser.model.rows] == ["vision", "readme.md"]


def test_image_details_show_drives_thumbnail(drive_env):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"".join(bytes([x * 8 % 256, y * 8 % 256, 60]) for x in range(40))
                   for y in range(30))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40, 30, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    drive_env.put("MyDrive/pics/cat.png", png)
    browser = DriveBrowser("MyDrive/pics")
    browser.wait()
    _click_row(browser, "cat.png")
    browser.wait()
    if browser.model.details.item.thumbnail_link is None:
        pytest.skip("this emulator has no thumbnailLink yet")
    assert browser.thumbnail.layout.display == "block"
    assert bytes(browser.thumbnail.value).startswith((b"\x89PNG", b"\xff\xd8\xff"))
    assert "40 x 30 px" in browser.details.value


def test_paging_with_the_more_button(drive_env):
    for i in range(25):
        drive_env.put(f"MyDrive/many/f{i:02d}.pt", b"x")
    browser = DriveBrowser("MyDrive/many", page_size=10)
    browser.wait()
    assert len(browser.model.rows) == 10 and not browser.more_button.disabled
    assert "more in Drive" in browser.status.value
    browser.more_button.click()
    browser.wait()
    browser.more_button.click()
    browser.wait()
    assert len(browser.model.rows) == 25 and browser.more_button.disabled
    assert len(browser.listing.options) == 26  # with the "⬆ .." row


def test_select_mode_multi_select(tree):
    chosen = []
    browser = DriveBrowser("MyDrive/projects/vision", mode="select", on_select=chosen.append)
    browser.wait()
    assert isinstance(browser.listing, ipywidgets.SelectMultiple)
    values = {label.split()[1]: v for label, v in browser.listing.options if v >= 0}
    browser.listing.value = (values["notes.txt"], values["resnet.pth"])
    assert [i.name for i in browser.value] == ["notes.txt", "resnet.pth"]
    assert [i.name for i in chosen[-1]] == ["notes.txt", "resnet.pth"]


def test_not_signed_in_shows_what_to_do(isolated):
    browser = DriveBrowser("MyDrive")
    browser.wait()
    assert browser.guard.last_trouble is not None
    assert browser.guard.last_trouble.kind == "not_signed_in"
    assert "%drive_mount" in browser.guard.text


def test_drive_browse_magic_shows_a_browser(tree, ip):
    ip.run_cell("b = %drive_browse MyDrive/projects --mode select")
    browser = ip.user_ns["b"]
    assert isinstance(browser, DriveBrowser) and browser.model.mode == "select"
    browser.wait()
    assert [i.name for i in browser.model.rows] == ["vision", "readme.md"]


def test_rows_show_name_size_and_modified_in_columns():
    item = DriveItem(id="x", name="weights.safetensors", is_folder=False, size=1536,
                     modified="2026-11-21T10:00:00.000Z", model_kind="file")
    label = row_label(item)
    assert label.startswith("\u25c6 weights.safetensors")
    assert "1.5\u00a0KiB" in label and "2026-11-21" in label
    folder = row_label(DriveItem(id="y", name="x" * 80, is_folder=True))
    assert "…" in folder and len(folder) < 90


def test_progress_widget_is_a_thread_safe_progress_callback():
    from colabmodels.progress import progress_bar, report_to

    bar = ProgressWidget(interval_s=0)
    with report_to(bar.track), progress_bar(8 * 1000, "weights.pth") as report:
        threads = [threading.Thread(target=lambda: [report(1) for _ in range(1000)]) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert bar.done == 8000 and bar.bar.value == bar.bar.max == 8000
    assert bar.bar.bar_style == "success" and "weights.pth" in bar.label.value
    assert bar.box.layout.display == "flex"
    with pytest.raises(RuntimeError), report_to(bar.track), progress_bar(10, "x") as report:
        report(3)
        raise RuntimeError("cut")
    assert bar.bar.bar_style == "danger" and bar.done == 3


def test_callback_guard_shows_errors_with_advice():
    from colabmodels.errors import AuthError, NotFoundError

    guard = CallbackGuard()
    assert guard.wrap(lambda: 42)() == 42
    assert guard.wrap(lambda: (_ for _ in ()).throw(NotFoundError("MyDrive/x is gone")))() is None
    assert "MyDrive/x is gone" in guard.text and "press Refresh" in guard.text
    guard.wrap(lambda: (_ for _ in ()).throw(AuthError("insufficientFilePermissions")))()
    assert guard.last_trouble.kind == "no_permission" and "ask its owner" in guard.text
    guard.say("fine", kind="ok")
    assert guard.last_trouble is None and guard.text == "fine"


# -- issue 28: the browser's rough edges ---------------------------------------------------------

def _png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" + b"\x00" * 6 + b"\x00" + b"\x00" * 6))
            + chunk(b"IEND", b""))


def test_double_click_opens_a_folder_and_loads_a_file(tree):
    ns: dict = {}
    browser = DriveBrowser("MyDrive/projects", namespace=ns)
    assert browser.wait()
    _click_row(browser, "vision/")
    browser.double_click.click()  # what the list's double-click presses
    browser.wait()
    assert [t.title for t in browser.model.trail][-1] == "vision"
    _click_row(browser, "resnet.pth")
    browser.wait()
    browser.double_click.click()
    # a load was attempted: these bytes are no model, and the widget says so
    assert browser.guard.last_trouble is not None and "resnet.pth" not in ns.get("resnet", "")
    assert "UnknownFormatError" in browser.guard.text or "Error" in browser.guard.text
    # the page hooks the list's double-click to that button
    style = browser.widget.children[0].value
    assert "dblclick" in style and ".cm-dblclick" in style
    assert "cm-drive-browser" in browser.widget._dom_classes


def test_one_item_is_not_one_items_and_a_search_without_hits_suggests_everywhere(tree):
    browser = DriveBrowser("MyDrive/projects/vision/old")
    assert browser.wait()
    assert browser.status.value.startswith("1 item") and "1 items" not in browser.status.value
    browser.model.set_search("nothing-like-this")
    browser.wait()
    assert "no name matches in this folder" in browser.status.value
    assert "everywhere" in browser.status.value
    browser.everywhere.value = True
    browser.wait()
    assert "no name matches in this folder" not in browser.status.value


def test_load_is_disabled_for_files_that_are_no_model(drive_env):
    drive_env.put("MyDrive/mixed/cat.png", _png())
    drive_env.put("MyDrive/mixed/net.pth", b"w")
    browser = DriveBrowser("MyDrive/mixed")
    assert browser.wait()
    _click_row(browser, "cat.png")
    browser.wait()
    assert browser.load_button.disabled
    assert "not a model file (image/png)" in browser.load_button.tooltip
    _click_row(browser, "net.pth")
    browser.wait()
    assert not browser.load_button.disabled


def test_open_in_drive_is_a_styled_link_absent_for_emulator_files(tree, monkeypatch):
    from colabmodels.widgets.browser import _details_html

    browser = DriveBrowser("MyDrive/projects/vision")
    assert browser.wait()
    _click_row(browser, "resnet.pth")
    browser.wait()
    assert "Open in Drive" not in browser.details.value  # the emulator has no Drive web page
    item = browser.value
    shown = _details_html(item, loading=False, web_link=True)
    assert f"<a class='cm-open-drive' href='{item.link}'" in shown and "Open in Drive" in shown
    assert "a.cm-open-drive" in browser.widget.children[0].value  # styled as a button


def test_copy_reference_shows_the_reference_only(tree):
    browser = DriveBrowser("MyDrive/projects/vision")
    assert browser.wait()
    _click_row(browser, "resnet.pth")
    browser.wait()
    browser.copy_button.click()
    assert browser.reference.value == "MyDrive/projects/vision/resnet.pth"
    assert "cm.load_model" not in browser.reference.value and "#" not in browser.reference.value
