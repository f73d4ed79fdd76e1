"""The `colabmodels` command, in-process (main(argv) + capsys) and as `python -m colabmodels`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from colabmodels import cli
from colabmodels.cachestore import cache, key_for

pytestmark = [pytest.mark.unit, pytest.mark.colab]


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("COLABMODELS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLABMODELS_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("COLABMODELS_OFFLINE", "COLABMODELS_CACHE_MAX_BYTES",
                 "COLABMODELS_DRIVE_ENDPOINT", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def store_entry(name: str, data: bytes, source: str = "https://example.com/x"):
    key = key_for(f"test:{name}:{len(data)}")
    entry, _ = cache.get_or_store(key, identity=f"test:{name}", source=source, name=name,
                                  kind="file", fill=lambda target: target.write_bytes(data))
    cache.touch(entry)  # used now, as a fresh fetch would leave it
    return entry


def corrupt(entry) -> None:
    """Same size and mtime, other bytes: only the full hash of `verify` notices."""
    st = entry.path.stat()
    entry.path.write_bytes(b"\0" * st.st_size)
    os.utime(entry.path, ns=(st.st_atime_ns, st.st_mtime_ns))


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- cache ------------------------------------------------------------------------------------

def test_cache_ls_on_an_empty_cache(capsys, env):
    code, out, err = run(capsys, "cache", "ls")
    assert code == 0 and err == ""
    assert out == f"the cache is empty ({env / 'cache'})\n"
    assert run(capsys, "cache")[1] == out  # ls is the default


def test_cache_ls_shows_human_sizes_ages_and_sources(capsys, env):
    store_entry("vgg16.pth", b"v" * (3 * 1024 * 1024 + 512 * 1024), source="MyDrive/models/vgg16.pth")
    old = store_entry("tiny.bin", b"t" * 10, source="gs://bucket/tiny.bin")
    hour_ago = time.time() - 2 * 3600
    os.utime(old.dir / "meta.json", (hour_ago, hour_ago))  # its mtime is the last use
    code, out, _ = run(capsys, "cache", "ls")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "size", "used", "source"]
    assert lines[2].split() == ["vgg16.pth", "3.5", "MiB", "just", "now", "MyDrive/models/vgg16.pth"]
    assert lines[3].split() == ["tiny.bin", "10", "B", "2", "h", "ago", "gs://bucket/tiny.bin"]
    assert lines[2].index("MyDrive") == lines[3].index("gs://") == lines[0].index("source")
    assert lines[-1] == f"2 entries, 3.5 MiB in {env / 'cache'}"


def test_cache_verify_exits_0_when_clean_and_1_with_a_corrupted_entry(capsys):
    store_entry("good.bin", b"g" * 100)
    bad = store_entry("bad.bin", b"b" * 100)
    code, out, _ = run(capsys, "cache", "verify")
    assert (code, out) == (0, "all 2 entries verified\n")

    corrupt(bad)
    code, out, err = run(capsys, "cache", "verify")
    assert code == 1
    assert out.splitlines()[0].startswith("1 of 2 entries were bad and have been removed")
    assert "bad.bin (100 B, https://example.com/x): " in out and "md5" in out
    assert "good.bin" not in out
    assert "cache entry bad.bin is bad" in err  # the library's warning, shown by default
    # the bad entry is gone, so the cache is clean again
    assert run(capsys, "cache", "verify")[:2] == (0, "all 1 entries verified\n")


def test_cache_prune_and_clear(capsys, env):
    for i in range(3):
        store_entry(f"e{i}.bin", b"x" * 1000)
        time.sleep(0.01)
    code, out, _ = run(capsys, "cache", "prune", "--max-bytes", "1.5KB")
    assert code == 0
    assert out == f"removed 2 entries (2.0 KiB); 1000 B left in {env / 'cache'}\n"
    assert [e.name for e in cache.entries()] == ["e2.bin"]  # the most recently used stays
    code, out, _ = run(capsys, "cache", "clear")
    assert (code, out) == (0, f"removed 1 entries (1000 B) from {env / 'cache'}\n")
    assert cache.entries() == []


def test_prune_rejects_a_bad_size(capsys):
    code, _, err = run(capsys, "cache", "prune", "--max-bytes", "lots")
    assert code == 2
    assert "is not a size" in err




# -- fetch, versions, errors ------------------------------------------------------------------

def test_fetch_prints_the_local_path(capsys, tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    code, out, err = run(capsys, "fetch", str(model), "--no-progress")
    assert (code, out, err) == (0, f"{model}\n", "")


def test_library_errors_are_one_line_with_exit_status_2(capsys, tmp_path):
    missing = tmp_path / "missing.bin"
    code, out, err = run(capsys, "fetch", str(missing))
    assert code == 2 and out == ""
    assert err == f"colabmodels: error: NotFoundError: {missing} does not exist\n"


def test_debug_shows_the_traceback(capsys, tmp_path):
    missing = tmp_path / "missing.bin"
    code, _, err = run(capsys, "--debug", "fetch", str(missing))
    assert code == 2
    assert err.startswith("Traceback (most recent call last):")
    assert err.rstrip().endswith(f"colabmodels: error: NotFoundError: {missing} does not exist")


def test_offline_fetch_of_an_uncached_url_speaks_the_commands_words(capsys):
    code, _, err = run(capsys, "fetch", "https://example.com/model.bin", "--offline")
    assert code == 2
    assert err.startswith("colabmodels: error: OfflineError: https://example.com/model.bin is not "
                          "in the cache and offline mode is on")
    assert "without --offline" in err
    assert "offline=False" not in err  # the Python spelling is for Python callers
    from colabmodels import api
    from colabmodels.errors import OfflineError

    with pytest.raises(OfflineError, match="offline=False"):
        api.fetch("https://example.com/model.bin", offline=True)


def test_versions_of_a_missing_folder_or_a_file_fails(capsys, tmp_path):
    missing = tmp_path / "no" / "such"
    code, out, err = run(capsys, "versions", str(missing))
    assert (code, out) == (2, "")
    assert err.startswith("colabmodels: error: NotFoundError: ") and "does not exist" in err
    a_file = tmp_path / "model.pth"
    a_file.write_bytes(b"weights")
    code, out, err = run(capsys, "versions", str(a_file))
    assert (code, out) == (2, "")
    assert "not a model folder" in err
    (tmp_path / "empty").mkdir()
    assert run(capsys, "versions", str(tmp_path / "empty"))[:2] == (
        0, f"no saved versions under {tmp_path / 'empty'}\n")


def test_versions_lists_the_saved_versions(capsys, tmp_path):
    dest = tmp_path / "models" / "vgg"
    dest.mkdir(parents=True)
    code, out, _ = run(capsys, "versions", str(dest))
    assert (code, out) == (0, f"no saved versions under {dest}\n")
    for n in (1, 2):
        (dest / f"v{n}").mkdir(parents=True)
        (dest / f"v{n}" / "manifest.json").write_text(json.dumps({
            "version": n, "framework": "keras", "format": "keras-v3",
            "created": f"2026-11-2{n}T10:00:00+00:00", "metadata": {"acc": 0.9 + n / 100},
            "files": [{"path": "model.keras", "size": 1, "sha256": "0"}]}))
    (dest / "v3").mkdir()  # unfinished: no manifest, not listed
    code, out, _ = run(capsys, "versions", str(dest))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["version", "created", "framework", "format", "metadata"]
    assert [line.split() for line in lines[2:]] == [
        ["v1", "2026-11-21T10:00:00+00:00", "keras", "keras-v3", "acc=0.91"],
        ["v2", "2026-11-22T10:00:00+00:00", "keras", "keras-v3", "acc=0.92"],
    ]


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys, "nonsense")
    assert code == 2 and "invalid choice: 'nonsense'" in err
    code, _, err = run(capsys)
    assert code == 2 and "required: COMMAND" in err
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "fetch" in out and "versions" in out and "cache" in out


# -- logging ----------------------------------------------------------------------------------

def test_verbose_logs_info_to_stderr_and_the_logger_is_restored(capsys, monkeypatch, tmp_path):
    from colabmodels import api

    def fetch(ref, **kwargs):
        logging.getLogger("colabmodels").info("fetching %s", ref)
        return tmp_path

    monkeypatch.setattr(api, "fetch", fetch)
    logger = logging.getLogger("colabmodels")
    before = (logger.level, logger.propagate, list(logger.handlers))
    code, _, err = run(capsys, "fetch", "x")
    assert code == 0 and "fetching" not in err
    code, _, err = run(capsys, "-v", "fetch", "x")
    assert code == 0 and err == "colabmodels: INFO: fetching x\n"
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


# -- forwarded commands -----------------------------------------------------------------------

def test_demo_gets_the_remaining_arguments(capsys, monkeypatch):
    import colabmodels.demo

    seen = []
    monkeypatch.setattr(colabmodels.demo, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["demo", "--open"]) == 0
    assert cli.main(["-v", "demo", "--workdir", "x", "-v"]) == 0
    assert seen == [["--open"], ["--workdir", "x", "-v"]]


def test_demo_help_says_it_runs_the_notebooks(capsys):
    code, out, _ = run(capsys, "--help")
    demo = " ".join(out[out.index("    demo "):].split("\n\n")[0].split())
    assert code == 0
    assert "every demo notebook, or the ones named" in demo and "quickstart" not in demo


def test_fakedrive_help_is_the_emulators_own(capsys):
    code, out, _ = run(capsys, "fakedrive", "--help")
    assert code == 0
    assert "--ready-file" in out and "--service-account-file" in out


@pytest.mark.emulator
def test_fakedrive_serves_until_terminated(tmp_path):
    import urllib.error
    import urllib.request

    ready, key = tmp_path / "ready.json", tmp_path / "key.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "colabmodels", "fakedrive", "--port", "0",
         "--ready-file", str(ready), "--service-account-file", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the emulator did not become ready"
            time.sleep(0.05)
        url = json.loads(ready.read_text())["url"]
        assert json.loads(key.read_text())["type"] == "service_account"
        with pytest.raises(urllib.error.HTTPError) as info:  # no bearer token: 401
            urllib.request.urlopen(f"{url}drive/v2/about", timeout=10)
        assert info.value.code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0


# -- as a real process ------------------------------------------------------------------------

def test_python_dash_m_colabmodels(env):
    store_entry("model.pth", b"m" * 2048, source="MyDrive/models/model.pth")
    done = subprocess.run([sys.executable, "-m", "colabmodels", "cache", "ls"],
                          capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].split() == [
        "model.pth", "2.0", "KiB", "just", "now", "MyDrive/models/model.pth"]
    corrupt(cache.entries()[0])
    done = subprocess.run([sys.executable, "-m", "colabmodels", "cache", "verify"],
                          capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert done.returncode == 1
    assert "model.pth" in done.stdout


def test_the_command_imports_no_framework():
    code = ("import sys, colabmodels.cli as c; c.main(['cache', 'ls']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'tensorflow', 'keras', 'gensim', 'IPython')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


def test_entry_point_is_declared():
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert 'colabmodels = "colabmodels.cli:main"' in pyproject.read_text()
