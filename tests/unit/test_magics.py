"""The magics in a real IPython shell (IPython 9 here, 7.34 in .venv-colab for `colab` tests)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from IPython.core.error import UsageError

import colabmodels.drive.session
from colabmodels import magics
from colabmodels.cachestore import cache, key_for
from colabmodels.errors import NotFoundError
from colabmodels.presentation import parse_meta
from colabmodels.storage.base import RemoteStat

pytestmark = pytest.mark.unit

OURS = ("drive_mount", "load_model", "save_model", "models", "cache", "drive_browse", "dataset")


def store_entry(name: str, data: bytes, source: str = "https://example.com/x"):
    key = key_for(f"test:{name}:{len(data)}")
    entry, _ = cache.get_or_store(key, identity=f"test:{name}", source=source, name=name,
                                  kind="file", fill=lambda target: target.write_bytes(data))
    cache.touch(entry)  # used now, as a fresh fetch would leave it
    return entry


def drive_matchers(ip):
    completer = ip.Completer
    lists = [completer.custom_matchers, getattr(completer, "magic_arg_matchers", [])]
    return [m for ms in lists if isinstance(ms, list) for m in ms if getattr(m, "colabmodels", 0)]


# -- loading and unloading --------------------------------------------------------------------

@pytest.mark.colab
def test_load_ext_registers_the_magics_and_completers(ip):
    line = ip.magics_manager.magics["line"]
    for name in OURS:
        assert name in line, name
    assert "ColabModels" in ip.magics_manager.registry
    assert len(drive_matchers(ip)) == 1


@pytest.mark.colab
def test_unload_ext_removes_them_and_load_ext_brings_them_back(ip):
    ip.run_cell("%unload_ext colabmodels")
    line = ip.magics_manager.magics["line"]
    assert not [name for name in OURS if name in line]
    assert "ColabModels" not in ip.magics_manager.registry
    assert not any(type(c).__name__ == "ColabModels" for c in ip.configurables)
    assert drive_matchers(ip) == []
    with pytest.raises(UsageError, match="load_model"):
        ip.run_line_magic("load_model", "x")  # IPython: "Line magic function `%load_model` not found"
    ip.run_cell("%load_ext colabmodels")
    assert "load_model" in ip.magics_manager.magics["line"]
    assert len(drive_matchers(ip)) == 1


@pytest.mark.colab
def test_loading_twice_registers_each_completer_once(ip):
    import colabmodels

    colabmodels.load_ipython_extension(ip)
    assert len(drive_matchers(ip)) == 1
    assert sum(type(c).__name__ == "ColabModels" for c in ip.configurables) == 1


@pytest.mark.colab
def test_help_is_the_argparse_usage(ip, capsys):
    doc = ip.magics_manager.magics["line"]["load_model"].__doc__
    assert "%load_model [--framework F] [--arch DOTTED] [--trust] [--offline] REF" in doc
    assert "--trust" in doc and "--arch" in doc
    save_doc = ip.magics_manager.magics["line"]["save_model"].__doc__
    assert "--meta" in save_doc and "--version" in save_doc
    ip.run_cell("%load_model?")
    out = capsys.readouterr().out
    assert "--trust" in out and "--arch DOTTED" in out


@pytest.mark.colab
def test_bad_arguments_are_a_usage_error(ip):
    with pytest.raises(UsageError, match="REF"):
        ip.run_cell("%load_model")
    with pytest.raises(UsageError, match="unrecognized arguments: --nope"):
        ip.run_cell("%load_model x --nope")
    with pytest.raises(UsageError, match="cannot split"):
        ip.run_cell('%load_model "unterminated')


# -- configuration and errors -----------------------------------------------------------------

@pytest.mark.colab
def test_config_section_is_ColabModels(ip, capsys):
    ip.run_cell("%config ColabModels")
    out = capsys.readouterr().out
    assert "ColabModels.full_tracebacks" in out and "ColabModels.progress" in out
    assert ip.run_line_magic("config", "ColabModels.progress") is True
    ip.run_cell("%config ColabModels.progress = False")
    assert ip.magics_manager.registry["ColabModels"].progress is False
    assert ip.run_line_magic("config", "ColabModels.progress") is False


@pytest.mark.colab
def test_config_from_the_shell_config_applies_at_load(new_shell):
    from traitlets.config import Config

    config = Config()
    config.ColabModels.full_tracebacks = True
    shell = new_shell(config)
    assert shell.magics_manager.registry["ColabModels"].full_tracebacks is True


@pytest.mark.colab
def test_library_errors_are_one_line_without_traceback(ip, tmp_path, capsys):
    missing = tmp_path / "no such dir" / "model.pt"
    with pytest.raises(UsageError) as info:
        ip.run_cell(f'%load_model "{missing}"')
    message = str(info.value)
    assert message == f"NotFoundError: {missing} does not exist"
    err = capsys.readouterr().err
    assert f"UsageError: NotFoundError: {missing} does not exist" in err
    assert "Traceback" not in err and err.strip().count("\n") == 0


@pytest.mark.colab
def test_errors_speak_the_magics_words(ip):
    with pytest.raises(UsageError) as info:
        ip.run_cell("%load_model https://example.com/model.bin --offline")
    message = str(info.value)
    assert message.startswith("OfflineError: https://example.com/model.bin is not in the cache")
    assert "without --offline" in message and "offline=False" not in message


@pytest.mark.colab
def test_full_tracebacks_reraises_the_original_error(ip, tmp_path):
    ip.run_cell("%config ColabModels.full_tracebacks = True")
    missing = tmp_path / "model.pt"
    with pytest.raises(NotFoundError, match="does not exist"):
        ip.run_cell(f"%load_model {missing}")
    with pytest.raises(NotFoundError):  # also when called directly
        ip.run_line_magic("load_model", str(missing))


@pytest.mark.colab
def test_other_exceptions_propagate_unchanged(ip, monkeypatch):
    from colabmodels import api

    def boom(*args, **kwargs):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(api, "versions", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        ip.run_cell("%models somewhere")


# -- argument expansion -----------------------------------------------------------------------

@pytest.mark.colab
def test_dollar_and_brace_expansion(ip, tmp_path):
    ip.user_ns["p"] = str(tmp_path / "from-dollar.pt")
    with pytest.raises(UsageError, match=r"from-dollar\.pt does not exist"):
        ip.run_cell("%load_model $p")
    ip.user_ns["folder"] = str(tmp_path)
    with pytest.raises(UsageError, match=r"with space\.pt does not exist"):
        ip.run_cell('%load_model "{folder}/with space.pt"')
    with pytest.raises(UsageError, match=r"x3\.pt does not exist"):
        ip.run_cell("%load_model {folder}/x{1 + 2}.pt")


@pytest.mark.colab
def test_expansion_sees_local_variables_inside_functions(ip, tmp_path):
    ip.user_ns["base"] = str(tmp_path)
    ip.run_cell(
        "def attempt():\n"
        "    local_path = base + '/inside-function.pt'\n"
        "    try:\n"
        "        %load_model $local_path\n"
        "    except Exception as e:\n"
        "        return str(e)\n"
        "msg = attempt()\n"
    )
    assert "inside-function.pt does not exist" in ip.user_ns["msg"]


@pytest.mark.colab
def test_save_model_finds_local_variables_inside_functions(ip):
    ip.run_cell(
        "def attempt():\n"
        "    only_local = object()\n"
        "    try:\n"
        "        %save_model only_local /tmp/never --version latest\n"
        "    except Exception as e:\n"
        "        return str(e)\n"
        "msg = attempt()\n"
    )
    # it got past the variable lookup to the version check (which comes before serialising)
    assert ip.user_ns["msg"] == "RefError: 'latest' is not a version number (examples: 3, v3)"


def test_load_model_returns_the_model_for_assignment(ip, tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    path = tmp_path / "weights.safetensors"
    st.save_file({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, str(path))
    ip.user_ns["p"] = str(path)
    ip.run_cell("m = %load_model $p")
    model = ip.user_ns["m"]
    assert set(model) == {"w"}
    assert model["w"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


# -- %save_model ------------------------------------------------------------------------------

@pytest.mark.colab
def test_meta_arguments_are_split_like_a_shell(ip):
    instance = ip.magics_manager.registry["ColabModels"]
    args = instance._parse(instance.save_model,
                           'vgg MyDrive/models/vgg16 --meta acc=0.93 note="fine tuned" --version 2')
    assert args.var == "vgg" and args.dest == "MyDrive/models/vgg16" and args.version == "2"
    assert parse_meta(args.meta) == {"acc": 0.93, "note": "fine tuned"}
    ip.user_ns["vgg"] = object()
    with pytest.raises(UsageError, match="key=value pairs, not 'novalue'"):
        ip.run_cell("%save_model vgg /tmp/x --meta novalue")


@pytest.mark.colab
def test_save_model_of_a_missing_variable(ip):
    with pytest.raises(UsageError, match="no variable named 'nothing_here'"):
        ip.run_cell("%save_model nothing_here /tmp/x")
    ip.user_ns["obj"] = object()
    with pytest.raises(UsageError, match=r"obj\.model"):
        ip.run_cell("%save_model obj.model /tmp/x")
    with pytest.raises(UsageError, match="'latest' is not a version number"):
        ip.run_cell("%save_model obj /tmp/x --version latest")
    with pytest.raises(UsageError, match=r"^RefError: versions start at v1, not 'v0'"):
        ip.run_cell("%save_model obj /tmp/x --version v0")


def test_save_model_writes_a_version_with_metadata(ip, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    ip.user_ns["net"] = torch.nn.Linear(3, 2)
    dest = tmp_path / "models" / "lin"
    ip.run_cell(f'info = %save_model net {dest} --meta acc=0.93 note="fine tuned" best=true')
    info = ip.user_ns["info"]
    assert info.version == 1
    assert info.metadata == {"acc": 0.93, "note": "fine tuned", "best": True}
    out = capsys.readouterr().out
    assert out.startswith(f"Saved net as {dest}@v1 (torch · ")
    assert json.loads((dest / "v1" / "manifest.json").read_text())["metadata"]["acc"] == 0.93
    ip.run_cell(f"info2 = %save_model net {dest}")
    assert ip.user_ns["info2"].version == 2
    table = ip.run_line_magic("models", str(dest))
    assert [i.version for i in table] == [1, 2]
    assert "acc=0.93" in repr(table) and "note=fine tuned" in repr(table)


def test_save_model_version_spellings_match_the_reference_suffix(ip, tmp_path):
    """`--version V3`, `v3` and `3` mean what `@V3` / `@v3` mean in a reference, in the magic
    and in the Python API alike (one parser)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    import colabmodels as cm

    ip.user_ns["net"] = torch.nn.Linear(2, 1).state_dict()
    dest = tmp_path / "m"
    assert ip.run_line_magic("save_model", f"net {dest} --version V3").version == 3
    assert ip.run_line_magic("save_model", f"net {dest} --version v5").version == 5
    assert cm.save_model(ip.user_ns["net"], dest, version="V7", progress=False).version == 7
    assert [v.version for v in cm.versions(dest)] == [3, 5, 7]
    assert cm.load_model(f"{dest}@V5", progress=False).keys() == {"weight", "bias"}


# -- %models ----------------------------------------------------------------------------------

def write_version(dest: Path, n: int, metadata: dict) -> None:
    folder = dest / f"v{n}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    (folder / "manifest.json").write_text(json.dumps({
        "version": n, "framework": "torch", "format": "safetensors",
        "created": f"2026-11-2{n}T10:00:00+00:00", "metadata": metadata,
        "files": [{"path": "model.safetensors", "size": 10, "sha256": "0"}],
    }))


@pytest.mark.colab
def test_models_on_an_empty_destination(ip, tmp_path):
    (tmp_path / "nothing").mkdir()
    table = ip.run_line_magic("models", str(tmp_path / "nothing"))
    assert list(table) == []
    assert repr(table) == f"no saved versions under {tmp_path / 'nothing'}"
    assert "no saved versions" in table._repr_html_()


@pytest.mark.colab
def test_models_on_a_missing_folder_or_a_file_is_a_short_error(ip, tmp_path):
    with pytest.raises(UsageError, match=r"^NotFoundError: .*does not exist"):
        ip.run_cell(f"%models {tmp_path / 'missing'}")
    (tmp_path / "model.pth").write_bytes(b"weights")
    with pytest.raises(UsageError, match="not a model folder"):
        ip.run_cell(f"%models {tmp_path / 'model.pth'}")


@pytest.mark.colab
def test_models_lists_versions_as_a_table(ip, tmp_path):
    dest = tmp_path / "models" / "vgg"
    write_version(dest, 1, {"acc": 0.9})
    write_version(dest, 2, {"acc": 0.93, "note": "fine <tuned>"})
    table = ip.run_line_magic("models", str(dest))
    assert [i.version for i in table] == [1, 2]
    assert table[-1].ref == f"{dest}@v2"
    lines = repr(table).splitlines()
    assert lines[0].split() == ["version", "created", "framework", "format", "metadata"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[:4] == ["v1", "2026-11-21T10:00:00+00:00", "torch", "safetensors"]
    assert lines[3].endswith("acc=0.93 note=fine <tuned>")
    # aligned: every column starts at the same offset on every line
    assert lines[2].index("torch") == lines[3].index("torch") == lines[0].index("framework")
    html = table._repr_html_()
    assert html.count("<tr>") == 3 and "<th" in html
    assert "fine &lt;tuned&gt;" in html and "<tuned>" not in html


# -- %cache -----------------------------------------------------------------------------------

@pytest.mark.colab
def test_cache_ls_on_an_empty_cache(ip, tmp_path, capsys):
    table = ip.run_line_magic("cache", "ls")
    assert list(table) == []
    assert repr(table) == f"the cache is empty ({tmp_path / 'cache'})"
    assert repr(ip.run_line_magic("cache", "")) == repr(table)  # ls is the default


@pytest.mark.colab
def test_cache_ls_shows_name_size_age_and_source(ip):
    store_entry("model.pth", b"x" * 1536, source="MyDrive/models/model.pth")
    table = ip.run_line_magic("cache", "ls")
    assert len(table) == 1
    assert table.rows == [["model.pth", "1.5 KiB", "just now", "MyDrive/models/model.pth"]]
    assert repr(table).splitlines()[-1].startswith("1 entries, 1.5 KiB in ")


@pytest.mark.colab
def test_cache_verify_prune_and_clear(ip, capsys):
    good = store_entry("good.bin", b"g" * 100)
    bad = store_entry("bad.bin", b"b" * 100)
    assert ip.run_line_magic("cache", "verify") is None
    assert capsys.readouterr().out == "all 2 entries verified\n"

    mtime = bad.path.stat().st_mtime_ns
    bad.path.write_bytes(b"c" * 100)  # same size and mtime, other bytes: only a hash notices
    import os

    os.utime(bad.path, ns=(mtime, mtime))
    ip.run_line_magic("cache", "verify")
    out = capsys.readouterr().out
    assert out.startswith("1 of 2 entries were bad")
    assert "bad.bin" in out and "md5" in out and "good.bin" not in out
    assert [e.name for e in cache.entries()] == ["good.bin"]

    ip.run_line_magic("cache", "prune --max-bytes 0")
    assert capsys.readouterr().out.startswith("removed 1 entries (100 B); 0 B left")
    assert cache.entries() == []

    store_entry("again.bin", b"a" * 10)
    ip.run_line_magic("cache", "clear")
    assert capsys.readouterr().out.startswith("removed 1 entries (10 B) from ")
    assert cache.entries() == []
    assert good.key  # used
    with pytest.raises(UsageError, match="not a size"):
        ip.run_line_magic("cache", "prune --max-bytes lots")


@pytest.mark.colab
def test_cache_messages_are_the_clis(ip, capsys):
    """One implementation: %cache and `colabmodels cache` print the same lines."""
    from colabmodels import cli

    def both(action):
        outs = []
        for face in ("magic", "cli"):
            store_entry("one.bin", b"1" * 100)
            store_entry("two.bin", b"2" * 300)
            if face == "magic":
                ip.run_line_magic("cache", action)
            else:
                cli.main(["cache", *action.split()])
            outs.append(capsys.readouterr().out)
        return outs

    for action in ("verify", "prune --max-bytes 350", "clear"):
        magic, command = both(action)
        assert magic == command, action
        assert magic.strip()
    store_entry("one.bin", b"1" * 100)
    table = ip.run_line_magic("cache", "ls")
    capsys.readouterr()
    cli.main(["cache", "ls"])
    assert capsys.readouterr().out == repr(table) + "\n"


# -- completion (hook wiring; the real Drive listing is in tests/emulator) --------------------

class ListingBackend:
    """Stands in for a Drive backend: a fixed folder listing, optionally stuck or broken.

    With ``stuck_after=N`` the listing hangs after N names until ``release`` is set.
    """

    def __init__(self, names, *, error=None):
        self.names, self.error, self.listed = names, error, []
        self.stuck_after = None
        self.release = threading.Event()

    def list(self, ref, page_size=1000):
        self.listed.append(ref.path)
        if self.error:
            raise self.error
        for i, name in enumerate(self.names):
            if i == self.stuck_after:
                self.release.wait(60)
            yield RemoteStat(ref=ref.child(name.rstrip("/")), name=name.rstrip("/"), size=1,
                             is_dir=name.endswith("/"))


@pytest.fixture
def fake_drive_listing(monkeypatch):
    from colabmodels import api

    backend = ListingBackend(["models/", "model.pth", "data.csv"])
    monkeypatch.setattr(colabmodels.drive.session, "_current", type("S", (), {"mountpoint": None})())
    monkeypatch.setattr(api, "backend_for", lambda ref, **kw: backend)
    yield backend
    backend.release.set()


def complete(ip, line):
    """Completions the way a frontend asks for them (IPython 7.34 and 9 alike)."""
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        found = list(ip.Completer.completions(line, len(line)))
    return sorted({line[: c.start] + c.text for c in found})


@pytest.mark.colab
def test_completion_lists_the_drive_folder(ip, fake_drive_listing):
    assert complete(ip, "%load_model MyDrive/") == [
        "%load_model MyDrive/data.csv", "%load_model MyDrive/model.pth",
        "%load_model MyDrive/models/"]
    assert complete(ip, "%load_model MyDrive/mod") == [
        "%load_model MyDrive/model.pth", "%load_model MyDrive/models/"]
    assert complete(ip, "%models MyD") == ["%models MyDrive/"]
    assert complete(ip, "%drive_browse MyDrive/m") == [
        "%drive_browse MyDrive/model.pth", "%drive_browse MyDrive/models/"]
    assert complete(ip, "panel = %dataset MyDrive/models") == ["panel = %dataset MyDrive/models/"]
    assert complete(ip, "%save_model net MyDrive/d") == ["%save_model net MyDrive/data.csv"]
    assert "MyDrive" in fake_drive_listing.listed


@pytest.mark.colab
def test_completion_after_an_assignment_and_options(ip, fake_drive_listing):
    assert complete(ip, "m = %load_model MyDrive/models") == ["m = %load_model MyDrive/models/"]
    assert complete(ip, "m = %load_model --trust MyDrive/data") == [
        "m = %load_model --trust MyDrive/data.csv"]
    assert complete(ip, "%save_model --version 3 net MyDrive/m") == [
        "%save_model --version 3 net MyDrive/model.pth", "%save_model --version 3 net MyDrive/models/"]


@pytest.mark.colab
def test_completion_after_an_opening_quote(ip, fake_drive_listing):
    fake_drive_listing.names = ["my models/", "model.pth", "data.csv"]
    assert complete(ip, '%load_model "MyDrive/mo') == ['%load_model "MyDrive/model.pth']
    assert complete(ip, "m = %load_model 'MyDrive/my") == ["m = %load_model 'MyDrive/my models/"]
    # a quoted path with a space: the completion replaces only the word after the space
    assert complete(ip, '%load_model "MyDrive/my mo') == ['%load_model "MyDrive/my models/']
    assert complete(ip, '%save_model net "MyDrive/d') == ['%save_model net "MyDrive/data.csv']
    assert complete(ip, '%load_model --trust "MyD') == ['%load_model --trust "MyDrive/']
    assert magics.drive_completions('%save_model "MyD', "MyD") == []  # VAR, not a path


@pytest.mark.colab
def test_completion_in_a_multi_line_cell(ip, fake_drive_listing):
    cell = "import os\nm = %load_model MyDrive/mo"
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        found = list(ip.Completer.completions(cell, len(cell)))
    assert sorted(cell[: c.start] + c.text for c in found) == [
        "import os\nm = %load_model MyDrive/model.pth", "import os\nm = %load_model MyDrive/models/"]


@pytest.mark.colab
def test_completion_via_the_legacy_ip_complete(ip, fake_drive_listing):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        line = "%load_model MyDrive/mo"
        text, matches = ip.complete("", line, len(line))  # what ipykernel's legacy path sends
    assert text == "MyDrive/mo"
    assert sorted(matches) == ["MyDrive/model.pth", "MyDrive/models/"]


@pytest.mark.colab
def test_completion_leaves_other_words_alone(ip, fake_drive_listing):
    assert magics.drive_completions("%save_model MyD", "MyD") == []  # VAR, not a path
    assert magics.drive_completions("%load_model MyD", "MyD") == ["MyDrive/"]
    assert magics.drive_completions("%cache MyD", "MyD") == []
    assert magics.drive_completions("print(1) # %load_model MyD", "MyD") == []
    complete(ip, "%load_model --arch MyDrive/")
    complete(ip, "%load_model ./local/")
    assert fake_drive_listing.listed == []


@pytest.mark.colab
def test_completion_needs_an_existing_session(ip, monkeypatch):
    from colabmodels import api

    def must_not_be_called(*args, **kwargs):
        raise AssertionError("completion must never sign in")

    monkeypatch.setattr(api, "backend_for", must_not_be_called)
    monkeypatch.setattr(colabmodels.drive.session, "mount", must_not_be_called)
    assert colabmodels.drive.session.current_session() is None
    assert api.complete_drive_path("MyDrive/") == []
    assert magics.drive_completions("%load_model MyDrive/", "MyDrive/") == []
    complete(ip, "%load_model MyDrive/")


@pytest.mark.colab
def test_completion_swallows_errors(ip, monkeypatch, fake_drive_listing):
    from colabmodels import api

    fake_drive_listing.error = RuntimeError("network down")
    assert api.complete_drive_path("MyDrive/x") == []
    assert magics.drive_completions("%load_model MyDrive/", "MyDrive/") == []
    assert not any("MyDrive/data" in c for c in complete(ip, "%load_model MyDrive/"))

    monkeypatch.setattr(api, "backend_for", lambda *a, **k: 1 / 0)
    assert magics.drive_completions("%load_model MyDrive/", "MyDrive/") == []
    complete(ip, "%load_model MyDrive/")  # does not raise
    monkeypatch.setattr(colabmodels.drive.session, "_current", object())  # a broken session object
    assert magics.drive_completions("%load_model MyDrive/", "MyDrive/") == []


@pytest.mark.colab
def test_completion_keeps_to_its_time_budget(ip, monkeypatch, fake_drive_listing):
    """A listing that hangs does not hang Tab: what arrived within the budget is offered."""
    monkeypatch.setattr(magics, "COMPLETION_BUDGET_S", 2.0)
    fake_drive_listing.names = ["a", "b", "c", "d"]
    fake_drive_listing.stuck_after = 1
    found = magics.drive_completions("%load_model MyDrive/", "MyDrive/")
    assert found == ["MyDrive/a"]
    assert not fake_drive_listing.release.is_set()  # it returned while the listing still hung
