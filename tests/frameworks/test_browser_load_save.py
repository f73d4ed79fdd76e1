"""The Drive browser's Load and Save modes with a real torch model, against the emulator:
click a file, press Load, the state dict lands in the namespace; pick a folder, a variable and
metadata, press Save, a new version is made (never an overwrite); a read-only folder says why."""

from __future__ import annotations

import io

import pytest

from colabmodels.widgets.browser import DriveBrowser

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.timeout(300)


def _click_row(browser: DriveBrowser, name: str) -> None:
    for label, value in browser.listing.options:
        if f" {name}" in label:
            browser.listing.value = value
            return
    raise AssertionError(f"no row {name!r}")


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_load_a_torch_state_dict_into_a_variable(drive_env):
    net = _net()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    drive_env.put("MyDrive/models/encoder.pth", buf.getvalue())
    namespace: dict = {}
    browser = DriveBrowser("MyDrive", namespace=namespace)
    browser.wait()
    _click_row(browser, "models/")
    browser.open_button.click()
    browser.wait()
    _click_row(browser, "encoder.pth")
    browser.wait()
    assert browser.variable.value == "encoder"
    browser.variable.value = "weights"
    browser.load_button.click()
    assert browser.guard.last_trouble is None, browser.guard.text
    loaded = namespace["weights"]
    assert set(loaded) == set(net.state_dict())
    assert all(torch.equal(loaded[k], v) for k, v in net.state_dict().items())
    assert "Loaded encoder.pth into `weights`" in browser.result.value
    assert browser.progress.done == browser.progress.total == len(buf.getvalue())
    assert browser.progress.bar.bar_style == "success"


def test_save_makes_versions_and_shows_them(drive_env):
    drive_env.mkdir("MyDrive/models")
    namespace = {"net": _net().state_dict(), "not_a_model": 3, "layer": torch.nn.Linear(2, 2)}
    browser = DriveBrowser("MyDrive/models", mode="save", namespace=namespace)
    browser.wait()
    assert list(browser.save_variable.options) == ["layer", "net"]
    browser.save_variable.value = "net"
    assert browser.save_variable.value == "net"
    browser.save_name.value = "tiny"
    browser.metadata.value = 'acc=0.93 note="first try"'
    browser.save_button.click()
    assert browser.guard.last_trouble is None, browser.guard.text
    assert "Saved net as MyDrive/models/tiny@v1" in browser.result.value
    assert browser.last_saved.metadata == {"acc": 0.93, "note": "first try"}
    browser.wait()
    assert [i.name for i in browser.model.rows] == ["tiny"]

    browser.metadata.value = "acc=0.95"
    browser.save_button.click()  # the same name again: a new version, never an overwrite
    assert "MyDrive/models/tiny@v2" in browser.result.value, browser.guard.text
    browser.wait()

    # the details of the folder list its versions, and Load takes the latest
    browser_load = DriveBrowser("MyDrive/models", namespace=namespace)
    browser_load.wait()
    _click_row(browser_load, "tiny/")
    browser_load.wait()
    assert "Saved versions" in browser_load.versions.value
    assert "v1" in browser_load.versions.value and "v2" in browser_load.versions.value
    assert "acc=0.95" in browser_load.versions.value
    assert "<div class='cm-versions'>" in browser_load.versions.value  # clipped, scrolls
    assert browser_load.value.load_ref == "MyDrive/models/tiny@latest"
    assert not browser_load.load_button.disabled
    browser_load.variable.value = "latest"
    browser_load.load_button.click()
    assert browser_load.guard.last_trouble is None, browser_load.guard.text
    state = namespace["latest"]
    assert all(torch.equal(state[k], v) for k, v in namespace["net"].items())


def test_save_into_a_read_only_folder_says_no_permission(drive_env):
    fd = drive_env
    fd.put("MyDrive/team/readme.md", b"r", owner="bob")
    fd.share("MyDrive/team", readers=[fd.default_user], owner="bob")
    namespace = {"net": _net()}
    browser = DriveBrowser("SharedWithMe", mode="save", namespace=namespace)
    browser.wait()
    _click_row(browser, "team/")
    browser.open_button.click()
    browser.wait()
    browser.save_name.value = "mine"
    browser.save_button.click()
    trouble = browser.guard.last_trouble
    assert trouble is not None and trouble.kind == "no_permission", browser.guard.text
    assert "ask its owner to share it" in browser.guard.text

    browser.crumbs.children[0].click()  # Shared with me itself has no folder to save into
    browser.wait()
    assert [t.title for t in browser.model.trail] == ["Shared with me"]
    browser.save_button.click()
    assert "open a folder in My Drive" in browser.guard.text
