"""The magics against the Drive emulator: sign-in, completion of Drive paths, load/save/list."""

from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError

import colabmodels.drive.session

FakeDrive = pytest.importorskip("colabmodels.testing.fakedrive").FakeDrive

pytestmark = pytest.mark.emulator


@pytest.fixture
def fd():
    with FakeDrive() as drive:
        yield drive


@pytest.fixture
def key(fd, tmp_path):
    path = tmp_path / "service-account.json"
    fd.write_service_account(path)
    return path


@pytest.fixture
def ip(ip):
    """The shared shell (root conftest), with progress bars off."""
    ip.run_cell("%config ColabModels.progress = False")
    return ip


@pytest.fixture
def mounted(ip, fd, key, monkeypatch, capsys):
    """The shell after `%drive_mount` on the emulator (the endpoint also in the environment, as
    a user of the emulator would set it, so every request of the run goes there)."""
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fd.url)
    ip.run_cell(f"session = %drive_mount --service-account {key} --endpoint {fd.url}")
    capsys.readouterr()
    return ip


def complete(ip, line):
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        found = list(ip.Completer.completions(line, len(line)))
    return sorted({line[: c.start] + c.text for c in found})


@pytest.mark.colab
def test_drive_mount_prints_one_line_and_returns_the_session(ip, fd, key, capsys):
    ip.run_cell(f"session = %drive_mount --service-account {key} --endpoint {fd.url}")
    session = ip.user_ns["session"]
    assert session is colabmodels.drive.session.current_session()
    assert session.method == "service_account"
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith(f"Signed in as {fd.default_user} · ")
    assert "API session; no mount outside Colab" in out


@pytest.mark.colab
def test_drive_mount_twice_is_idempotent(ip, fd, key, capsys):
    first = ip.run_line_magic("drive_mount", f"--service-account {key} --endpoint {fd.url}")
    again = ip.run_line_magic("drive_mount", f"--service-account {key} --endpoint {fd.url}")
    assert again is first
    forced = ip.run_line_magic("drive_mount", f"--service-account {key} --endpoint {fd.url} --force")
    assert forced is not first and forced is colabmodels.drive.session.current_session()
    assert capsys.readouterr().out.count(f"Signed in as {fd.default_user}") == 3


@pytest.mark.colab
def test_drive_mount_with_a_bad_key_is_a_short_error(ip, fd, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "service_account", "client_email": "x@y", "private_key": "no",
                               "token_uri": f"{fd.url}token"}))
    with pytest.raises(UsageError, match=r"^AuthError: "):
        ip.run_cell(f"%drive_mount --service-account {bad} --endpoint {fd.url}")


@pytest.mark.colab
def test_completion_lists_drive_folders_and_files(mounted, fd):
    fd.put("MyDrive/models/vgg16.pth", b"weights")
    fd.put("MyDrive/models/vit.safetensors", b"more")
    fd.put("MyDrive/models/old/v1.pth", b"older")
    fd.put("MyDrive/notes.txt", b"hello")
    ip = mounted
    assert complete(ip, "%load_model MyDrive/") == [
        "%load_model MyDrive/models/", "%load_model MyDrive/notes.txt"]
    assert complete(ip, "%load_model MyDrive/models/v") == [
        "%load_model MyDrive/models/vgg16.pth", "%load_model MyDrive/models/vit.safetensors"]
    assert complete(ip, "m = %load_model MyDrive/models/o") == ["m = %load_model MyDrive/models/old/"]
    assert complete(ip, "%models MyDrive/mo") == ["%models MyDrive/models/"]
    assert complete(ip, "%save_model net MyDrive/models/old/") == [
        "%save_model net MyDrive/models/old/v1.pth"]
    from colabmodels.magics import drive_completions

    assert drive_completions("%load_model MyDrive/nothing/here/", "MyDrive/nothing/here/") == []


@pytest.mark.colab
def test_completion_never_signs_in(ip, fd, key, monkeypatch):
    fd.put("MyDrive/models/vgg16.pth", b"weights")
    # everything a sign-in would need is there, but no session exists yet
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.setenv("COLABMODELS_DRIVE_ENDPOINT", fd.url)
    fd.reset_requests()
    assert not [c for c in complete(ip, "%load_model MyDrive/models/") if "vgg16" in c]
    assert colabmodels.drive.session.current_session() is None
    assert list(fd.requests) == []


@pytest.mark.colab
def test_models_on_an_empty_destination(mounted, fd):
    fd.mkdir("MyDrive/models/none")
    table = mounted.run_line_magic("models", "MyDrive/models/none")
    assert list(table) == []
    assert repr(table) == "no saved versions under MyDrive/models/none"


@pytest.mark.colab
def test_models_on_a_missing_folder_or_a_file_says_so(mounted, fd):
    fd.put("MyDrive/models/vgg16.pth", b"weights")
    with pytest.raises(UsageError, match=r"^NotFoundError: MyDrive/models/missing does not exist"
                                         r".*%save_model") as info:
        mounted.run_cell("%models MyDrive/models/missing")
    assert "cm.save_model" not in str(info.value)  # the magic's spelling, not Python's
    with pytest.raises(UsageError, match="not a model folder"):
        mounted.run_cell("%models MyDrive/models/vgg16.pth")


@pytest.mark.colab
def test_completion_after_an_opening_quote(mounted, fd):
    fd.put("MyDrive/my models/vgg16.pth", b"weights")
    fd.put("MyDrive/models/vit.safetensors", b"more")
    ip = mounted
    assert complete(ip, '%load_model "MyDrive/my') == ['%load_model "MyDrive/my models/']
    assert complete(ip, '%load_model "MyDrive/my models/v') == [
        '%load_model "MyDrive/my models/vgg16.pth']
    assert complete(ip, "m = %load_model 'MyDrive/models/") == [
        "m = %load_model 'MyDrive/models/vit.safetensors"]


@pytest.mark.colab
def test_models_lists_versions_saved_on_drive(mounted, fd):
    for n, meta in ((1, {"acc": 0.9}), (2, {"acc": 0.93, "note": "fine tuned"})):
        fd.put(f"MyDrive/models/vgg/v{n}/model.safetensors", b"x" * 10)
        fd.put(f"MyDrive/models/vgg/v{n}/manifest.json", json.dumps({
            "version": n, "framework": "torch", "format": "safetensors",
            "created": f"2026-11-2{n}T10:00:00+00:00", "metadata": meta,
            "files": [{"path": "model.safetensors", "size": 10, "sha256": "0"}]}).encode())
    mounted.run_cell("vs = %models MyDrive/models/vgg")
    table = mounted.user_ns["vs"]
    assert [i.ref for i in table] == ["MyDrive/models/vgg@v1", "MyDrive/models/vgg@v2"]
    assert repr(table).splitlines()[-1].split() == [
        "v2", "2026-11-22T10:00:00+00:00", "torch", "safetensors", "acc=0.93", "note=fine", "tuned"]


@pytest.mark.colab
def test_missing_drive_path_is_a_short_error(mounted, fd, capsys):
    fd.put("MyDrive/models/vgg16.pth", b"weights")
    with pytest.raises(UsageError) as info:
        mounted.run_cell("%load_model MyDrive/models/missing.pth")
    assert str(info.value).startswith("NotFoundError: MyDrive/models/missing.pth does not exist")
    assert "\n" not in str(info.value)
    assert "Traceback" not in capsys.readouterr().err


def test_load_and_save_models_on_drive(mounted, fd, capsys):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    import io

    buf = io.BytesIO(st.save({"w": torch.ones(2, 2)}))
    fd.put("MyDrive/models/ones.safetensors", buf.getvalue())
    ip = mounted
    ip.run_cell("weights = %load_model MyDrive/models/ones.safetensors")
    assert ip.user_ns["weights"]["w"].tolist() == [[1.0, 1.0], [1.0, 1.0]]

    ip.user_ns["sd"] = torch.nn.Linear(2, 2).state_dict()
    ip.run_cell('info = %save_model sd MyDrive/models/lin --meta acc=0.5 note="first try"')
    out = capsys.readouterr().out
    assert out.startswith("Saved sd as MyDrive/models/lin@v1 (torch · ")
    info = ip.user_ns["info"]
    assert info.metadata == {"acc": 0.5, "note": "first try"}
    assert fd.exists("MyDrive/models/lin/v1/manifest.json")
    assert complete(ip, "%load_model MyDrive/models/lin/") == ["%load_model MyDrive/models/lin/v1/"]
    ip.run_cell("again = %load_model MyDrive/models/lin@latest")
    again = ip.user_ns["again"]
    assert torch.equal(again["weight"], ip.user_ns["sd"]["weight"])
